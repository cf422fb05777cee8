package gqlhttp

import (
	"context"
	"strings"
	"testing"
)

// TestCacheBudgets: the query cache counts tokens and the persisted-query cache bytes; what
// costs more than the whole budget is not kept (the eviction order is package lrucache's).
func TestCacheBudgets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	apq := newAPQCache(10)
	small, huge := "{ quota { endpoint } }", strings.Repeat("x", apqCacheBytes+1)
	apq.Add(ctx, "small", small)
	apq.Add(ctx, "huge", huge)
	if q, ok := apq.Get(ctx, "small"); !ok || q != small {
		t.Errorf("APQ Get(small) = %q, %v; want the query", q, ok)
	}
	if _, ok := apq.Get(ctx, "huge"); ok {
		t.Errorf("a persisted query of %d bytes was kept; the budget is %d", len(huge), apqCacheBytes)
	}

	docs := newQueryCache()
	long := strings.Repeat("{ a } ", queryCacheTokens/3+1) // 3 tokens each
	docs.Add(ctx, long, nil)
	if _, ok := docs.Get(ctx, long); ok {
		t.Errorf("a document of more than %d tokens was kept", queryCacheTokens)
	}
	docs.Add(ctx, small, nil)
	if _, ok := docs.Get(ctx, small); !ok {
		t.Error("a small document was not kept")
	}
}
