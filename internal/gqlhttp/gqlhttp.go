// Package gqlhttp serves the GraphQL schema over HTTP: gqlgen's handler with explicit
// transports and extensions (query cache, persisted queries, introspection, the upstream-call
// cost limit), the error presenter, panic recovery and per-operation metrics.
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
}

// New returns the GraphQL HTTP handler (POST and GET).
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
	srv.AddTransport(transport.GET{})
	srv.AddTransport(transport.POST{})
	srv.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	srv.Use(extension.Introspection{})
	srv.Use(extension.AutomaticPersistedQuery{Cache: lru.New[string](opts.APQCacheSize)})
	srv.Use(resolvers.CostLimit{Max: opts.MaxUpstreamCalls})
	srv.SetErrorPresenter(resolvers.ErrorPresenter(opts.Logger))
	srv.SetRecoverFunc(resolvers.RecoverFunc(opts.Logger))
	if observe := opts.ObserveOperation; observe != nil {
		srv.AroundResponses(func(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
			start := time.Now()
			resp := next(ctx)
			if resp != nil {
				observe(errorCodes(resp), time.Since(start))
			}
			return resp
		})
	}
	return srv
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
