// Package gqlhttp serves the GraphQL schema over HTTP: gqlgen's handler with explicit
// transports and extensions (the query limits checked before parsing, bounded query and
// persisted-query caches, introspection when allowed, the upstream-call cost limit), the error
// presenter, panic recovery, per-operation metrics and log lines, the GraphQL over HTTP
// spec's status rules, and what web frontends expect around it: gzip, cacheable persisted GET
// queries, and the quota in each answer's extensions. CORS wraps the whole endpoint, sign-in
// included, so it is a middleware of its own (CORS).
package gqlhttp

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"

	"github.com/mdegraph/mdegraph/graph"
	"github.com/mdegraph/mdegraph/internal/callerauth"
	"github.com/mdegraph/mdegraph/internal/querylimit"
	"github.com/mdegraph/mdegraph/resolvers"
)

// Options configure the GraphQL handler.
type Options struct {
	Resolver *resolvers.Resolver
	// MaxUpstreamCalls rejects operations that could need more upstream calls (default 50).
	MaxUpstreamCalls int
	// APQCacheSize bounds the persisted-query cache (default 1000 entries).
	APQCacheSize int
	// MaxBodyBytes bounds a POST body and a GET's query string (default MaxBodyBytes); serve
	// the handler with an http.Server whose MaxHeaderBytes is MaxHeaderBytes(MaxBodyBytes).
	MaxBodyBytes int64
	// Limits bound each query before it is parsed (package querylimit); a zero field is no
	// limit. Limits.Tokens is also gqlgen's parser token limit.
	Limits querylimit.Limits
	// Introspection answers __schema and __type (the playground's docs) and suggests field
	// names in validation errors. Without it both are refused with INTROSPECTION_DISABLED,
	// and validation errors suggest nothing.
	Introspection bool
	// Logger receives error and panic reports, refused queries and slow parses (default:
	// discard).
	Logger *slog.Logger
	// SlowParse is how long parsing and validating a document may take before a warning
	// (default SlowParse).
	SlowParse time.Duration
	// ObserveOperation, if set, is called once per operation (refused ones included) with the
	// request's context (which names the caller), its errors' codes and the time since the
	// request reached the handler: reading the body, parsing and validating included.
	ObserveOperation func(ctx context.Context, codes []string, d time.Duration)
	// CacheMaxAge is how long browsers and CDNs may keep the answer to a persisted GET query
	// (0: never cacheable).
	CacheMaxAge time.Duration
	// AuthMode is AUTH_MODE (default none): in any other mode no answer is cacheable by a
	// shared cache (callerauth.MayCachePublicly).
	AuthMode callerauth.Mode
	// ResponseCache, when not nil, answers repeated operations whose answers came wholly
	// from the loaders' cache without running them again (RESPONSE_CACHE_BYTES).
	ResponseCache *ResponseCache
}

// New returns the GraphQL HTTP handler (POST and GET). Every error it writes carries
// extensions.code, including the answer to a request it does not serve.
func New(opts Options) http.Handler {
	if opts.MaxUpstreamCalls <= 0 {
		opts.MaxUpstreamCalls = 50
	}
	if opts.APQCacheSize <= 0 {
		opts.APQCacheSize = 1000
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = MaxBodyBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.SlowParse <= 0 {
		opts.SlowParse = SlowParse
	}
	srv := handler.New(graph.NewExecutableSchema(graph.Config{Resolvers: opts.Resolver}))
	srv.AddTransport(options{})
	srv.AddTransport(queryParams{max: opts.MaxBodyBytes})
	srv.AddTransport(boundedPOST{max: opts.MaxBodyBytes})
	srv.AddTransport(unsupported{}) // last: it supports every request
	srv.SetQueryCache(newQueryCache())
	srv.SetParserTokenLimit(max(opts.Limits.Tokens, 0)) // a backstop: queryLimits counts first
	// Before parsing, in this order: the limits (so that nothing over them is kept as a
	// persisted query), persisted queries, then a query must be there.
	srv.Use(queryLimits{limits: opts.Limits})
	srv.Use(extension.AutomaticPersistedQuery{Cache: newAPQCache(opts.APQCacheSize)})
	srv.Use(requireQuery{})
	// After validation.
	if opts.Introspection {
		srv.Use(extension.Introspection{})
	} else {
		srv.Use(noIntrospection{})
		srv.SetDisableSuggestion(true) // "Did you mean ...?" would tell the schema piece by piece
	}
	if opts.ResponseCache != nil {
		srv.Use(opts.ResponseCache.Lookup()) // before the limit: an answer it has makes no call
	}
	srv.Use(resolvers.CostLimit{Max: opts.MaxUpstreamCalls, Answered: Answered})
	srv.SetErrorPresenter(resolvers.ErrorPresenter(opts.Logger))
	srv.SetRecoverFunc(resolvers.RecoverFunc(opts.Logger))
	srv.AroundOperations(func(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
		if x := exchangeFrom(ctx); x != nil {
			x.executed = true
		}
		traceOperation(ctx)
		return next(ctx)
	})
	quota := opts.Resolver.Quota
	log := newOperationLog(opts.Logger, opts.SlowParse)
	srv.Use(resolvers.OperationState{}) // before the hook below: it reads the operation's state
	srv.AroundResponses(func(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
		resp := next(ctx)
		if resp == nil {
			return nil
		}
		x := exchangeFrom(ctx)
		codes := errorCodes(resp)
		traceResponse(ctx, codes)
		x.answered(resp, codes)
		if opts.ObserveOperation != nil {
			opts.ObserveOperation(ctx, codes, x.elapsed())
		}
		log.answered(ctx, resp, codes)
		noteCacheable(ctx, resp)
		if quota != nil {
			if resp.Extensions == nil {
				resp.Extensions = map[string]any{}
			}
			resp.Extensions["quota"] = quotaExtension(ctx, quota, x)
		}
		return resp
	})
	if opts.ResponseCache != nil {
		srv.Use(opts.ResponseCache) // innermost: every hook above sees its answers as any other
	}
	if opts.AuthMode == "" {
		opts.AuthMode = callerauth.ModeNone
	}
	return withGzip(withCacheHeaders(opts.CacheMaxAge, opts.AuthMode, withResponseRules(withOperationSpan(srv))))
}

// errorCodes lists the extensions.code of each error in resp.
func errorCodes(resp *graphql.Response) []string {
	if len(resp.Errors) == 0 {
		return nil
	}
	codes := make([]string, len(resp.Errors))
	for i, e := range resp.Errors {
		code, _ := e.Extensions["code"].(string)
		if code == "" {
			code = "UNKNOWN"
		}
		codes[i] = code
	}
	return codes
}
