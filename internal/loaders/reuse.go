package loaders

import (
	"context"
	"slices"
	"sync/atomic"
	"time"

	"github.com/mdegraph/mdegraph/internal/defender"
)

// What a request's answers came from, so that a whole answer built from them may be reused
// (the response cache of package gqlhttp): only when every upstream answer the request read
// was fresh in the cache, and only while all of them stay fresh.

// Reuse says whether what a request read can be read again, unchanged, without asking anyone.
type Reuse struct {
	// OK is true when every upstream answer the request read came fresh from the cache: no
	// call made, joined or refused, nothing stale, no error (a remembered 404 included), and
	// at least one answer read.
	OK bool
	// FreshUntil is when the first of those answers stops being fresh.
	FreshUntil time.Time
	// Saved counts, per endpoint family (defender.Endpoints' order), the calls the cache
	// saved the request.
	Saved [numEndpoints]int
}

// numEndpoints is the number of endpoint families, len(defender.Endpoints).
const numEndpoints = 5

// reuse is a request's record of what its answers came from; safe for concurrent use.
type reuse struct {
	freshUntil atomic.Int64 // the earliest FreshUntil read, in Unix nanoseconds; 0: none read
	other      atomic.Bool  // an answer came from anything but a fresh cached one
	saved      [numEndpoints]atomic.Int32
}

// fromCache is cached for the request's own reads, noting what each answer came from.
func fromCache[V any](ctx context.Context, l *Loaders, k *kind[V], ref string) (Result[V], bool) {
	r, freshUntil, ok := cached(ctx, l.fetcher, k, cacheKey(ctx, k.ep, ref), ref)
	if !ok || r.Err != nil {
		l.reuse.other.Store(true)
		return r, ok
	}
	until := freshUntil.UnixNano()
	for {
		cur := l.reuse.freshUntil.Load()
		if cur != 0 && cur <= until || l.reuse.freshUntil.CompareAndSwap(cur, until) {
			break
		}
	}
	if i := slices.Index(defender.Endpoints, k.ep); i >= 0 {
		l.reuse.saved[i].Add(1)
	}
	return r, true
}

// Reuse reports whether the request's answers so far may be reused as a whole, and until when.
func (l *Loaders) Reuse() Reuse {
	if l == nil {
		return Reuse{}
	}
	until := l.reuse.freshUntil.Load()
	r := Reuse{OK: until != 0 && !l.reuse.other.Load()}
	if r.OK {
		r.FreshUntil = time.Unix(0, until)
	}
	for i := range r.Saved {
		r.Saved[i] = int(l.reuse.saved[i].Load())
	}
	return r
}

// Reused notes that the request was answered with a whole answer reused (r is what the
// request that built it read): the calls its reads saved count as saved by the cache again,
// as they would have had the request read them itself.
func (l *Loaders) Reused(r Reuse) {
	if l == nil {
		return
	}
	for i, n := range r.Saved {
		if n > 0 {
			l.fetcher.opts.Observer.Saved(defender.Endpoints[i], SavedByCache, n)
		}
	}
}
