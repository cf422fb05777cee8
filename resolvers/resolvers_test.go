package resolvers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/mdegraph/mdegraph/graph/model"
	"github.com/mdegraph/mdegraph/internal/defender"
	"github.com/mdegraph/mdegraph/internal/quota"
	"github.com/mdegraph/mdegraph/internal/upstreamauth"
)

func TestNeedsDetails(t *testing.T) {
	t.Parallel()
	id := defender.MachineRef("0123456789abcdef0123456789abcdef01234567")
	name := defender.MachineRef("desk-1.contoso.local")
	tests := []struct {
		selected []string
		ref      defender.MachineRef
		want     bool
	}{
		{[]string{"logonUsers"}, id, false},
		{[]string{"id", "logonUsers", "__typename"}, id, false},
		{[]string{"logonUsers", "computerDnsName"}, id, true},
		{[]string{"logonUsers"}, name, true}, // the name must be resolved to an id
		{[]string{"id"}, id, true},           // nothing else proves the device exists
		{[]string{"__typename"}, id, true},
		{[]string{"osPlatform"}, id, true},
		{nil, id, true},
		{[]string{"alerts"}, id, false}, // alerts answers 404 for an unknown device too
		{[]string{"id", "alerts", "logonUsers"}, id, false},
		{[]string{"alerts"}, name, true},
		{[]string{"alerts", "osPlatform"}, id, true},
	}
	for _, tt := range tests {
		if got := NeedsDetails(tt.selected, tt.ref); got != tt.want {
			t.Errorf("NeedsDetails(%v, %s) = %v, want %v", tt.selected, tt.ref, got, tt.want)
		}
	}
}

