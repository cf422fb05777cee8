package resolvers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/mdegraph/mdegraph/internal/defender"
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
)

// permissions names the application permission each endpoint family needs, for FORBIDDEN.
var permissions = map[defender.Endpoint]string{
	defender.EndpointMachine:    "Machine.Read.All",
	defender.EndpointMachines:   "Machine.Read.All",
	defender.EndpointLogonUsers: "User.Read.All",
}

// ErrorPresenter maps every error a resolver returns to a GraphQL error with an
// extensions.code, in one table. Errors it does not recognise become "internal error" for the
// client and a full log line for us. Nothing it writes carries a secret or a token.
func ErrorPresenter(logger *slog.Logger) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		gqlErr := graphql.DefaultErrorPresenter(ctx, err)
		var already *gqlerror.Error
		if errors.As(err, &already) && already.Extensions["code"] != nil && errors.Unwrap(already) == nil {
			return gqlErr // gqlgen's own parse/validation errors, or one we built
		}
		code, msg, ext := classify(err)
		gqlErr.Message = msg
		if gqlErr.Extensions == nil {
			gqlErr.Extensions = map[string]any{}
		}
		gqlErr.Extensions["code"] = code
		for k, v := range ext {
			gqlErr.Extensions[k] = v
		}
		level := slog.LevelDebug
		if code == CodeInternal || code == CodeUpstreamUnauth || code == CodeForbidden || code == CodeUpstreamUnavailable {
			level = slog.LevelWarn
		}
		if code == CodeInternal {
			level = slog.LevelError
		}
		logger.LogAttrs(ctx, level, "graphql field error", slog.String("code", code),
			slog.String("path", gqlErr.Path.String()), slog.String("error", err.Error()))
		return gqlErr
	}
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
