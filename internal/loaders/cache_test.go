package loaders

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mdegraph/mdegraph/internal/defender"
	"github.com/mdegraph/mdegraph/internal/lrucache"
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
		t.Error("the newest entry was evicted; the least recently used should go first")
	}
}

func TestMemoryCacheSetZeroForgets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := NewMemoryCache[string](10)
	c.Set(ctx, "a", Entry[string]{Value: "x"}, time.Hour)
	c.Set(ctx, "a", Entry[string]{}, 0)
	if e, ok := c.Get(ctx, "a"); ok {
		t.Errorf("Get after Set with ttl 0 = %+v, want a miss", e)
	}
	if n := c.Len(); n != 0 {
		t.Errorf("Len = %d, want 0", n)
	}
}

// TestMemoryCacheLeastRecentlyUsedGoes: when full, the entry read least recently goes (reads
// count to within lrucache.PromoteEvery).
func TestMemoryCacheLeastRecentlyUsedGoes(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		c := NewMemoryCache[int](3)
		for i := range 3 {
			c.Set(ctx, fmt.Sprint(i), Entry[int]{Value: i}, time.Hour)
		}
		time.Sleep(lrucache.PromoteEvery)
		c.Get(ctx, "0") // 1 is now the least recently used
		c.Set(ctx, "3", Entry[int]{Value: 3}, time.Hour)
		for key, want := range map[string]bool{"0": true, "1": false, "2": true, "3": true} {
			if _, ok := c.Get(ctx, key); ok != want {
				t.Errorf("Get(%s): hit %v, want %v", key, ok, want)
			}
		}
	})
}

// TestEntryFreshness: an entry is kept for the ttl Set gives it, and fresh until FreshUntil.
func TestEntryFreshness(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		c := NewMemoryCache[string](10)
		now := time.Now()
		c.Set(ctx, "a", Entry[string]{Value: "x", Fetched: now, FreshUntil: now.Add(time.Minute)}, time.Hour)
		for _, s := range []struct {
			at               time.Duration
			wantKept, wantFr bool
		}{
			{0, true, true},
			{time.Minute - time.Nanosecond, true, true},
			{time.Minute, true, false},
			{time.Hour - time.Nanosecond, true, false},
			{time.Hour, false, false},
		} {
			time.Sleep(now.Add(s.at).Sub(time.Now()))
			e, ok := c.Get(ctx, "a")
			if ok != s.wantKept || ok && e.Fresh(time.Now()) != s.wantFr {
				t.Errorf("at %v: kept %v fresh %v, want %v %v", s.at, ok, e.Fresh(time.Now()), s.wantKept, s.wantFr)
			}
		}
	})
}

// ResultOf gives, for a key the Fetcher made, what a cache hit gives: the value, or the 404.
func TestResultOf(t *testing.T) {
	t.Parallel()
	ctx := WithIdentity(t.Context(), "app:tenant\x00odd")
	key := cacheKey(ctx, defender.EndpointLogonUsers, "abc")
	if r := ResultOf(key, Entry[int]{Value: 7}); r.Err != nil || r.Value != 7 {
		t.Errorf("value entry: got %+v, want 7", r)
	}
	r := ResultOf(key, Entry[int]{NotFound: true})
	var er *defender.ErrorResponse
	if !errors.As(r.Err, &er) || er.Endpoint != defender.EndpointLogonUsers || er.Machine != "abc" || !defender.IsNotFound(r.Err) {
		t.Errorf("not-found entry: got %+v, want the 404 of machines.logonusers for abc", r.Err)
	}
}
