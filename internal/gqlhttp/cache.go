package gqlhttp

import (
	"context"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/mdegraph/mdegraph/internal/querylimit"
)

// Budgets of gqlgen's two caches. Counting entries alone bounds nothing: one parsed document
// can be a hundred times the size of another (its AST takes 200 to 250 bytes per token, and
// MAX_QUERY_TOKENS allows thousands), and one persisted query a thousand times another.
const (
	// queryCacheEntries and queryCacheTokens bound the parsed and validated documents kept:
	// 200,000 tokens is about 50 MB of AST at most, and holds a few hundred honest queries
	// (GraphiQL's introspection query has 163 tokens, a 50-device dashboard about 2,000).
	queryCacheEntries = 1000
	queryCacheTokens  = 200_000
	// apqCacheBytes bounds the text of the persisted queries kept (APQ_CACHE_SIZE bounds their
	// number).
	apqCacheBytes = 8 << 20
)

// newQueryCache returns the cache of parsed documents, by query text.
func newQueryCache() graphql.Cache[*ast.QueryDocument] {
	return newCostCache(queryCacheEntries, queryCacheTokens,
		func(query string, _ *ast.QueryDocument) int { return querylimit.CountTokens(query) })
}

// newAPQCache returns the cache of persisted queries, by hash.
func newAPQCache(entries int) graphql.Cache[string] {
	return newCostCache(entries, apqCacheBytes, func(_ string, query string) int { return len(query) })
}

// costCache is an LRU cache bounded by its number of entries and by the total cost of what it
// holds, evicting the least recently used entries first. An entry that costs more than the
// whole budget is not kept. It is safe for concurrent use.
type costCache[T any] struct {
	cost    func(key string, v T) int
	maxCost int

	mu    sync.Mutex
	lru   *simplelru.LRU[string, costed[T]]
	total int
}

type costed[T any] struct {
	v    T
	cost int
}

var _ graphql.Cache[string] = (*costCache[string])(nil)

func newCostCache[T any](maxEntries, maxCost int, cost func(key string, v T) int) *costCache[T] {
	c := &costCache[T]{cost: cost, maxCost: maxCost}
	var err error
	c.lru, err = simplelru.NewLRU(max(maxEntries, 1), func(_ string, e costed[T]) { c.total -= e.cost })
	if err != nil { // only for a size below 1
		panic(err)
	}
	return c
}

// Get returns the entry for key and marks it recently used.
func (c *costCache[T]) Get(_ context.Context, key string) (T, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.lru.Get(key)
	return e.v, ok
}

// Add keeps v under key, evicting what it must to stay within both bounds.
func (c *costCache[T]) Add(_ context.Context, key string, v T) {
	n := c.cost(key, v)
	if n > c.maxCost {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.lru.Peek(key); ok {
		c.total -= old.cost // replaced without an eviction
	}
	c.lru.Add(key, costed[T]{v: v, cost: n})
	c.total += n
	for c.total > c.maxCost {
		c.lru.RemoveOldest()
	}
}
