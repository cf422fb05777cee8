// Package resolvers holds the GraphQL resolvers. They stay thin: arguments are validated, then
// every upstream answer comes from the request's dataloaders (package loaders), never from the
// HTTP client directly.
package resolvers

import (
	"log/slog"
	"sync"

	"github.com/mdegraph/mdegraph/internal/quota"
)

//go:generate go run github.com/99designs/gqlgen generate

// Resolver is the root resolver; server.go builds it once with its dependencies.
type Resolver struct {
	// Quota reports the upstream quota for Query.quota; nil reports none.
	Quota QuotaReporter
	// Logger receives warnings such as unknown enum values; nil discards them.
	Logger *slog.Logger

	unknownEnums sync.Map // enum values already logged, so that each is logged once
}

func (r *Resolver) logger() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger
}

// QuotaReporter reports the quota of every upstream endpoint family (quota.Set does).
type QuotaReporter interface {
	Status() []quota.FamilyStatus
}