func TestUpperSnake(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"Active":                            "ACTIVE",
		"ImpairedCommunication":             "IMPAIRED_COMMUNICATION",
		"NoSensorDataImpairedCommunication": "NO_SENSOR_DATA_IMPAIRED_COMMUNICATION",
		"CanBeOnboarded":                    "CAN_BE_ONBOARDED",
		"None":                              "NONE",
		"HIGH":                              "HIGH",
	} {
		if got := upperSnake(in); got != want {
			t.Errorf("upperSnake(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEnumOfUnknownValueBecomesOtherAndIsLogged(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	r := &Resolver{Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	str := func(s string) *string { return &s }
	tests := []struct {
		in   *string
		want *model.HealthStatus
	}{
		{nil, nil},
		{str(""), nil},
		{str("Active"), ptr(model.HealthStatusActive)},
		{str("NoSensorDataImpairedCommunication"), ptr(model.HealthStatusNoSensorDataImpairedCommunication)},
		{str("QuantumEntangled"), ptr(model.HealthStatusOther)},
		{str("Other"), ptr(model.HealthStatusOther)},
	}
	for _, tt := range tests {
		got := enumOf(r, context.Background(), "healthStatus", tt.in, model.HealthStatusOther)
		if (got == nil) != (tt.want == nil) || (got != nil && *got != *tt.want) {
			t.Errorf("enumOf(%v) = %v, want %v", deref(tt.in), deref(got), deref(tt.want))
		}
	}
	// Logged once, however often it is seen.
	enumOf(r, context.Background(), "healthStatus", str("QuantumEntangled"), model.HealthStatusOther)
	if n := strings.Count(logs.String(), "QuantumEntangled"); n != 1 {
		t.Errorf("unknown value logged %d times, want once:\n%s", n, logs.String())
	}
}

func ptr[T any](v T) *T { return &v }

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestClassify(t *testing.T) {
	t.Parallel()
	resp := func(status int, ep defender.Endpoint) error {
		return fmt.Errorf("wrapped: %w", &defender.ErrorResponse{Endpoint: ep, StatusCode: status, Code: "X", Message: "msg", Target: "corr-1"})
	}
	tests := []struct {
		name     string
		err      error
		wantCode string
		wantExt  map[string]any
		wantMsg  string
	}{
		{"invalid id", &defender.InvalidInputError{Field: "id", Value: "a/b", Reason: "bad"}, CodeBadUserInput, map[string]any{"field": "id"}, "invalid id"},
		{"404", resp(404, defender.EndpointLogonUsers), CodeNotFound, map[string]any{"correlationId": "corr-1"}, "no such device"},
		{"401", resp(401, defender.EndpointMachine), CodeUpstreamUnauth, nil, "401"},
		{"403 logonusers names User.Read.All", resp(403, defender.EndpointLogonUsers), CodeForbidden, map[string]any{"permission": "User.Read.All"}, "User.Read.All"},
		{"403 machine names Machine.Read.All", resp(403, defender.EndpointMachine), CodeForbidden, map[string]any{"permission": "Machine.Read.All"}, "Machine.Read.All"},
		{"400", resp(400, defender.EndpointMachines), CodeBadUserInput, nil, "rejected"},
		{"500", resp(500, defender.EndpointMachine), CodeUpstreamUnavailable, nil, "500"},
		{"503", resp(503, defender.EndpointMachine), CodeUpstreamUnavailable, nil, "503"},
		{"429 from Defender", &defender.RateLimitError{ErrorResponse: defender.ErrorResponse{StatusCode: 429}, RetryAfter: 1500 * time.Millisecond}, CodeRateLimited, map[string]any{"retryAfter": 2}, "429"},
		{"quota exceeded locally", fmt.Errorf("defender machines.logonusers: %w", &quota.ExceededError{RetryAfter: 41*time.Second + time.Millisecond}), CodeRateLimited, map[string]any{"retryAfter": 42}, "retry in 42 s"},
		{"quota retryAfter is at least 1", &quota.ExceededError{RetryAfter: time.Millisecond}, CodeRateLimited, map[string]any{"retryAfter": 1}, "retry in 1 s"},
		{"token refused", fmt.Errorf("defender machines.get: get a token: %w", &upstreamauth.Error{Kind: upstreamauth.Refused, StatusCode: 401, Code: "invalid_client"}), CodeUpstreamUnauth, nil, "MDE_CLIENT_SECRET is wrong or expired"},
		{"token refused: unknown application", &upstreamauth.Error{Kind: upstreamauth.Refused, StatusCode: 400, Code: "unauthorized_client"}, CodeUpstreamUnauth, nil, "MDE_CLIENT_ID names no application"},
		{"on-behalf-of: consent missing", fmt.Errorf("defender machines.get: get a token: %w", &upstreamauth.Error{Kind: upstreamauth.Refused, StatusCode: 400, Code: "invalid_grant",
			Description: "AADSTS65001: The user or administrator has not consented", Refusal: upstreamauth.RefusedConsent}), CodeForbidden, map[string]any{"reason": "consent_required"}, "consent is missing (AADSTS65001)"},
		{"on-behalf-of: the caller's token expired", &upstreamauth.Error{Kind: upstreamauth.Refused, StatusCode: 400, Code: "invalid_grant",
			Description: "AADSTS500133: Assertion is not within its valid time range.", Refusal: upstreamauth.RefusedCallerToken}, CodeUnauthenticated, map[string]any{"reason": "on_behalf_of"}, "(AADSTS500133); sign in again"},
		{"on-behalf-of: no caller token", &upstreamauth.Error{Kind: upstreamauth.Refused, Err: upstreamauth.ErrNoCallerToken, Refusal: upstreamauth.RefusedCallerToken}, CodeUnauthenticated, nil, "on your behalf; sign in again"},
		{"on-behalf-of: the service's secret", &upstreamauth.Error{Kind: upstreamauth.Refused, StatusCode: 401, Code: "invalid_client"}, CodeUpstreamUnauth, nil, "MDE_CLIENT_SECRET"},
		{"token endpoint 503", &upstreamauth.Error{Kind: upstreamauth.Unavailable, StatusCode: 503, Code: "temporarily_unavailable"}, CodeUpstreamUnavailable, nil, "Entra ID"},
		// RetryAt 30 s away when the table is built: up to a second later, rounding up still says 30.
		{"token endpoint 429", &upstreamauth.Error{Kind: upstreamauth.Throttled, StatusCode: 429, RetryAt: time.Now().Add(30 * time.Second)}, CodeRateLimited, map[string]any{"retryAfter": 30}, "retry in 30 s"},
		{"a fresh token rejected", fmt.Errorf("%w; and no new token: %w", &defender.ErrorResponse{Endpoint: defender.EndpointMachine, StatusCode: 401, Target: "corr-401"}, &upstreamauth.Error{Kind: upstreamauth.Rejected}),
			CodeUpstreamUnauth, map[string]any{"correlationId": "corr-401"}, "MDE_SCOPE"},
		{"401 and the token refused", fmt.Errorf("%w; and no new token: %w", &defender.ErrorResponse{Endpoint: defender.EndpointMachine, StatusCode: 401, Target: "corr-401"}, &upstreamauth.Error{Kind: upstreamauth.Refused, Code: "invalid_client"}),
			CodeUpstreamUnauth, map[string]any{"correlationId": "corr-401"}, "MDE_CLIENT_SECRET"},
		{"404 logonusers", resp(404, defender.EndpointLogonUsers), CodeNotFound, nil, "no logon-user record for this device, or no such device"},
		{"404 of a short host name", &defender.ErrorResponse{Endpoint: defender.EndpointMachine, StatusCode: 404, Message: "Machine desk-1 was not found", Machine: "desk-1"},
			CodeNotFound, nil, "full DNS name (e.g. desk-1.contoso.local)"},
		{"404 of a full name: no hint", &defender.ErrorResponse{Endpoint: defender.EndpointMachine, StatusCode: 404, Machine: "desk-1.contoso.local"},
			CodeNotFound, nil, "Defender has no such device"},
		{"quota exceeded for a family", &defender.QuotaError{Endpoint: defender.EndpointMachine, Err: &quota.ExceededError{RetryAfter: 3 * time.Second}}, CodeRateLimited, map[string]any{"retryAfter": 3}, "retry in 3 s"},
		{"network", &defender.UnavailableError{Err: errors.New("connection refused")}, CodeUpstreamUnavailable, nil, "could not be reached"},
		{"deadline", context.DeadlineExceeded, CodeUpstreamUnavailable, nil, "in time"},
		{"cancelled", context.Canceled, CodeCancelled, nil, "cancelled"},
		{"anything else", errors.New("pq: password authentication failed for secret hunter2"), CodeInternal, nil, "internal error"},

		// gqlgen's code-less errors are refused earlier (package gqlhttp), by Go type: one
		// that arrives here anyway is no known request mistake.
		{"a code-less gqlgen error", gqlerror.Errorf("json request body could not be decoded: unexpected EOF body:{"), CodeInternal, nil, "internal error"},
		{"panic outside a field", gqlerror.Errorf("internal error"), CodeInternal, nil, "internal error"},
		{"wrapping an upstream error", &gqlerror.Error{Message: "unsupported APQ version", Err: &defender.UnavailableError{Err: errors.New("reset")}}, CodeUpstreamUnavailable, nil, "could not be reached"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, msg, ext := classify(tt.err)
			if code != tt.wantCode {
				t.Errorf("code = %s, want %s", code, tt.wantCode)
			}
			if !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("message %q does not contain %q", msg, tt.wantMsg)
			}
			for k, v := range tt.wantExt {
				if ext[k] != v {
					t.Errorf("extensions[%s] = %v, want %v", k, ext[k], v)
				}
			}
		})
	}
}

