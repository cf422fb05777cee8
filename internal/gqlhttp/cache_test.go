package gqlhttp

import (
	"context"
	"strings"
	"testing"
)

func TestCostCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newCostCache(3, 10, func(_ string, v string) int { return len(v) })
	keys := func() string {
		var got []string
		for _, k := range []string{"a", "b", "c", "d", "e"} {
			if c.lru.Contains(k) { // unlike Get, leaves the order alone
				got = append(got, k)
			}
		}
		return strings.Join(got, ",")
	}
	steps := []struct {
		key, value string
		want       string // keys held after the Add
		total      int
	}{
		{"a", "1234", "a", 4},
		{"b", "1234", "a,b", 8},
		{"c", "12", "a,b,c", 10},
		{"d", "1", "b,c,d", 7},          // a fourth entry: the least recently used goes
		{"e", "12345678", "d,e", 9},     // over the cost budget: evicted until it fits
		{"d", "12", "d,e", 10},          // replaced: its old cost is not counted twice
		{"a", "12345678901", "d,e", 10}, // costs more than the budget: not kept
	}
	for i, s := range steps {
		c.Add(ctx, s.key, s.value)
		if got := keys(); got != s.want || c.total != s.total {
			t.Errorf("step %d, Add(%s, %q): held %s with total %d, want %s with %d", i, s.key, s.value, got, c.total, s.want, s.total)
		}
	}
}

func TestCostCacheGet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newCostCache(2, 100, func(string, int) int { return 1 })
	c.Add(ctx, "a", 1)
	c.Add(ctx, "b", 2)
	if v, ok := c.Get(ctx, "a"); !ok || v != 1 { // a is now the most recently used
		t.Fatalf("Get(a) = %v, %v; want 1, true", v, ok)
	}
	c.Add(ctx, "c", 3)
	if _, ok := c.Get(ctx, "b"); ok {
		t.Error("b was kept; the least recently used entry should have gone")
	}
	if _, ok := c.Get(ctx, "a"); !ok {
		t.Error("a went, though it was used more recently than b")
	}
}
