package loaders

import (
	"context"
	"time"

	"github.com/mdegraph/mdegraph/internal/lrucache"
)

// Entry is what a cache keeps for one key: an upstream answer, or the fact that the upstream
// said 404. Errors of any other kind are never cached.
//
// An entry carries its own freshness. Until FreshUntil it is the answer, reused as it is;
// after that, for as long as the cache keeps it (the ttl given to Set), it is only a fallback
// for when a fresh answer cannot be had (see Options.StaleTTL). A 404 is never a fallback.
type Entry[V any] struct {
	Value    V
	NotFound bool
	// Fetched is when the upstream gave the answer.
	Fetched time.Time
	// FreshUntil is when the answer stops being reused as fresh.
	FreshUntil time.Time
}

// Fresh reports whether e is reused as it is at t.
func (e Entry[V]) Fresh(t time.Time) bool { return t.Before(e.FreshUntil) }

// Cache keeps upstream answers for a while. Keys already include the identity the upstream call
// was made as. Implementations must be safe for concurrent use; a Get error or miss is
// reported as a miss, so the cache can never fail a query.
type Cache[V any] interface {
	// Get returns the entry kept for key, fresh or not (see Entry.Fresh).
	Get(ctx context.Context, key string) (Entry[V], bool)
	// Set keeps e for ttl; a ttl of zero or less forgets key.
	Set(ctx context.Context, key string, e Entry[V], ttl time.Duration)
}

var _ Cache[int] = (*MemoryCache[int])(nil)

// MemoryCache is an in-process Cache bounded to a number of entries: when it is full, the
// entry used least recently goes. Each entry expires after its own ttl, checked when it is
// read; an expired entry that is never read again leaves as the least recently used. It is
// safe for concurrent use, and its reads do not wait for each other (package lrucache: every
// request reads it, and a cache whose reads queue on one lock made the slowest answers wait
// on that lock).
//
// It keeps its own ttl per entry rather than use golang-lru's expirable LRU: that one has one
// TTL per cache, where entries here have three (an answer, its stale fallback, a 404), and its
// cleanup goroutine cannot be stopped (v2.0.7), so every cache would leak one.
type MemoryCache[V any] struct {
	lru *lrucache.Cache[string, memoryItem[V]]
}

type memoryItem[V any] struct {
	entry   Entry[V]
	expires time.Time
}

// NewMemoryCache returns a cache that holds at most maxEntries entries (at least 1).
func NewMemoryCache[V any](maxEntries int) *MemoryCache[V] {
	return &MemoryCache[V]{lru: lrucache.New[string, memoryItem[V]](maxEntries, 0, nil)}
}

// Get returns the entry for key if it has not expired.
func (c *MemoryCache[V]) Get(_ context.Context, key string) (Entry[V], bool) {
	it, ok := c.lru.Get(key)
	if !ok || !time.Now().Before(it.expires) {
		return Entry[V]{}, false
	}
	return it.entry, true
}

// Set keeps e for ttl; a ttl of zero or less forgets key.
func (c *MemoryCache[V]) Set(_ context.Context, key string, e Entry[V], ttl time.Duration) {
	if ttl <= 0 {
		c.lru.Remove(key)
		return
	}
	c.lru.Add(key, memoryItem[V]{entry: e, expires: time.Now().Add(ttl)})
}

// Len returns the number of entries held, expired or not.
func (c *MemoryCache[V]) Len() int { return c.lru.Len() }