func TestErrorPresenterHidesInternalErrors(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	present := ErrorPresenter(slog.New(slog.NewTextHandler(&logs, nil)))
	got := present(context.Background(), errors.New("database password is hunter2"))
	if got.Message != "internal error" || got.Extensions["code"] != CodeInternal {
		t.Errorf("got %q %v, want internal error / INTERNAL", got.Message, got.Extensions)
	}
	if !strings.Contains(logs.String(), "hunter2") {
		t.Error("the full error should be in the log for us")
	}
	// An error already carrying a code (gqlgen's validation errors, ours) passes unchanged.
	own := &gqlerror.Error{Message: "too expensive", Extensions: map[string]any{"code": CodeQueryTooExpensive}}
	if got := present(context.Background(), own); got.Message != "too expensive" || got.Extensions["code"] != CodeQueryTooExpensive {
		t.Errorf("coded error changed: %q %v", got.Message, got.Extensions)
	}
}

// TestErrorPresenterLogsTheCause: the client gets the safe message, the log line the original
// error (the connection error behind UPSTREAM_UNAVAILABLE, say) at a level that fits the code,
// and the error gqlgen handed over is left as it was.
func TestErrorPresenterLogsTheCause(t *testing.T) {
	t.Parallel()
	field := ast.Path{ast.PathName("machine"), ast.PathName("logonUsers")}
	tests := []struct {
		name       string
		err        error // as gqlgen hands it to the presenter
		wantCode   string
		wantMsg    string // the client's message contains it
		wantLevel  string
		wantLogMsg string
		wantLog    string // the logged error contains it
		notLogged  string // ... and not this
	}{
		{"unreachable upstream",
			gqlerror.WrapPath(field, fmt.Errorf("logon users: %w", &defender.UnavailableError{Endpoint: defender.EndpointLogonUsers, Err: errors.New("dial tcp 10.0.0.7:443: connect: connection refused")})),
			CodeUpstreamUnavailable, "could not be reached", "WARN", "graphql field error", "logon users: defender machines.logonusers: unavailable: dial tcp 10.0.0.7:443: connect: connection refused", "try again"},
		{"Defender 503",
			gqlerror.WrapPath(field, &defender.ErrorResponse{Endpoint: defender.EndpointLogonUsers, StatusCode: 503, Code: "ServiceUnavailable", Message: "backend busy", Target: "corr-9"}),
			CodeUpstreamUnavailable, "(503)", "WARN", "graphql field error", "503 ServiceUnavailable: backend busy (correlation id corr-9)", ""},
		{"bug",
			gqlerror.WrapPath(field, errors.New("convert: unexpected osPlatform type float64")),
			CodeInternal, "internal error", "ERROR", "graphql field error", "convert: unexpected osPlatform type float64", ""},
		{"not found is the client's business",
			gqlerror.WrapPath(field, &defender.ErrorResponse{Endpoint: defender.EndpointMachine, StatusCode: 404, Message: "Machine was not found"}),
			CodeNotFound, "no such device", "DEBUG", "graphql field error", "404: Machine was not found", ""},
		{"quota spent is a warning, with the family",
			gqlerror.WrapPath(field, &defender.QuotaError{Endpoint: defender.EndpointLogonUsers, Err: &quota.ExceededError{RetryAfter: 41 * time.Second}}),
			CodeRateLimited, "retry in 41 s", "WARN", "quota spent: fields answer RATE_LIMITED until a slot frees", "rate limit reached", ""},
		{"a coded request error passes",
			&gqlerror.Error{Message: "the body is empty", Extensions: map[string]any{"code": CodeBadRequest}},
			CodeBadRequest, "the body is empty", "DEBUG", "graphql request error", "the body is empty", ""},
		{"gqlgen's own code passes",
			&gqlerror.Error{Message: "PersistedQueryNotFound", Extensions: map[string]any{"code": "PERSISTED_QUERY_NOT_FOUND"}},
			"PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound", "DEBUG", "graphql request error", "PersistedQueryNotFound", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer
			present := ErrorPresenter(slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
			before := tt.err.Error()
			got := present(context.Background(), tt.err)

			if got.Extensions["code"] != tt.wantCode || !strings.Contains(got.Message, tt.wantMsg) {
				t.Errorf("client got %q %v, want code %s and a message containing %q", got.Message, got.Extensions, tt.wantCode, tt.wantMsg)
			}
			if after := tt.err.Error(); after != before {
				t.Errorf("the presenter changed the error: %q, was %q", after, before)
			}
			var line struct {
				Level, Msg, Code, Error string
			}
			if err := json.Unmarshal(logs.Bytes(), &line); err != nil {
				t.Fatalf("want one JSON log line, got %q: %v", logs.String(), err)
			}
			if line.Level != tt.wantLevel || line.Msg != tt.wantLogMsg || line.Code != tt.wantCode {
				t.Errorf("logged level=%s msg=%q code=%s, want %s %q %s", line.Level, line.Msg, line.Code, tt.wantLevel, tt.wantLogMsg, tt.wantCode)
			}
			if !strings.Contains(line.Error, tt.wantLog) {
				t.Errorf("logged error %q, want it to contain %q", line.Error, tt.wantLog)
			}
			if tt.notLogged != "" && strings.Contains(logs.String(), tt.notLogged) {
				t.Errorf("log %q should not contain %q", logs.String(), tt.notLogged)
			}
		})
	}
}

