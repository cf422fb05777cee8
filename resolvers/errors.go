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
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/mdegraph/mdegraph/internal/defender"
	"github.com/mdegraph/mdegraph/internal/loaders"
	"github.com/mdegraph/mdegraph/internal/quietlog"
	"github.com/mdegraph/mdegraph/internal/quota"
	"github.com/mdegraph/mdegraph/internal/upstreamauth"
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
	// CodeUnauthenticated: the caller's token could not be exchanged on-behalf-of it
	// (UPSTREAM_IDENTITY=user); the sign-in middleware answers the same code for a missing or
	// bad credential.
	CodeUnauthenticated = "UNAUTHENTICATED"
)

// permission is what Defender asks of the caller for one endpoint family: an application
// permission (the service's own token) and a delegated one (on behalf of a person), from the
// API's permission tables and ../shared/UPSTREAM.md.
type permission struct {
	app, delegated string
	// note qualifies the application permission, when the documentation disagrees with itself.
	note string
}

// permissions names what each endpoint family needs, for FORBIDDEN.
var permissions = map[defender.Endpoint]permission{
	defender.EndpointMachine:    {app: "Machine.Read.All", delegated: "Machine.Read"},
	defender.EndpointMachines:   {app: "Machine.Read.All", delegated: "Machine.Read"},
	defender.EndpointLogonUsers: {app: "User.Read.All", delegated: "User.Read.All"},
	defender.EndpointAlerts:     {app: "Alert.Read.All", delegated: "Alert.Read"},
	defender.EndpointUserMachines: {app: "Machine.ReadWrite.All", delegated: "Machine.Read",
		note: " (older documentation: Machine.Read.All)"},
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
//
// Running out of quota (RATE_LIMITED) is logged the same way, once a minute per endpoint
// family, with the family and retryAfter: a service answering RATE_LIMITED is degraded, and
// the operator should know.
func ErrorPresenter(logger *slog.Logger) graphql.ErrorPresenterFunc {
	repeats := quietlog.New(time.Minute)
	// repeated is the key of warnings that say the same: the code and the cause.
	logError := func(ctx context.Context, level slog.Level, code, repeated string, path ast.Path, cause string, attrs ...slog.Attr) {
		level, lowered := repeats.Level(code+"\x00"+repeated, level)
		logErrorLine(ctx, logger, level, code, path, cause, lowered, attrs...)
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
			logError(ctx, logLevel(code), code, cause, out.Path, cause)
			return &out
		}
		code, msg, ext := classify(err)
		out.Message = msg
		if out.Extensions == nil {
			out.Extensions = map[string]any{}
		}
		out.Extensions["code"] = code
		maps.Copy(out.Extensions, ext)
		if code == CodeRateLimited {
			// Once a minute per family: the cause says when the next slot frees, which changes.
			family := limitedFamily(err)
			logError(ctx, logLevel(code), code, family, out.Path, cause,
				slog.String("endpoint", family), slog.Any("retry_after_seconds", ext["retryAfter"]))
			return &out
		}
		logError(ctx, logLevel(code), code, cause, out.Path, cause)
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
	case CodeUpstreamUnauth, CodeForbidden, CodeUpstreamUnavailable, CodeRateLimited:
		return slog.LevelWarn
	}
	return slog.LevelDebug
}

// logErrorLine writes the one log line of a presented error: its code, where, the cause, and
// how many like it were lowered to debug since the last one at this level.
func logErrorLine(ctx context.Context, logger *slog.Logger, level slog.Level, code string, path ast.Path, cause string, lowered int, extra ...slog.Attr) {
	msg := "graphql field error"
	switch {
	case code == CodeRateLimited:
		msg = "quota spent: fields answer RATE_LIMITED until a slot frees"
	case len(path) == 0:
		msg = "graphql request error" // before execution: the request itself, or a panic outside a field
	}
	attrs := append([]slog.Attr{slog.String("code", code), slog.String("path", path.String()), slog.String("error", cause)}, extra...)
	if lowered > 0 {
		attrs = append(attrs, slog.Int("repeats_since_last_warning", lowered))
	}
	logger.LogAttrs(ctx, level, msg, attrs...)
}

// classify is the one table from Go errors to (code, client message, extra extensions).
func classify(err error) (code, msg string, ext map[string]any) {
	var (
		invalid     *defender.InvalidInputError
		exceeded    *quota.ExceededError
		rateLimited *defender.RateLimitError
		tokenErr    *upstreamauth.Error
		unavailable *defender.UnavailableError
		resp        *defender.ErrorResponse
		known       *KnownDeviceNotFoundError
		budget      *loaders.BudgetError
	)
	switch {
	case errors.As(err, &known):
		// The device is known (another call just showed it), so the 404 is not "no such
		// device": Defender sometimes answers 404 transiently (../shared/UPSTREAM.md, sharp edges).
		ext = map[string]any{}
		if errors.As(err, &resp) && resp.Target != "" {
			ext["correlationId"] = resp.Target
		}
		return CodeUpstreamUnavailable, fmt.Sprintf("Defender knows device %s but answered 404 for its %s (%s); such answers are sometimes transient: try again shortly",
			known.DeviceID, known.part(), calls[string(known.Endpoint)]), ext
	case errors.As(err, &budget):
		return CodeQueryTooExpensive, fmt.Sprintf("this query already made the %d calls to Defender one query may make (MAX_UPSTREAM_CALLS_PER_QUERY), so this part was not fetched; ask for fewer devices or accounts (a smaller first), or ask for this part in a query of its own", budget.Max),
			map[string]any{"maxUpstreamCalls": budget.Max}
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
	case errors.As(err, &tokenErr):
		code, msg, ext = classifyToken(tokenErr)
		if errors.As(err, &resp) && resp.Target != "" { // the 401 that made the service ask for a new token
			ext["correlationId"] = resp.Target
		}
		return code, msg, ext
	case errors.As(err, &resp):
		return classifyResponse(resp)
	case errors.As(err, &unavailable), errors.Is(err, context.DeadlineExceeded):
		return CodeUpstreamUnavailable, "Defender did not answer in time or could not be reached; try again shortly", nil
	case errors.Is(err, context.Canceled):
		return CodeCancelled, "the request was cancelled", nil
	}
	return CodeInternal, "internal error", nil
}

