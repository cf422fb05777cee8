package resolvers

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/mdegraph/mdegraph/internal/loaders"
)

// OperationState is a gqlgen extension that gives the resolvers of one operation what they
// share beyond data and errors:
//
//   - the answers served stale, which it writes to extensions.stale (see StaleAnswer);
//   - one quota snapshot, taken when the operation's other root fields are done (so after
//     their upstream calls), which Query.quota and extensions.quota both show (OperationQuota).
//
// Add it with srv.Use before the response hooks that call ServedStale or OperationQuota, so
// that their context carries the state.
type OperationState struct{}

var _ interface {
	graphql.HandlerExtension
	graphql.ResponseInterceptor
	graphql.RootFieldInterceptor
} = OperationState{}

// ExtensionName names the extension for gqlgen.
func (OperationState) ExtensionName() string { return "OperationState" }

// Validate accepts any schema.
func (OperationState) Validate(graphql.ExecutableSchema) error { return nil }

// InterceptResponse gives the operation its state, and writes extensions.stale when an answer
// was served stale.
func (OperationState) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	if !graphql.HasOperationContext(ctx) || stateFrom(ctx) != nil {
		return next(ctx)
	}
	op := newOperation(graphql.GetOperationContext(ctx))
	resp := next(context.WithValue(ctx, stateKey{}, op))
	if resp == nil {
		return nil
	}
	if stale := op.staleAnswers(); len(stale) > 0 {
		if resp.Extensions == nil {
			resp.Extensions = map[string]any{}
		}
		resp.Extensions["stale"] = stale
	}
	return resp
}

// InterceptRootField notes when each root field is done, with everything below it.
func (OperationState) InterceptRootField(ctx context.Context, next graphql.RootResolver) graphql.Marshaler {
	op := stateFrom(ctx)
	if op == nil {
		return next(ctx)
	}
	if rf := graphql.GetRootFieldContext(ctx); rf != nil {
		defer op.rootDone(rf.Field.Alias)
	}
	return next(ctx)
}

// StaleAnswer is one entry of extensions.stale: the field at Path was answered with what
// Defender said AgeSeconds ago, because a fresh answer could not be had, for Reason (the
// extensions.code the field would otherwise have failed with: RATE_LIMITED or
// UPSTREAM_UNAVAILABLE). For a device's details the path is the machine's own (every detail
// field comes from that one answer); for its logon users, the logonUsers field's.
type StaleAnswer struct {
	Path       ast.Path `json:"path"`
	AgeSeconds int      `json:"ageSeconds"`
	Reason     string   `json:"reason"`
}

// ServedStale reports whether the operation in ctx served any answer stale. Such an answer must
// not be cached by HTTP caches.
func ServedStale(ctx context.Context) bool {
	op := stateFrom(ctx)
	if op == nil {
		return false
	}
	op.mu.Lock()
	defer op.mu.Unlock()
	return len(op.stale) > 0
}

// OperationQuota returns the quota of every endpoint family as the operation in ctx shows it:
// read once, after the operation's other root fields (and the upstream calls below them) are
// done, or when ctx ends. Without OperationState it reads q now.
func OperationQuota(ctx context.Context, q QuotaReporter) QuotaReading {
	op := stateFrom(ctx)
	if op == nil {
		return ReadQuota(q)
	}
	select {
	case <-op.done:
	case <-ctx.Done():
	}
	op.quotaOnce.Do(func() { op.quota = ReadQuota(q) })
	return op.quota
}

type stateKey struct{}

func stateFrom(ctx context.Context) *operation {
	op, _ := ctx.Value(stateKey{}).(*operation)
	return op
}

// operation is one operation's state.
type operation struct {
	done      chan struct{} // closed when every root field but quota is done
	quotaOnce sync.Once
	quota     QuotaReading

	mu      sync.Mutex
	pending map[string]bool // response keys of the root fields quota waits for
	stale   []StaleAnswer
}

// newOperation prepares the state of opCtx's operation. Query.quota waits for every other root
// field it selects (those with upstream calls below them); introspection and __typename need
// none. Without a quota field nobody waits, and the root fields are not even collected.
func newOperation(opCtx *graphql.OperationContext) *operation {
	op := &operation{done: make(chan struct{})}
	if opCtx.Operation == nil || opCtx.Operation.Operation != ast.Query ||
		EveryRootField(opCtx.Doc, opCtx.Operation.SelectionSet, func(name string) bool { return name != "quota" }) {
		close(op.done)
		return op
	}
	op.pending = map[string]bool{}
	asksQuota := false // and not left out by @skip or @include
	for _, f := range graphql.CollectFields(opCtx, opCtx.Operation.SelectionSet, []string{"Query"}) {
		switch f.Name {
		case "quota":
			asksQuota = true
		case "__typename", "__schema", "__type":
		default:
			if !f.IsDeferred() {
				op.pending[f.Alias] = true
			}
		}
	}
	if !asksQuota || len(op.pending) == 0 {
		op.pending = nil
		close(op.done)
	}
	return op
}

// EveryRootField reports whether ok holds for the name of every field set selects, following
// its fragments whatever their directives say (so it may look at a field @skip leaves out).
func EveryRootField(doc *ast.QueryDocument, set ast.SelectionSet, ok func(name string) bool) bool {
	for _, sel := range set {
		switch sel := sel.(type) {
		case *ast.Field:
			if !ok(sel.Name) {
				return false
			}
		case *ast.InlineFragment:
			if !EveryRootField(doc, sel.SelectionSet, ok) {
				return false
			}
		case *ast.FragmentSpread:
			f := doc.Fragments.ForName(sel.Name)
			if f == nil || !EveryRootField(doc, f.SelectionSet, ok) {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// rootDone notes that the root field with response key alias is done.
func (op *operation) rootDone(alias string) {
	op.mu.Lock()
	defer op.mu.Unlock()
	if !op.pending[alias] {
		return
	}
	delete(op.pending, alias)
	if len(op.pending) == 0 {
		close(op.done)
	}
}

// noteStale records that the field at path was answered stale (s not nil).
func noteStale(ctx context.Context, path ast.Path, s *loaders.Stale) {
	op := stateFrom(ctx)
	if op == nil || s == nil {
		return
	}
	op.mu.Lock()
	defer op.mu.Unlock()
	op.stale = append(op.stale, StaleAnswer{Path: path, AgeSeconds: int(s.Age / time.Second), Reason: s.Reason})
}

// staleAnswers lists the stale answers in the order of their paths.
func (op *operation) staleAnswers() []StaleAnswer {
	op.mu.Lock()
	defer op.mu.Unlock()
	out := slices.Clone(op.stale)
	slices.SortFunc(out, func(a, b StaleAnswer) int { return strings.Compare(a.Path.String(), b.Path.String()) })
	return out
}
