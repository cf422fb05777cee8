package resolvers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/mdegraph/mdegraph/internal/defender"
	"github.com/mdegraph/mdegraph/internal/quietlog"
	"github.com/mdegraph/mdegraph/internal/quota"
)

// Error codes put in extensions.code. Frontends switch on them; the README lists them.
const (
	CodeNotFound            = "NOT_FOUND"
	CodeBadUserInput        = "BAD_USER_INPUT"
	CodeRateLimited         = "RATE_LIMITED"
	CodeUpstreamUnauth      = "UPSTREAM_UNAUTHORIZED"
	CodeForbidden           = "FORBIDDEN"
	CodeUpstreamUnavailable = "UPSTREAM_UNAVAILABLE"
	CodeQueryTooExpensive   = "QUERY_TOO_EXPENSIVE"
	CodeCancelled           = "CANCELLED"
	CodeInternal            = "INTERNAL"
	// CodeBadRequest is a request that is not a well-formed GraphQL request: a body that is not
	// JSON, an unsupported Content-Type, malformed persisted-query data.
	CodeBadRequest = "BAD_REQUEST"
	// CodeMethodNotAllowed is an HTTP method the endpoint does not serve (package gqlhttp).
	CodeMethodNotAllowed = "METHOD_NOT_ALLOWED"
	// A query over one of the limits checked before parsing (package querylimit, MAX_QUERY_*).
	CodeTooManyTokens     = "QUERY_TOO_MANY_TOKENS"
	CodeTooManyAliases    = "QUERY_TOO_MANY_ALIASES"
	CodeTooDeep           = "QUERY_TOO_DEEP"
	CodeTooManyFields     = "QUERY_TOO_MANY_FIELDS"
	CodeTooManyDirectives = "QUERY_TOO_MANY_DIRECTIVES"
	// CodeIntrospectionDisabled refuses __schema and __type while INTROSPECTION is off.
	CodeIntrospectionDisabled = "INTROSPECTION_DISABLED"
	// CodeShuttingDown answers a request still running when the shutdown grace ended.
	CodeShuttingDown = "SHUTTING_DOWN"
)

// permissions names the application permission each endpoint family needs, for FORBIDDEN.
var permissions = map[defender.Endpoint]string{
	defender.EndpointMachine:    "Machine.Read.All",
	defender.EndpointMachines:   "Machine.Read.All",
	defender.EndpointLogonUsers: "User.Read.All",
}

// ErrorPresenter maps every error gqlgen reports (a resolver's, or a malformed request's) to a
// GraphQL error with an extensions.code, in one table. Errors it does not recognise become
// "internal error" for the client and a full log line for us. Nothing it writes carries a
// secret or a token.
//
// It presents a copy and leaves err as it was, so the log line has the original text (the
// connection error behind UPSTREAM_UNAVAILABLE, say) while the client gets the safe message.
//
// A warning repeated with the same code and cause (every query while Defender is down, or
// while the credentials are refused) is logged once a minute; the repeats in between go to
// debug, and the next warning says how many there were.
func ErrorPresenter(logger *slog.Logger) graphql.ErrorPresenterFunc {
	repeats := quietlog.New(time.Minute)
	logError := func(ctx context.Context, level slog.Level, code string, path ast.Path, cause string) {
		level, lowered := repeats.Level(code+"\x00"+cause, level)
		logErrorLine(ctx, logger, level, code, path, cause, lowered)
	}
	return func(ctx context.Context, err error) *gqlerror.Error {
		orig := graphql.DefaultErrorPresenter(ctx, err)
		cause := errorText(err)
		if why := context.Cause(ctx); why != nil && why != ctx.Err() && errors.Is(err, ctx.Err()) {
			cause += ": " + why.Error() // e.g. which deadline passed
		}
		out := *orig
		out.Extensions = maps.Clone(orig.Extensions)
		var already *gqlerror.Error
		if errors.As(err, &already) && already.Extensions["code"] != nil && errors.Unwrap(already) == nil {
			// gqlgen's own parse/validation errors, or one we built: unchanged.
			code, _ := already.Extensions["code"].(string)
			logError(ctx, logLevel(code), code, out.Path, cause)
			return &out
		}
		code, msg, ext := classify(err)
		out.Message = msg
		if out.Extensions == nil {
			out.Extensions = map[string]any{}
		}
		out.Extensions["code"] = code
		for k, v := range ext {
			out.Extensions[k] = v
		}
		if code == CodeBadRequest && strings.HasPrefix(cause, decodeErrorPrefix) {
			// gqlgen's message repeats the whole request body after " body:": the client's
			// own, but of any size and content, so the log keeps only what went wrong.
			cause, _, _ = strings.Cut(cause, " body:")
		}
		logError(ctx, logLevel(code), code, out.Path, cause)
		return &out
	}
}

