package gqlhttp

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/mdegraph/mdegraph/internal/principal"
	"github.com/mdegraph/mdegraph/internal/querylimit"
	"github.com/mdegraph/mdegraph/internal/quietlog"
	"github.com/mdegraph/mdegraph/resolvers"
)

// What is refused before anything runs, and how. gqlgen's executor runs the
// OperationParameterMutators on the raw request, then parses and validates the document, then
// runs the OperationContextMutators: queryLimits sits before the parse, where refusing saves
// its cost; noIntrospection and the upstream-call cost limit after validation, where the
// operation's fields are known.

// limitCodes are each querylimit.Limit's error code and the setting that raises it.
var limitCodes = map[querylimit.Limit]struct{ code, setting string }{
	querylimit.Tokens:     {resolvers.CodeTooManyTokens, "MAX_QUERY_TOKENS"},
	querylimit.Aliases:    {resolvers.CodeTooManyAliases, "MAX_QUERY_ALIASES"},
	querylimit.Depth:      {resolvers.CodeTooDeep, "MAX_QUERY_DEPTH"},
	querylimit.Fields:     {resolvers.CodeTooManyFields, "MAX_QUERY_FIELDS"},
	querylimit.Directives: {resolvers.CodeTooManyDirectives, "MAX_QUERY_DIRECTIVES"},
}

// queryLimits refuses a query over its limits before gqlgen parses it. It runs before the
// persisted-query extension, so a query over the limits is never kept there either.
type queryLimits struct {
	limits querylimit.Limits
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationParameterMutator
} = queryLimits{}

// ExtensionName names the extension for gqlgen.
func (queryLimits) ExtensionName() string { return "QueryLimits" }

// Validate accepts any schema.
func (queryLimits) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationParameters refuses the query if it exceeds a limit: extensions.code names
// the limit, extensions.limit is its value and extensions.count the query's (for tokens, the
// count at which reading stopped: limit + 1).
func (q queryLimits) MutateOperationParameters(_ context.Context, p *graphql.RawParams) *gqlerror.Error {
	e := q.limits.Check(p.Query)
	if e == nil {
		return nil
	}
	c := limitCodes[e.Limit]
	return &gqlerror.Error{
		Message:    fmt.Sprintf("%s (%s); nothing was run. Ask for less in one query, or ask the operator to raise %s", e.Error(), c.setting, c.setting),
		Extensions: map[string]any{"code": c.code, "limit": e.Max, "count": e.Count},
	}
}

// requireQuery refuses a request with no query once persisted queries have had their turn:
// the GraphQL over HTTP spec requires the query parameter, and such a request is not a
// well-formed one (gqlgen would answer "no operation provided", its validation error for a
// document without operations).
type requireQuery struct{}

var _ graphql.OperationParameterMutator = requireQuery{}

// ExtensionName names the extension for gqlgen.
func (requireQuery) ExtensionName() string { return "RequireQuery" }

// Validate accepts any schema.
func (requireQuery) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationParameters refuses an empty query with BAD_REQUEST.
func (requireQuery) MutateOperationParameters(_ context.Context, p *graphql.RawParams) *gqlerror.Error {
	if p.Query != "" {
		return nil
	}
	return &gqlerror.Error{
		Message:    `the request has no query: send {"query": "...", "variables": {...}}, or a persisted query's hash in extensions.persistedQuery`,
		Extensions: map[string]any{"code": resolvers.CodeBadRequest},
	}
}

// noIntrospection refuses an operation that selects __schema or __type, with a message that
// says why (gqlgen's own refusal is a field error without a code), before it runs.
type noIntrospection struct{}

var _ graphql.OperationContextMutator = noIntrospection{}

// ExtensionName names the extension for gqlgen.
func (noIntrospection) ExtensionName() string { return "NoIntrospection" }

// Validate accepts any schema.
func (noIntrospection) Validate(graphql.ExecutableSchema) error { return nil }

