package loaders

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Entry is what a cache keeps for one key: an upstream answer, or the fact that the upstream
// said 404. Errors of any other kind are never cached.
type Entry[V any] struct {
	Value    V
	NotFound bool
}

// Cache keeps upstream answers for a while. Keys already include the identity the upstream call
// was made as. Implementations must be safe for concurrent use; a Get error or miss is
// reported as a miss, so the cache can never fail a query.
type Cache[V any] interface {
	Get(ctx context.Context, key string) (Entry[V], bool)
	Set(ctx context.Context, key string, e Entry[V], ttl time.Duration)
}

var _ Cache[int] = (*MemoryCache[int])(nil)

// MemoryCache is an in-process Cache bounded to a number of entries. It is safe for
// concurrent use.
type MemoryCache[V any] struct {
	max int

	mu    sync.Mutex
	items map[string]memoryItem[V]
}

type memoryItem[V any] struct {
	entry   Entry[V]
	expires time.Time
}

// NewMemoryCache returns a cache that holds at most maxEntries entries.
func NewMemoryCache[V any](maxEntries int) *MemoryCache[V] {
	return &MemoryCache[V]{max: max(maxEntries, 1), items: make(map[string]memoryItem[V])}
}

// Get returns the entry for key if it has not expired.
func (c *MemoryCache[V]) Get(_ context.Context, key string) (Entry[V], bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	it, ok := c.items[key]
	if !ok {
		return Entry[V]{}, false
	}
	if !time.Now().Before(it.expires) {
		delete(c.items, key)
		return Entry[V]{}, false
	}
	return it.entry, true
}

// Set stores e for ttl; a ttl of zero or less stores nothing. When the cache is full, expired
// entries go first, then the entries closest to expiry.
func (c *MemoryCache[V]) Set(_ context.Context, key string, e Entry[V], ttl time.Duration) {
	if ttl <= 0 {
		return
	}
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, exists := c.items[key]; !exists && len(c.items) >= c.max {
		c.evict(now)
	}
	c.items[key] = memoryItem[V]{entry: e, expires: now.Add(ttl)}
}

// Len returns the number of entries held, expired or not.
func (c *MemoryCache[V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items)
}

// evict makes room for at least one entry: it drops every expired entry, and if none had
// expired, the tenth of entries closest to expiry. c.mu must be held.
func (c *MemoryCache[V]) evict(now time.Time) {
	for k, it := range c.items {
		if !now.Before(it.expires) {
			delete(c.items, k)
		}
	}
	if len(c.items) < c.max {
		return
	}
	// Rare (the cache is sized well above a TTL's worth of devices): one sort per tenth evicted.
	type aged struct {
		key     string
		expires time.Time
	}
	all := make([]aged, 0, len(c.items))
	for k, it := range c.items {
		all = append(all, aged{k, it.expires})
	}
	slices.SortFunc(all, func(a, b aged) int { return a.expires.Compare(b.expires) })
	for _, a := range all[:max(len(all)/10, 1)] {
		delete(c.items, a.key)
	}
}