// errorText is err's own text for the log: what the resolver or gqlgen returned, without the
// "input: path:" prefix gqlerror adds (the path is logged on its own).
func errorText(err error) string {
	if g, ok := err.(*gqlerror.Error); ok {
		if g.Err != nil {
			return g.Err.Error()
		}
		return g.Message
	}
	return err.Error()
}

// logLevel says how loud an error is in our log: bugs are errors, what an administrator must
// fix or watch is a warning, and the client's own mistakes are debug.
func logLevel(code string) slog.Level {
	switch code {
	case CodeInternal:
		return slog.LevelError
	case CodeUpstreamUnauth, CodeForbidden, CodeUpstreamUnavailable:
		return slog.LevelWarn
	}
	return slog.LevelDebug
}

// logErrorLine writes the one log line of a presented error: its code, where, the cause, and
// how many like it were lowered to debug since the last one at this level.
func logErrorLine(ctx context.Context, logger *slog.Logger, level slog.Level, code string, path ast.Path, cause string, lowered int) {
	msg := "graphql field error"
	if len(path) == 0 {
		msg = "graphql request error" // before execution: the request itself, or a panic outside a field
	}
	attrs := []slog.Attr{slog.String("code", code), slog.String("path", path.String()), slog.String("error", cause)}
	if lowered > 0 {
		attrs = append(attrs, slog.Int("repeats_since_last_warning", lowered))
	}
	logger.LogAttrs(ctx, level, msg, attrs...)
}

// requestErrors are the errors gqlgen's POST transport and APQ extension return for a
// malformed request, matched on their exact text (gqlgen v0.17.98: handler/transport/http_post.go,
// handler/extension/apq.go). They carry no code and no path, wrap nothing, and describe the
// client's own mistake, so they become BAD_REQUEST; message replaces gqlgen's where that is
// terse. Matching the text, not merely "a code-less gqlerror without a path", keeps anything
// else of that shape (a panic outside a field, a future gqlgen error) INTERNAL: if gqlgen
// rewords one of these, it fails towards INTERNAL and the tests say so.
var requestErrors = []struct {
	text    string
	prefix  bool // text is a prefix: gqlgen appends the underlying error
	message string
}{
	{text: decodeErrorPrefix, prefix: true},
	{text: "could not read request body: ", prefix: true},
	{text: "invalid APQ extension data", message: `extensions.persistedQuery must be an object {"version": 1, "sha256Hash": "<hex SHA-256 of the query>"}`},
	{text: "unsupported APQ version", message: "extensions.persistedQuery.version must be 1, the only version of automatic persisted queries"},
	{text: "provided APQ hash does not match query", message: "extensions.persistedQuery.sha256Hash does not match the query: it must be the hex SHA-256 of the exact query text"},
}

// bodyProblem rewords the decoder's error behind gqlgen's "json request body could not be
// decoded" in the client's terms: without the body gqlgen appends (the client's own, of any
// size) and without Go's type names.
func bodyProblem(detail string) string {
	detail, _, _ = strings.Cut(detail, " body:")
	const fieldPrefix = "Go struct field RawParams."
	switch {
	case strings.Contains(detail, "request body too large"):
		return "the request body is too large: a GraphQL request is a small JSON object (use variables, not inline data)"
	case strings.Contains(detail, "cannot unmarshal array into Go value"):
		return "the body is a JSON array: batched operations are not supported; send one operation per request"
	case strings.Contains(detail, "cannot unmarshal") && strings.Contains(detail, fieldPrefix):
		field, _, _ := strings.Cut(detail[strings.Index(detail, fieldPrefix)+len(fieldPrefix):], " ")
		want := "a string"
		if field == "variables" || field == "extensions" {
			want = "a JSON object"
		}
		return fmt.Sprintf("%s must be %s", field, want)
	case strings.Contains(detail, "cannot unmarshal"):
		return `the body must be one JSON object: {"query": "...", "variables": {...}}`
	case strings.Contains(detail, "EOF"):
		return `the body is empty or cut short: send one JSON object {"query": "...", "variables": {...}}`
	}
	return "the body is not valid JSON: " + detail
}

