package lrucache

import (
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestBounds(t *testing.T) {
	t.Parallel()
	byLen := func(_ string, v string) int { return len(v) }
	tests := []struct {
		name                string
		maxEntries, maxCost int
		cost                func(string, string) int
		add                 []string // keys, each with the value key+key
		want                []string // the keys kept
		wantCost            int
	}{
		{name: "entries", maxEntries: 2, add: []string{"a", "b", "c"}, want: []string{"b", "c"}},
		{name: "cost", maxEntries: 10, maxCost: 5, cost: byLen, add: []string{"a", "b", "c"}, want: []string{"b", "c"}, wantCost: 4},
		{name: "no cost bound", maxEntries: 10, add: []string{"a", "bb", "ccc"}, want: []string{"a", "bb", "ccc"}},
		{name: "too costly alone", maxEntries: 10, maxCost: 5, cost: byLen, add: []string{"a", "xyz"}, want: []string{"a"}, wantCost: 2},
		{name: "replaced", maxEntries: 10, maxCost: 100, cost: byLen, add: []string{"a", "a", "b"}, want: []string{"a", "b"}, wantCost: 4},
		{name: "at least one entry", maxEntries: 0, add: []string{"a", "b"}, want: []string{"b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := New(tt.maxEntries, tt.maxCost, tt.cost)
			for _, k := range tt.add {
				c.Add(k, k+k)
			}
			for _, k := range tt.want {
				if v, ok := c.Get(k); !ok || v != k+k {
					t.Errorf("Get(%q) = %q, %v; want %q, true", k, v, ok, k+k)
				}
			}
			if c.Len() != len(tt.want) {
				t.Errorf("Len() = %d, want %d", c.Len(), len(tt.want))
			}
			if c.Cost() != tt.wantCost {
				t.Errorf("Cost() = %d, want %d", c.Cost(), tt.wantCost)
			}
		})
	}
}

func TestTooCostlyReplacementDropsTheOldValue(t *testing.T) {
	t.Parallel()
	c := New(10, 3, func(_ string, v string) int { return len(v) })
	c.Add("k", "ab")
	c.Add("k", "abcd")
	if v, ok := c.Get("k"); ok {
		t.Errorf("Get = %q after a value over the budget replaced it; want nothing", v)
	}
	if c.Cost() != 0 {
		t.Errorf("Cost() = %d, want 0", c.Cost())
	}
}

// TestReadsKeepEntries: an entry read more than PromoteEvery after it was last moved to the
// front moves there again, so that it outlives entries added after it but not read since;
// Peek is no use, and a read within PromoteEvery does not move it.
func TestReadsKeepEntries(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		c := New[string, int](2, 0, nil)
		c.Add("old", 1)
		time.Sleep(PromoteEvery)
		c.Add("new", 2)
		c.Get("old") // due: to the front
		c.Add("third", 3)
		if _, ok := c.Peek("old"); !ok {
			t.Error("the entry read was dropped; want the one not read since (new) dropped")
		}
		if _, ok := c.Peek("new"); ok {
			t.Error("new was kept; want it dropped as the least recently used")
		}

		// old was moved to the front a moment ago: reading it again now does not move it
		// ahead of third, nor does peeking.
		c.Get("old")
		c.Peek("old")
		c.Add("fourth", 4)
		if _, ok := c.Peek("old"); ok {
			t.Error("old was kept, though read only within PromoteEvery of its last move; want it dropped")
		}
	})
}

func TestRemove(t *testing.T) {
	t.Parallel()
	c := New(10, 100, func(_ string, v string) int { return len(v) })
	c.Add("a", "aa")
	c.Remove("a")
	c.Remove("absent")
	if _, ok := c.Get("a"); ok || c.Len() != 0 || c.Cost() != 0 {
		t.Errorf("after Remove: Len %d, Cost %d, Get ok %v; want 0, 0, false", c.Len(), c.Cost(), ok)
	}
}

// TestConcurrentUse is for the race detector: reads, promotions and writes at once keep the
// bounds.
func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	c := New(50, 500, func(_ string, v []byte) int { return len(v) })
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				k := fmt.Sprint((i * (g + 1)) % 80)
				if i%7 == 0 {
					c.Add(k, make([]byte, i%20))
				} else if v, ok := c.Get(k); ok && len(v) >= 20 {
					t.Errorf("Get(%s): a value of %d bytes, never added", k, len(v))
				}
			}
		})
	}
	wg.Wait()
	if c.Len() > 50 || c.Cost() > 500 {
		t.Errorf("Len %d, Cost %d; want at most 50 and 500", c.Len(), c.Cost())
	}
}

// BenchmarkGetParallel is the read path from every CPU at once, on a few hot keys.
func BenchmarkGetParallel(b *testing.B) {
	c := New[string, int](1000, 0, nil)
	keys := make([]string, 16)
	for i := range keys {
		keys[i] = fmt.Sprint("key", i)
		c.Add(keys[i], i)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			c.Get(keys[i%len(keys)])
			i++
		}
	})
}
