// Package lrucache is a cache that drops its least recently used entries to stay within a
// number of entries and a total cost (bytes, tokens: whatever the caller's cost function
// counts), built for reads from many goroutines at once.
//
// A plain LRU cache moves an entry to the front on every read, so every read takes the
// cache's one exclusive lock, and under load every request queues on it: a goroutine
// descheduled while holding it stalls all the others (a lock convoy; the service's slowest
// answers waited on exactly that). Here a read takes a shared lock, which readers never wait
// for among themselves, and moves the entry to the front at most once a second
// (PromoteEvery), and only if the exclusive lock is free at that moment: the order is then
// least recently used to within a second, which is all a cache of answers needs. Writes
// (Add, Remove) take the exclusive lock.
package lrucache

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// PromoteEvery is how often, at most, a read moves an entry to the front of the LRU order.
const PromoteEvery = time.Second

// Cache is a least-recently-used cache bounded by its number of entries and by the total cost
// of its entries. It is safe for concurrent use.
type Cache[K comparable, V any] struct {
	cost    func(K, V) int
	maxCost int

	mu    sync.RWMutex
	lru   *simplelru.LRU[K, *entry[V]]
	total int // the cost of the entries held
}

type entry[V any] struct {
	v    V
	cost int
	// promoted is when the entry last moved to the front (Unix nanoseconds).
	promoted atomic.Int64
}

// New returns a cache of at most maxEntries entries (at least 1) whose costs add up to at
// most maxCost; maxCost ≤ 0 or cost nil: no bound on cost.
func New[K comparable, V any](maxEntries, maxCost int, cost func(K, V) int) *Cache[K, V] {
	c := &Cache[K, V]{cost: cost, maxCost: maxCost}
	if cost == nil || maxCost <= 0 {
		c.cost, c.maxCost = func(K, V) int { return 0 }, 0
	}
	var err error
	c.lru, err = simplelru.NewLRU(max(maxEntries, 1), func(_ K, e *entry[V]) { c.total -= e.cost })
	if err != nil { // only for a size below 1, ruled out above
		panic(err)
	}
	return c
}

// Get returns the value kept for k; a read counts as a use for the LRU order (to within
// PromoteEvery).
func (c *Cache[K, V]) Get(k K) (V, bool) {
	e := c.entry(k)
	if e == nil {
		var zero V
		return zero, false
	}
	if now := time.Now().UnixNano(); now-e.promoted.Load() >= int64(PromoteEvery) && c.mu.TryLock() {
		if cur, ok := c.lru.Peek(k); ok && cur == e {
			c.lru.Get(k) // to the front
			e.promoted.Store(now)
		}
		c.mu.Unlock()
	}
	return e.v, true
}

// Peek returns the value kept for k without counting a use.
func (c *Cache[K, V]) Peek(k K) (V, bool) {
	e := c.entry(k)
	if e == nil {
		var zero V
		return zero, false
	}
	return e.v, true
}

// entry returns k's entry, nil if none, under the shared lock.
func (c *Cache[K, V]) entry(k K) *entry[V] {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, _ := c.lru.Peek(k)
	return e
}

// Add keeps v under k, replacing what was kept, and drops the least recently used entries
// until both bounds hold. A value that costs more than the whole budget is not kept (nor is
// what k held before).
func (c *Cache[K, V]) Add(k K, v V) {
	n := c.cost(k, v)
	e := &entry[V]{v: v, cost: n}
	e.promoted.Store(time.Now().UnixNano())
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.maxCost > 0 && n > c.maxCost {
		c.lru.Remove(k)
		return
	}
	if old, ok := c.lru.Peek(k); ok {
		c.total -= old.cost // replaced without an eviction
	}
	c.lru.Add(k, e)
	c.total += n
	for c.maxCost > 0 && c.total > c.maxCost {
		c.lru.RemoveOldest()
	}
}

// Remove forgets k.
func (c *Cache[K, V]) Remove(k K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.Remove(k)
}

// Len returns the number of entries held.
func (c *Cache[K, V]) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.lru.Len()
}

// Cost returns the total cost of the entries held.
func (c *Cache[K, V]) Cost() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.total
}