// decodeErrorPrefix starts gqlgen's message for a POST body that is not a JSON object; it goes
// on with the decoder's error, then " body:" and the body.
const decodeErrorPrefix = "json request body could not be decoded: "

// requestError reports whether err is one of gqlgen's requestErrors, and the message for the
// client.
func requestError(err error) (string, bool) {
	g, ok := err.(*gqlerror.Error)
	if !ok || g.Err != nil || len(g.Path) > 0 || g.Extensions["code"] != nil {
		return "", false
	}
	for _, r := range requestErrors {
		if g.Message == r.text || r.prefix && strings.HasPrefix(g.Message, r.text) {
			switch {
			case r.message != "":
				return r.message, true
			case r.text == decodeErrorPrefix:
				return bodyProblem(strings.TrimPrefix(g.Message, decodeErrorPrefix)), true
			}
			return g.Message, true
		}
	}
	return "", false
}

// classify is the one table from Go errors to (code, client message, extra extensions).
func classify(err error) (code, msg string, ext map[string]any) {
	var (
		invalid     *defender.InvalidInputError
		exceeded    *quota.ExceededError
		rateLimited *defender.RateLimitError
		authErr     *defender.AuthError
		unavailable *defender.UnavailableError
		resp        *defender.ErrorResponse
	)
	if msg, ok := requestError(err); ok {
		return CodeBadRequest, msg, nil
	}
	switch {
	case errors.As(err, &invalid):
		return CodeBadUserInput, invalid.Error(), map[string]any{"field": invalid.Field}
	case errors.As(err, &exceeded):
		secs := retrySeconds(exceeded.RetryAfter)
		return CodeRateLimited, fmt.Sprintf("Defender's rate limit for this call is spent; retry in %d s", secs),
			map[string]any{"retryAfter": secs}
	case errors.As(err, &rateLimited):
		secs := retrySeconds(rateLimited.RetryAfter)
		return CodeRateLimited, fmt.Sprintf("Defender answered 429 Too Many Requests; retry in %d s", secs),
			map[string]any{"retryAfter": secs}
	case errors.As(err, &authErr):
		return CodeUpstreamUnauth, "Defender's sign-in (Entra ID) refused this service's credentials; an administrator must check MDE_TENANT_ID, MDE_CLIENT_ID and MDE_CLIENT_SECRET", nil
	case errors.As(err, &resp):
		return classifyResponse(resp)
	case errors.As(err, &unavailable), errors.Is(err, context.DeadlineExceeded):
		return CodeUpstreamUnavailable, "Defender did not answer in time or could not be reached; try again shortly", nil
	case errors.Is(err, context.Canceled):
		return CodeCancelled, "the request was cancelled", nil
	}
	return CodeInternal, "internal error", nil
}

func classifyResponse(resp *defender.ErrorResponse) (code, msg string, ext map[string]any) {
	ext = map[string]any{}
	if resp.Target != "" {
		ext["correlationId"] = resp.Target
	}
	switch s := resp.StatusCode; {
	case s == http.StatusNotFound:
		return CodeNotFound, "Defender has no such device: " + resp.Message, ext
	case s == http.StatusUnauthorized:
		return CodeUpstreamUnauth, "Defender refused this service's token (401); an administrator must check the app registration", ext
	case s == http.StatusForbidden:
		perm := permissions[resp.Endpoint]
		ext["permission"] = perm
		return CodeForbidden, fmt.Sprintf("Defender refused the call (403): the app registration needs the WindowsDefenderATP application permission %s, with admin consent", perm), ext
	case s == http.StatusBadRequest:
		return CodeBadUserInput, "Defender rejected the request: " + resp.Message, ext
	case s >= 500:
		return CodeUpstreamUnavailable, fmt.Sprintf("Defender failed to answer (%d); try again shortly", s), ext
	}
	return CodeInternal, "internal error", nil
}

// retrySeconds rounds a delay up to whole seconds, at least 1.
func retrySeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

// RecoverFunc turns a panic in a resolver into an "internal error" for the client and a log line
// with the stack for us.
func RecoverFunc(logger *slog.Logger) graphql.RecoverFunc {
	return func(ctx context.Context, p any) error {
		logger.ErrorContext(ctx, "panic in resolver", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		return gqlerror.Errorf("internal error")
	}
}
