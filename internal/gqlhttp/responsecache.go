package gqlhttp

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"hash/maphash"
	"io"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/mdegraph/mdegraph/internal/loaders"
	"github.com/mdegraph/mdegraph/internal/lrucache"
	"github.com/mdegraph/mdegraph/resolvers"
)

// A response cache, as API gateways keep one: the data of an answer whose every part came
// fresh from the loaders' cache is kept, and the same operation (the same query, operation
// name and variables) of the same upstream identity is answered with it, without running the
// resolvers, for as long as every one of those parts stays fresh. Only data is kept:
// extensions.quota is read for each answer, as for any other, and answers with an error, a
// stale part, or a field that reads live state (Query.quota) are never kept.
//
// It sits inside gqlgen, after everything that refuses a request or must see every
// operation: the CSRF check, the sign-in, the caller limit, the query limits, the persisted
// queries, validation and the upstream-call limit run before it, and the metrics, the
// operation log, extensions.quota, the cache headers and the status rules after it, exactly
// as for an answer the resolvers made.

// reusableRoots are the root fields whose answers come from the loaders alone: an operation
// selecting any other (quota, introspection) is not kept. A root field added to the schema
// is not cached until it is listed here.
var reusableRoots = map[string]bool{"machine": true, "machines": true, "__typename": true}

func isReusable(name string) bool { return reusableRoots[name] }

// identityGenerations is how many counters the identities' generations spread over.
const identityGenerations = 256

// ResponseCache keeps whole answers (see above), least recently used first out once their
// bytes exceed its budget. It is safe for concurrent use; a nil *ResponseCache keeps nothing.
type ResponseCache struct {
	lru     *lrucache.Cache[[sha256.Size]byte, *keptAnswer]
	observe func(hit bool)
	seed    maphash.Seed
	// generations are bumped by Forget, for the identities that hash to them: an answer
	// kept under an older generation is not served.
	generations [identityGenerations]atomic.Uint64
}

// keptAnswer is one answer's data and what it was built from.
type keptAnswer struct {
	data       json.RawMessage
	freshUntil time.Time
	generation uint64
	reuse      loaders.Reuse
}

// keptOverhead is about what an entry costs besides its data: its key, its bookkeeping.
const keptOverhead = 256

// NewResponseCache returns a cache of at most maxBytes bytes of answers; observe, if not nil,
// learns whether each lookup found an answer.
func NewResponseCache(maxBytes int, observe func(hit bool)) *ResponseCache {
	if observe == nil {
		observe = func(bool) {}
	}
	return &ResponseCache{
		lru: lrucache.New(max(maxBytes/keptOverhead, 1), maxBytes,
			func(_ [sha256.Size]byte, a *keptAnswer) int { return len(a.data) + keptOverhead }),
		observe: observe,
		seed:    maphash.MakeSeed(),
	}
}

// Forget drops every answer kept for identity (loaders.IdentityFrom): a refusal made the
// loaders' cache drop one of its answers (loaders.Options.Forgotten), so nothing built from
// its answers may be served either.
func (c *ResponseCache) Forget(identity string) {
	if c == nil {
		return
	}
	c.generation(identity).Add(1)
}

func (c *ResponseCache) generation(identity string) *atomic.Uint64 {
	return &c.generations[maphash.String(c.seed, identity)%identityGenerations]
}

// Bytes returns what the kept answers cost, in bytes.
func (c *ResponseCache) Bytes() int {
	if c == nil {
		return 0
	}
	return c.lru.Cost()
}

// The cache is two gqlgen extensions: its look (Lookup), an operation context mutator added
// before the upstream-call limit, and the ResponseCache itself, a response interceptor added
// last, innermost, so that every response hook sees the answers it gives as any other.
var (
	_ interface {
		graphql.HandlerExtension
		graphql.ResponseInterceptor
	} = (*ResponseCache)(nil)
	_ interface {
		graphql.HandlerExtension
		graphql.OperationContextMutator
	} = lookupExtension{}
)

// ExtensionName names the extension for gqlgen.
func (*ResponseCache) ExtensionName() string { return "ResponseCache" }

