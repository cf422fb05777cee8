// Package gqlhttp serves the GraphQL schema over HTTP: gqlgen's handler with explicit
// transports and extensions (query cache, persisted queries, introspection, the upstream-call
// cost limit), the error presenter, panic recovery, per-operation metrics, and what web
// frontends expect around it: CORS, gzip, cacheable persisted GET queries, and the quota in
// each answer's extensions.
package gqlhttp

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/mdegraph/mdegraph/graph"
	"github.com/mdegraph/mdegraph/resolvers"
)

// Options configure the GraphQL handler.
type Options struct {
	Resolver *resolvers.Resolver
	// MaxUpstreamCalls rejects operations that could need more upstream calls (default 50).
	MaxUpstreamCalls int
	// APQCacheSize bounds the persisted-query cache (default 1000 entries).
	APQCacheSize int
	// Logger receives error and panic reports (default: discard).
	Logger *slog.Logger
	// ObserveOperation, if set, is called once per operation with its errors' codes.
	ObserveOperation func(codes []string, d time.Duration)
	// CORSOrigins are the browser origins allowed to call the endpoint ("*" for any); none
	// means same-origin only.
	CORSOrigins []string
	// CacheMaxAge is how long browsers and CDNs may keep the answer to a persisted GET query
	// (0: never cacheable).
	CacheMaxAge time.Duration
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
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	srv := handler.New(graph.NewExecutableSchema(graph.Config{Resolvers: opts.Resolver}))
	srv.AddTransport(transport.Options{})
	srv.AddTransport(queryParams{})
	srv.AddTransport(boundedPOST{})
	srv.AddTransport(unsupported{}) // last: it supports every request
	srv.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	srv.Use(extension.Introspection{})
	srv.Use(extension.AutomaticPersistedQuery{Cache: lru.New[string](opts.APQCacheSize)})
	srv.Use(resolvers.CostLimit{Max: opts.MaxUpstreamCalls})
	srv.SetErrorPresenter(resolvers.ErrorPresenter(opts.Logger))
	srv.SetRecoverFunc(resolvers.RecoverFunc(opts.Logger))
	quota := opts.Resolver.Quota
	srv.Use(resolvers.OperationState{}) // before the hook below: it reads the operation's state
	srv.AroundResponses(func(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
		start := time.Now()
		resp := next(ctx)
		if resp == nil {
			return nil
		}
		if opts.ObserveOperation != nil {
			opts.ObserveOperation(errorCodes(resp), time.Since(start))
		}
		noteCacheable(ctx, resp)
		if quota != nil {
			if resp.Extensions == nil {
				resp.Extensions = map[string]any{}
			}
			resp.Extensions["quota"] = quotaExtension(ctx, quota)
		}
		return resp
	})
	return withCORS(opts.CORSOrigins, withGzip(withCacheHeaders(opts.CacheMaxAge, srv)))
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
