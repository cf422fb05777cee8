package gqlhttp

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/mdegraph/mdegraph/internal/lrucache"
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
	return gqlgenCache[*ast.QueryDocument]{lrucache.New(queryCacheEntries, queryCacheTokens,
		func(query string, _ *ast.QueryDocument) int { return querylimit.CountTokens(query) })}
}

// newAPQCache returns the cache of persisted queries, by hash.
func newAPQCache(entries int) graphql.Cache[string] {
	return gqlgenCache[string]{lrucache.New(entries, apqCacheBytes, func(_ string, query string) int { return len(query) })}
}

// gqlgenCache is an LRU cache bounded by its number of entries and by the total cost of what
// it holds (package lrucache: an entry that costs more than the whole budget is not kept), as
// gqlgen's caches use it. Every request reads the query cache, so its reads must not wait for
// each other.
type gqlgenCache[T any] struct {
	lru *lrucache.Cache[string, T]
}

var _ graphql.Cache[string] = gqlgenCache[string]{}

// Get returns the entry for key.
func (c gqlgenCache[T]) Get(_ context.Context, key string) (T, bool) { return c.lru.Get(key) }

// Add keeps v under key.
func (c gqlgenCache[T]) Add(_ context.Context, key string, v T) { c.lru.Add(key, v) }