// classifyToken words a failure to get a token for Defender: only a configuration mistake is
// UPSTREAM_UNAUTHORIZED (naming the setting to check); Entra ID's own trouble is
// UPSTREAM_UNAVAILABLE, or RATE_LIMITED with retryAfter when it throttles.
func classifyToken(e *upstreamauth.Error) (code, msg string, ext map[string]any) {
	ext = map[string]any{}
	switch e.Kind {
	case upstreamauth.Refused:
		switch e.Refusal {
		case upstreamauth.RefusedConsent:
			ext["reason"] = "consent_required"
			return CodeForbidden, fmt.Sprintf("Entra ID will not let this service ask Defender on your behalf: consent is missing (AADSTS%d); an administrator must %s", e.AADSTS(), e.Hint()), ext
		case upstreamauth.RefusedCallerToken:
			ext["reason"] = "on_behalf_of"
			aadsts := ""
			if n := e.AADSTS(); n != 0 {
				aadsts = fmt.Sprintf(" (AADSTS%d)", n)
			}
			return CodeUnauthenticated, "Entra ID would not exchange your access token for a Defender token on your behalf" + aadsts + "; sign in again and send the new token", ext
		}
		reason := ""
		if e.Code != "" {
			reason = " (" + e.Code + ")"
		}
		return CodeUpstreamUnauth, fmt.Sprintf("Defender's sign-in (Entra ID) refused this service's credentials%s; an administrator must check the configuration: %s", reason, e.Hint()), ext
	case upstreamauth.Rejected:
		return CodeUpstreamUnauth, "Defender refused this service's token (401) although Entra ID had just issued it; an administrator must check the configuration: " + e.Hint(), ext
	case upstreamauth.Throttled:
		secs := retrySeconds(time.Until(e.RetryAt))
		ext["retryAfter"] = secs
		return CodeRateLimited, fmt.Sprintf("Defender's sign-in (Entra ID) is throttling this service's token requests; retry in %d s", secs), ext
	}
	return CodeUpstreamUnavailable, "Defender's sign-in (Entra ID) failed, did not answer in time or could not be reached; try again shortly", ext
}

// limitedFamily names the endpoint family whose quota a RATE_LIMITED error is about, for the
// log: a Defender endpoint family, or "token" for Entra ID's token endpoint.
func limitedFamily(err error) string {
	var (
		q  *defender.QuotaError
		rl *defender.RateLimitError
		te *upstreamauth.Error
	)
	switch {
	case errors.As(err, &q):
		return string(q.Endpoint)
	case errors.As(err, &rl):
		return string(rl.Endpoint)
	case errors.As(err, &te):
		return "token"
	}
	return "unknown"
}

// notFoundWording says what a 404 means, by the call that got it: machines.get,
// machines.list and machines.alerts look the device up, so it is unknown; logonusers may also
// have no record for a device that exists. A short host name gets a hint, since Defender wants
// the full DNS name.
func notFoundWording(resp *defender.ErrorResponse) string {
	msg := "Defender has no such device"
	switch resp.Endpoint {
	case defender.EndpointLogonUsers:
		msg = "Defender has no logon-user record for this device, or no such device"
	case defender.EndpointUserMachines: // Defender documents 200 with an empty list instead
		msg = "Defender answered 404 for the account's machines"
	}
	if resp.Machine.IsShortName() {
		msg = fmt.Sprintf("Defender has no device named %s; Defender looks devices up by their full DNS name (e.g. %s.contoso.local), not a short host name", resp.Machine, resp.Machine)
	}
	if resp.Message != "" {
		msg += ": " + resp.Message
	}
	return msg
}

func classifyResponse(resp *defender.ErrorResponse) (code, msg string, ext map[string]any) {
	ext = map[string]any{}
	if resp.Target != "" {
		ext["correlationId"] = resp.Target
	}
	switch s := resp.StatusCode; {
	case s == http.StatusNotFound:
		return CodeNotFound, notFoundWording(resp), ext
	case s == http.StatusUnauthorized:
		return CodeUpstreamUnauth, "Defender refused this service's token (401); an administrator must check the app registration and MDE_SCOPE", ext
	case s == http.StatusForbidden:
		perm := permissions[resp.Endpoint]
		ext["permission"] = perm.app
		ext["delegatedPermission"] = perm.delegated
		return CodeForbidden, fmt.Sprintf("Defender refused the call (403): the app registration needs the WindowsDefenderATP application permission %s%s, or, for calls on behalf of a person, the delegated permission %s (and the person Defender's \"View Data\" role), with admin consent",
			perm.app, perm.note, perm.delegated), ext
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
