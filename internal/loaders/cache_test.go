package loaders

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"
)

func TestMemoryCacheTTL(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		c := NewMemoryCache[string](10)
		c.Set(ctx, "a", Entry[string]{Value: "x"}, time.Minute)
		c.Set(ctx, "gone", Entry[string]{Value: "y"}, 0)
		c.Set(ctx, "nf", Entry[string]{NotFound: true}, 10*time.Second)
		steps := []struct {
			at       time.Duration
			key      string
			wantHit  bool
			wantNF   bool
			wantText string
		}{
			{0, "a", true, false, "x"},
			{0, "gone", false, false, ""},
			{0, "nf", true, true, ""},
			{10*time.Second - time.Nanosecond, "nf", true, true, ""},
			{10 * time.Second, "nf", false, false, ""},
			{time.Minute - time.Nanosecond, "a", true, false, "x"},
			{time.Minute, "a", false, false, ""},
		}
		start := time.Now()
		for _, s := range steps {
			time.Sleep(start.Add(s.at).Sub(time.Now()))
			e, ok := c.Get(ctx, s.key)
			if ok != s.wantHit || e.NotFound != s.wantNF || e.Value != s.wantText {
				t.Errorf("at %v, Get(%q) = %+v, %v; want hit %v notFound %v value %q", s.at, s.key, e, ok, s.wantHit, s.wantNF, s.wantText)
			}
		}
	})
}

func TestMemoryCacheBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := NewMemoryCache[int](100)
	for i := range 1000 {
		c.Set(ctx, fmt.Sprint(i), Entry[int]{Value: i}, time.Duration(i+1)*time.Second)
	}
	if n := c.Len(); n > 100 {
		t.Fatalf("Len = %d, want at most 100", n)
	}
	if _, ok := c.Get(ctx, "999"); !ok {
		t.Error("the newest entry was evicted; the ones closest to expiry should go first")
	}
}