// introspectionDisabled is the message of INTROSPECTION_DISABLED; the playground shows it in
// its response pane when it asks for the schema.
const introspectionDisabled = "introspection is turned off on this server (INTROSPECTION=false), so the schema cannot be queried " +
	"and the playground shows no docs; queries still run. The schema is documented in the service's source (schema/*.graphqls); " +
	"an operator can set INTROSPECTION=true to explore it here"

// MutateOperationContext refuses __schema and __type (fragments, @skip and @include applied).
func (noIntrospection) MutateOperationContext(_ context.Context, opCtx *graphql.OperationContext) *gqlerror.Error {
	for _, f := range graphql.CollectFields(opCtx, opCtx.Operation.SelectionSet, []string{"Query"}) {
		if f.Name == "__schema" || f.Name == "__type" {
			return &gqlerror.Error{
				Message:    introspectionDisabled,
				Extensions: map[string]any{"code": resolvers.CodeIntrospectionDisabled},
			}
		}
	}
	return nil
}

// refusalCodes are the refusals of a query too large (limitCodes) or too costly to run: each
// is logged at warn, once a minute per code and caller.
var refusalCodes = func() map[string]bool {
	codes := map[string]bool{resolvers.CodeQueryTooExpensive: true}
	for _, c := range limitCodes {
		codes[c.code] = true
	}
	return codes
}()

// SlowParse is how long parsing and validating one document may take before a warning says
// so (Options.SlowParse): with the limits in place it takes well under a millisecond, so more
// means limits set too high for the machine.
const SlowParse = 100 * time.Millisecond

// operationLog writes the log lines about whole operations: refusals, and documents slow to
// parse and validate. Repeats with the same reason and caller are lowered to debug for a
// minute (package quietlog).
type operationLog struct {
	logger    *slog.Logger
	repeats   *quietlog.Repeats
	slowParse time.Duration
}

func newOperationLog(logger *slog.Logger, slowParse time.Duration) operationLog {
	return operationLog{logger: logger, repeats: quietlog.New(time.Minute), slowParse: slowParse}
}

// caller names who sent the request, for a log line: the principal's identity, "anonymous"
// without one.
func caller(ctx context.Context) string {
	return principal.IDFrom(ctx)
}

// answered logs what deserves a line about the operation answered with resp.
func (l operationLog) answered(ctx context.Context, resp *graphql.Response, codes []string) {
	if len(codes) > 0 && refusalCodes[codes[0]] {
		who := caller(ctx)
		level, lowered := l.repeats.Level("refused\x00"+codes[0]+"\x00"+who, slog.LevelWarn)
		attrs := []slog.Attr{slog.String("code", codes[0]), slog.String("reason", resp.Errors[0].Message), slog.String("caller", who)}
		if lowered > 0 {
			attrs = append(attrs, slog.Int("repeats_since_last_warning", lowered))
		}
		l.logger.LogAttrs(ctx, level, "query refused", attrs...)
	}
	if !graphql.HasOperationContext(ctx) {
		return
	}
	st := graphql.GetOperationContext(ctx).Stats
	parse, validate := span(st.Parsing), span(st.Validation)
	if parse+validate < l.slowParse {
		return
	}
	who := caller(ctx)
	level, lowered := l.repeats.Level("slow\x00"+who, slog.LevelWarn)
	attrs := []slog.Attr{slog.Duration("parse", parse), slog.Duration("validation", validate), slog.String("caller", who)}
	if lowered > 0 {
		attrs = append(attrs, slog.Int("repeats_since_last_warning", lowered))
	}
	l.logger.LogAttrs(ctx, level, "slow to parse and validate a query: consider lower MAX_QUERY_* limits", attrs...)
}

// span is the duration of a timing gqlgen took, 0 if it did not take it.
func span(t graphql.TraceTiming) time.Duration {
	if t.Start.IsZero() || t.End.Before(t.Start) {
		return 0
	}
	return t.End.Sub(t.Start)
}