func TestRecoverFuncAnswersInternalError(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	err := RecoverFunc(logger)(context.Background(), "boom")
	got := ErrorPresenter(logger)(context.Background(), err)
	if got.Message != "internal error" || got.Extensions["code"] != CodeInternal {
		t.Errorf("panic presented as %q %v", got.Message, got.Extensions)
	}
	if !strings.Contains(logs.String(), "boom") || !strings.Contains(logs.String(), "stack") {
		t.Errorf("panic and stack should be logged: %s", logs.String())
	}
}

// TestErrorPresenterQuietsRepeats: while Defender is down every query fails the same way; one
// warning a minute says so, the repeats go to debug, and the next warning counts them.
func TestErrorPresenterQuietsRepeats(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var logs bytes.Buffer
		present := ErrorPresenter(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
		field := ast.Path{ast.PathName("machine"), ast.PathName("logonUsers")}
		down := func() error {
			return gqlerror.WrapPath(field, &defender.UnavailableError{Endpoint: defender.EndpointLogonUsers, Err: errors.New("connection refused")})
		}
		for range 3 {
			if got := present(context.Background(), down()).Extensions["code"]; got != CodeUpstreamUnavailable {
				t.Fatalf("code %v, want %s: quieting the log must not change the answer", got, CodeUpstreamUnavailable)
			}
		}
		time.Sleep(time.Minute)
		present(context.Background(), down())
		lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
		var levels []string
		for _, l := range lines {
			levels = append(levels, strings.Fields(strings.SplitN(l, "level=", 2)[1])[0])
		}
		if got := strings.Join(levels, " "); got != "WARN DEBUG DEBUG WARN" {
			t.Errorf("levels %q, want WARN DEBUG DEBUG WARN:\n%s", got, logs.String())
		}
		if !strings.Contains(lines[len(lines)-1], "repeats_since_last_warning=2") {
			t.Errorf("the minute's second warning does not count the repeats: %s", lines[len(lines)-1])
		}
	})
}