// Validate accepts any schema.
func (*ResponseCache) Validate(graphql.ExecutableSchema) error { return nil }

// Lookup is the extension that looks for each operation's answer (see above).
func (c *ResponseCache) Lookup() graphql.HandlerExtension { return lookupExtension{c} }

type lookupExtension struct{ c *ResponseCache }

// ExtensionName names the extension for gqlgen.
func (lookupExtension) ExtensionName() string { return "ResponseCacheLookup" }

// Validate accepts any schema.
func (lookupExtension) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationContext looks for the operation's answer (ResponseCache.look).
func (e lookupExtension) MutateOperationContext(ctx context.Context, opCtx *graphql.OperationContext) *gqlerror.Error {
	e.c.look(ctx, opCtx)
	return nil
}

// lookup is one request's look in the cache, made once the operation is validated (so that
// the upstream-call limit can know the answer needs no call) and used when it runs.
type lookup struct {
	key        [sha256.Size]byte
	generation uint64
	kept       *keptAnswer // nil: none to serve
}

// look looks for the operation's answer, and notes what it found in the request's exchange.
func (c *ResponseCache) look(ctx context.Context, opCtx *graphql.OperationContext) {
	x := exchangeFrom(ctx)
	if c == nil || x == nil {
		return
	}
	key, ok := answerKey(ctx, opCtx)
	if !ok {
		return
	}
	look := &lookup{key: key, generation: c.generation(loaders.IdentityFrom(ctx)).Load()}
	if a, ok := c.lru.Get(key); ok && a.generation == look.generation && time.Now().Before(a.freshUntil) {
		look.kept = a
	}
	c.observe(look.kept != nil)
	x.answers = look
}

// Answered reports whether the operation in ctx is answered from the cache
// (resolvers.CostLimit.Answered).
func Answered(ctx context.Context) bool {
	x := exchangeFrom(ctx)
	return x != nil && x.answers != nil && x.answers.kept != nil
}

// InterceptResponse answers with the kept answer the lookup found, or keeps the answer the
// resolvers make when it may be reused.
func (c *ResponseCache) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	x := exchangeFrom(ctx)
	if c == nil || x == nil || x.answers == nil {
		return next(ctx)
	}
	look := x.answers
	l := loaders.For(ctx)
	if a := look.kept; a != nil {
		l.Reused(a.reuse)
		return &graphql.Response{Data: a.data}
	}
	resp := next(ctx)
	if resp == nil || len(resp.Errors) > 0 || resp.HasNext != nil || resp.Data == nil || resolvers.ServedStale(ctx) {
		return resp
	}
	reuse := l.Reuse()
	if !reuse.OK || !time.Now().Before(reuse.FreshUntil) || c.generation(loaders.IdentityFrom(ctx)).Load() != look.generation {
		return resp // a part was not fresh from the cache, or a refusal came in the meantime
	}
	c.lru.Add(look.key, &keptAnswer{data: resp.Data, freshUntil: reuse.FreshUntil, generation: look.generation, reuse: reuse})
	return resp
}

// answerKey is the key of the operation's answer: the SHA-256 of the upstream identity, the
// operation name, the query (each ended by a zero byte, which none of them can hold) and the
// variables as coerced (encoding/json writes a map's keys sorted, so the same variables always
// give the same key). ok is false for an operation whose
// answer is not kept: not a query, or selecting a root field not in reusableRoots.
func answerKey(ctx context.Context, opCtx *graphql.OperationContext) (key [sha256.Size]byte, ok bool) {
	if opCtx.Operation == nil || opCtx.Operation.Operation != ast.Query || !resolvers.EveryRootField(opCtx.Doc, opCtx.Operation.SelectionSet, isReusable) {
		return key, false
	}
	vars, err := json.Marshal(opCtx.Variables)
	if err != nil {
		return key, false
	}
	h := sha256.New()
	for _, part := range [...]string{loaders.IdentityFrom(ctx), opCtx.OperationName, opCtx.RawQuery} {
		io.WriteString(h, part)
		h.Write([]byte{0})
	}
	h.Write(vars)
	h.Sum(key[:0])
	return key, true
}
