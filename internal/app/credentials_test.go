package app

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/oauth2"

	"github.com/mdegraph/mdegraph/internal/logtest"
	"github.com/mdegraph/mdegraph/internal/upstreamauth"
)

// tokenFunc is a defender.TokenSource made of a function.
type tokenFunc func(ctx context.Context) (*oauth2.Token, error)

func (f tokenFunc) TokenContext(ctx context.Context) (*oauth2.Token, error) { return f(ctx) }

func refusedWith(status int, code, description string) tokenFunc {
	return func(context.Context) (*oauth2.Token, error) {
		return nil, &oauth2.RetrieveError{Response: &http.Response{StatusCode: status}, ErrorCode: code, ErrorDescription: description}
	}
}

func TestCheckCredentials(t *testing.T) {
	t.Parallel()
	const secret = "Zx8Q~s3cr3t.Value_9"
	creds := upstreamauth.ClientCredentials{TenantID: "contoso.onmicrosoft.com", ClientID: "app-1", ClientSecret: secret,
		TokenURL: "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token", Scope: "https://api.securitycenter.microsoft.com/.default"}
	tests := []struct {
		name     string
		tokens   tokenFunc
		shutdown bool     // the application context ends before the check
		want     []string // in the one line logged; none logged when empty
		absent   []string // not in it
	}{
		{
			name: "token issued",
			tokens: func(context.Context) (*oauth2.Token, error) {
				return &oauth2.Token{AccessToken: "tok", Expiry: time.Now().Add(time.Hour)}, nil
			},
			want: []string{"level=INFO", "credentials checked", "tenant=contoso.onmicrosoft.com", "client_id=app-1", "token_expires_in=1h0m0s"},
		},
		{
			name:   "wrong secret",
			tokens: refusedWith(401, "invalid_client", "AADSTS7000215: Invalid client secret provided."),
			want: []string{"level=WARN", "credentials refused", "UPSTREAM_UNAUTHORIZED", "status=401", "error=invalid_client",
				`error_description="AADSTS7000215: Invalid client secret provided."`, "MDE_CLIENT_SECRET is wrong or expired", "client_id=app-1"},
		},
		{
			name:   "unknown application",
			tokens: refusedWith(400, "unauthorized_client", "AADSTS700016: Application with identifier 'app-1' was not found in the directory."),
			want:   []string{"level=WARN", "credentials refused", "status=400", "AADSTS700016", "MDE_CLIENT_ID names no application"},
		},
		{
			name:   "unknown error code",
			tokens: refusedWith(400, "something_new", ""),
			want:   []string{"level=WARN", "credentials refused", "outcome=refused", "check MDE_TENANT_ID, MDE_CLIENT_ID and MDE_CLIENT_SECRET"},
		},
		{
			name:   "token endpoint down: not a credentials problem",
			tokens: refusedWith(503, "temporarily_unavailable", "AADSTS90036: try again later"),
			want:   []string{"level=WARN", "credentials not checked", "outcome=unavailable", "status=503", "UPSTREAM_UNAVAILABLE", "not a credentials problem"},
			absent: []string{"refused", "MDE_CLIENT_SECRET"},
		},
		{
			name:   "token endpoint down, HTML",
			tokens: refusedWith(503, "", ""),
			want:   []string{"level=WARN", "credentials not checked", "outcome=unavailable", "status=503"},
			absent: []string{"refused", "MDE_CLIENT_SECRET"},
		},
		{
			name: "token endpoint throttling",
			tokens: func(context.Context) (*oauth2.Token, error) {
				return nil, &oauth2.RetrieveError{Response: &http.Response{StatusCode: 429, Header: http.Header{"Retry-After": {"30"}}}}
			},
			want:   []string{"level=WARN", "credentials not checked", "outcome=throttled", "status=429", "RATE_LIMITED", "retry_after=30s"},
			absent: []string{"refused", "MDE_CLIENT_SECRET"},
		},
		{
			name:   "a description echoing the secret is redacted",
			tokens: refusedWith(401, "invalid_client", "AADSTS7000215: the secret "+secret+" is wrong"),
			want:   []string{"level=WARN", "the secret [redacted] is wrong"},
		},
		{
			name: "token endpoint unreachable",
			tokens: func(context.Context) (*oauth2.Token, error) {
				return nil, errors.New(`Post "https://login.microsoftonline.com/x/oauth2/v2.0/token": dial tcp: connection refused`)
			},
			want: []string{"level=WARN", "could not be reached", "connection refused", "outcome=unavailable"},
		},
		{
			name: "token endpoint silent",
			tokens: func(ctx context.Context) (*oauth2.Token, error) {
				<-ctx.Done()
				return nil, ctx.Err()
			},
			want: []string{"level=WARN", "did not answer in time", "timeout=15s", "outcome=timeout"},
		},
		{
			name: "shutting down: nothing to say",
			tokens: func(ctx context.Context) (*oauth2.Token, error) {
				<-ctx.Done()
				return nil, ctx.Err()
			},
			shutdown: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				var logs logtest.Buffer
				logger := slog.New(slog.NewTextHandler(&logs, nil))
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				if tt.shutdown {
					cancel()
				}
				start := time.Now()
				checkCredentials(ctx, tt.tokens, creds, logger, CredentialCheckTimeout)
				if waited := time.Since(start); waited > CredentialCheckTimeout {
					t.Errorf("the check took %v, want at most %v", waited, CredentialCheckTimeout)
				}
				out := logs.String()
				lines := strings.Count(out, "\n")
				if len(tt.want) == 0 {
					if lines != 0 {
						t.Errorf("logged %q, want nothing", out)
					}
					return
				}
				if lines != 1 {
					t.Fatalf("logged %d lines, want 1:\n%s", lines, out)
				}
				for _, w := range tt.want {
					if !strings.Contains(out, w) {
						t.Errorf("log line %q: want %q in it", out, w)
					}
				}
				for _, a := range tt.absent {
					if strings.Contains(out, a) {
						t.Errorf("log line %q: want no %q in it", out, a)
					}
				}
				if strings.Contains(out, secret) {
					t.Errorf("log line %q contains the secret", out)
				}
			})
		})
	}
}
