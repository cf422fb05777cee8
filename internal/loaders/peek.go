package loaders

import (
	"context"
	"time"

	"github.com/mdegraph/mdegraph/internal/defender"
)

// What the upstream-call estimate may know of the cache before a query runs (package
// resolvers, CostLimit): which answers the request would be given without a call. It only
// reads; it counts nothing as saved and changes no entry's age.
//
// An answer counts as cached only if it stays cached until the request's deadline: the
// estimate is a bound on what the request will spend, and an entry that expired between the
// estimate and the resolver's read would make it one call too low. Without a deadline, or
// with a cache that cannot say when an entry expires, nothing counts as cached.

// ExpiringCache is a Cache that also says until when an entry lasts.
type ExpiringCache[V any] interface {
	Cache[V]
	// GetUntil is Get, and the instant the entry expires.
	GetUntil(ctx context.Context, key string) (Entry[V], time.Time, bool)
}

var _ ExpiringCache[int] = (*MemoryCache[int])(nil)

// GetUntil returns the entry for key if it has not expired, and when it will (the end of its
// ttl; see Entry.FreshUntil for when it stops being fresh). It does not count as a use for the
// LRU order.
func (c *MemoryCache[V]) GetUntil(_ context.Context, key string) (Entry[V], time.Time, bool) {
	it, ok := c.lru.Peek(key)
	if !ok || !time.Now().Before(it.expires) {
		return Entry[V]{}, time.Time{}, false
	}
	return it.entry, it.expires, true
}

// CachedMachine reports whether GET /api/machines/{ref} would be answered from the cache for
// the rest of the request; if so, m is the machine (its ID resolves a computer name), or nil
// when the cached answer is Defender's 404.
func (l *Loaders) CachedMachine(ctx context.Context, ref defender.MachineRef) (m *defender.Machine, ok bool) {
	if l == nil {
		return nil, false
	}
	return peekKind(ctx, l.fetcher.machines, ref.String())
}

// CachedLogonUsers reports whether the logon users of the device id would be answered from
// the cache for the rest of the request (a 404 included, with users nil).
func (l *Loaders) CachedLogonUsers(ctx context.Context, id string) (users []defender.User, ok bool) {
	if l == nil {
		return nil, false
	}
	return peekKind(ctx, l.fetcher.users, id)
}

// CachedAlerts reports whether the alerts of the device id would be answered from the cache
// for the rest of the request (a 404 included).
func (l *Loaders) CachedAlerts(ctx context.Context, id string) bool {
	if l == nil {
		return false
	}
	_, ok := peekKind(ctx, l.fetcher.alerts, id)
	return ok
}

// CachedUserMachines reports whether the machines of the account would be answered from the
// cache for the rest of the request, and if so which.
func (l *Loaders) CachedUserMachines(ctx context.Context, name defender.AccountName) ([]defender.Machine, bool) {
	if l == nil {
		return nil, false
	}
	return peekKind(ctx, l.fetcher.userMachines, name.String())
}

// CachedMachinePage reports whether the page would be answered from the cache for the rest
// of the request, and if so with which machines.
func (l *Loaders) CachedMachinePage(ctx context.Context, q PageQuery) ([]defender.Machine, bool) {
	if l == nil {
		return nil, false
	}
	return peekKind(ctx, l.fetcher.pages, q.key())
}

// peekKind returns the cached answer of kind k for key of ctx's identity, nil for a cached 404,
// if it stays fresh past ctx's deadline (an entry kept only as a stale fallback does not spare
// the call).
func peekKind[V any](ctx context.Context, k *kind[V], key string) (V, bool) {
	var zero V
	deadline, ok := ctx.Deadline()
	ec, expiring := k.cache.(ExpiringCache[V])
	if !ok || !expiring {
		return zero, false
	}
	e, until, ok := ec.GetUntil(ctx, cacheKey(ctx, k.ep, key))
	if !e.FreshUntil.IsZero() && e.FreshUntil.Before(until) {
		until = e.FreshUntil
	}
	if !ok || !until.After(deadline) {
		return zero, false
	}
	if e.NotFound {
		return zero, true
	}
	return e.Value, true
}