// TestQuotaSpentLoggedPerFamily: RATE_LIMITED is a warning once a minute per endpoint family,
// whatever retryAfter each one says; another family gets its own.
func TestQuotaSpentLoggedPerFamily(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var logs bytes.Buffer
		present := ErrorPresenter(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
		spent := func(ep defender.Endpoint, wait time.Duration) error {
			return gqlerror.WrapPath(ast.Path{ast.PathName("machine")}, &defender.QuotaError{Endpoint: ep, Err: &quota.ExceededError{RetryAfter: wait}})
		}
		present(context.Background(), spent(defender.EndpointLogonUsers, 41*time.Second))
		present(context.Background(), spent(defender.EndpointLogonUsers, 40*time.Second))
		present(context.Background(), spent(defender.EndpointMachine, 12*time.Second))
		present(context.Background(), &upstreamauth.Error{Kind: upstreamauth.Throttled, RetryAt: time.Now().Add(30 * time.Second)})
		time.Sleep(time.Minute)
		present(context.Background(), spent(defender.EndpointLogonUsers, 5*time.Second))
		var got []string
		for l := range strings.Lines(logs.String()) {
			level := strings.Fields(strings.SplitN(l, "level=", 2)[1])[0]
			endpoint := strings.Fields(strings.SplitN(l, "endpoint=", 2)[1])[0]
			retry := strings.Fields(strings.SplitN(l, "retry_after_seconds=", 2)[1])[0]
			got = append(got, level+" "+endpoint+" "+retry)
		}
		want := []string{"WARN machines.logonusers 41", "DEBUG machines.logonusers 40", "WARN machines.get 12", "WARN token 30", "WARN machines.logonusers 5"}
		if !slices.Equal(got, want) {
			t.Errorf("logged %q, want %q", got, want)
		}
	})
}
