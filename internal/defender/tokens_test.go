package defender

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/oauth2"

	"github.com/mdegraph/mdegraph/internal/quota"
	"github.com/mdegraph/mdegraph/internal/upstreamauth"
)

// tokenFunc is a TokenSource made of a function; it counts its calls. Reject counts its own
// and answers as TokenContext does.
type tokenFunc struct {
	calls   atomic.Int32
	rejects atomic.Int32
	fn      func(ctx context.Context, n int) (*oauth2.Token, error)
}

func (f *tokenFunc) TokenContext(ctx context.Context) (*oauth2.Token, error) {
	return f.fn(ctx, int(f.calls.Add(1)))
}

func (f *tokenFunc) Reject(ctx context.Context, _ *oauth2.Token) (*oauth2.Token, error) {
	f.rejects.Add(1)
	return f.TokenContext(ctx)
}

var _ TokenSource = (*tokenFunc)(nil)
var _ TokenSource = (*upstreamauth.Source)(nil)

// TestTokens: with Options.Tokens the client sends the source's token, and a token failure
// ends the call before the limiter is asked: no quota, no attempt, nothing observed, no retry.
// The failure is an *upstreamauth.Error, whatever the source returned.
func TestTokens(t *testing.T) {
	t.Parallel()
	refused := &oauth2.RetrieveError{Response: &http.Response{StatusCode: http.StatusUnauthorized},
		ErrorCode: "invalid_client", ErrorDescription: "AADSTS7000215: Invalid client secret provided."}
	tests := []struct {
		name       string
		token      func(ctx context.Context, cancel context.CancelFunc) (*oauth2.Token, error)
		check      func(t *testing.T, err error)
		wantAuth   string // Authorization the API saw, "" if no call
		wantCalls  int    // API calls = limiter waits = observed calls = Response.Attempts
		wantTokens int32
	}{
		{
			name: "the token is sent",
			token: func(context.Context, context.CancelFunc) (*oauth2.Token, error) {
				return &oauth2.Token{AccessToken: "tok-1", TokenType: "Bearer", Expiry: time.Now().Add(time.Hour)}, nil
			},
			check:    func(t *testing.T, err error) { assertEqual(t, "error", err, nil) },
			wantAuth: "Bearer tok-1", wantCalls: 1, wantTokens: 1,
		},
		{
			name:  "refused credentials: Refused",
			token: func(context.Context, context.CancelFunc) (*oauth2.Token, error) { return nil, refused },
			check: func(t *testing.T, err error) {
				ae := errorAs[*upstreamauth.Error](t, err)
				assertEqual(t, "kind", ae.Kind, upstreamauth.Refused)
				assertEqual(t, "code", ae.Code, "invalid_client")
				assertEqual(t, "status", ae.StatusCode, http.StatusUnauthorized)
				if !strings.Contains(err.Error(), "machines.logonusers") {
					t.Errorf("error %q does not name the endpoint family", err)
				}
			},
			wantTokens: 1,
		},
		{
			name: "unreachable token endpoint: Unavailable, not retried",
			token: func(context.Context, context.CancelFunc) (*oauth2.Token, error) {
				return nil, errors.New("dial tcp: connection refused")
			},
			check: func(t *testing.T, err error) {
				ue := errorAs[*upstreamauth.Error](t, err)
				assertEqual(t, "kind", ue.Kind, upstreamauth.Unavailable)
			},
			wantTokens: 1,
		},
		{
			name: "throttled token endpoint: Throttled",
			token: func(context.Context, context.CancelFunc) (*oauth2.Token, error) {
				return nil, &oauth2.RetrieveError{Response: &http.Response{StatusCode: 429, Header: http.Header{"Retry-After": {"30"}}}}
			},
			check: func(t *testing.T, err error) {
				ue := errorAs[*upstreamauth.Error](t, err)
				assertEqual(t, "kind", ue.Kind, upstreamauth.Throttled)
			},
			wantTokens: 1,
		},
		{
			name: "cancelled while waiting for the token: ctx.Err()",
			token: func(ctx context.Context, cancel context.CancelFunc) (*oauth2.Token, error) {
				cancel()
				return nil, ctx.Err()
			},
			check: func(t *testing.T, err error) {
				if !errors.Is(err, context.Canceled) {
					t.Errorf("error %v, want context.Canceled", err)
				}
			},
			wantTokens: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			api := &fakeTransport{fn: sequence(status(200, `{"value":[]}`))}
			tokens := &tokenFunc{fn: func(ctx context.Context, _ int) (*oauth2.Token, error) { return tt.token(ctx, cancel) }}
			limiter := &fakeLimiter{}
			rec := &callRecorder{}
			client := fakeClient(t, api, func(o *Options) { o.Tokens, o.Limiter, o.Observe = tokens, limiter, rec.observe })

			_, resp, err := client.Machines.LogonUsers(ctx, deviceID)
			tt.check(t, err)
			waits, _ := limiter.recorded()
			assertEqual(t, "API calls", api.calls(), tt.wantCalls)
			assertEqual(t, "limiter waits", len(waits), tt.wantCalls)
			assertEqual(t, "observed calls", len(rec.all()), tt.wantCalls)
			assertEqual(t, "attempts", resp.Attempts, tt.wantCalls)
			assertEqual(t, "token requests", tokens.calls.Load(), tt.wantTokens)
			if tt.wantCalls > 0 {
				assertEqual(t, "Authorization", api.reqs[0].Header.Get("Authorization"), tt.wantAuth)
			}
		})
	}
}

// TestTokens_ExpiredDuringWait: a token that expired while the call waited for quota is
// replaced before the call goes out.
func TestTokens_ExpiredDuringWait(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		api := &fakeTransport{fn: sequence(status(200, `{"value":[]}`))}
		tokens := &tokenFunc{fn: func(_ context.Context, n int) (*oauth2.Token, error) {
			return &oauth2.Token{AccessToken: fmt.Sprintf("tok-%d", n), Expiry: time.Now().Add(time.Minute)}, nil
		}}
		slow := &sleepingLimiter{d: 2 * time.Minute}
		client := fakeClient(t, api, func(o *Options) { o.Tokens, o.Limiter = tokens, slow })
		if _, _, err := client.Machines.LogonUsers(t.Context(), deviceID); err != nil {
			t.Fatal(err)
		}
		assertEqual(t, "token requests", tokens.calls.Load(), 2)
		assertEqual(t, "Authorization", api.reqs[0].Header.Get("Authorization"), "Bearer tok-2")
	})
}

// sleepingLimiter grants every Wait after d.
type sleepingLimiter struct{ d time.Duration }

func (l *sleepingLimiter) Take(ctx context.Context, family string) (time.Time, error) {
	time.Sleep(l.d)
	return time.Now(), nil
}

func (l *sleepingLimiter) Refund(string, time.Time) {}

func (l *sleepingLimiter) Pause(string, time.Time) {}

// TestTokens_NoRedirect: the client adds the bearer token itself, so it follows no redirect
// that could carry it to another host.
func TestTokens_NoRedirect(t *testing.T) {
	t.Parallel()
	var leaked atomic.Bool
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked.Store(true)
	}))
	t.Cleanup(elsewhere.Close)
	tokens := &tokenFunc{fn: func(context.Context, int) (*oauth2.Token, error) { return &oauth2.Token{AccessToken: "tok"}, nil }}
	client, mux := setup(t, func(o *Options) { o.Tokens = tokens })
	mux.HandleFunc("/api/machines/", func(w http.ResponseWriter, r *http.Request) {
		testHeader(t, r, "Authorization", "Bearer tok")
		http.Redirect(w, r, elsewhere.URL+"/steal", http.StatusFound)
	})
	_, resp, err := client.Machines.Get(t.Context(), deviceID)
	er := errorAs[*ErrorResponse](t, err)
	assertEqual(t, "status", er.StatusCode, http.StatusFound)
	assertEqual(t, "attempts", resp.Attempts, 1)
	if leaked.Load() {
		t.Error("the redirect was followed")
	}
}

// TestTokenFailureSpendsNoQuota is the new-user trial: wrong credentials, many queries. The
// token endpoint is asked once per failure window, the quota limiter grants nothing and no
// call is observed (so the calls metric stays at zero); once the credentials work, calls go
// out and spend quota as usual.
func TestTokenFailureSpendsNoQuota(t *testing.T) {
	t.Parallel()
	const queries = 100
	synctest.Test(t, func(t *testing.T) {
		var fixed atomic.Bool
		tokenEndpoint := &fakeTransport{fn: func(n int, req *http.Request) (*http.Response, error) {
			if fixed.Load() {
				return answer(req, 200, fmt.Sprintf(`{"token_type":"Bearer","expires_in":3599,"access_token":"tok-%d"}`, n)), nil
			}
			return answer(req, 401, `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}`), nil
		}}
		ctx := context.WithValue(t.Context(), oauth2.HTTPClient, &http.Client{Transport: tokenEndpoint})
		src := upstreamauth.TokenSource(ctx, upstreamauth.ClientCredentials{TenantID: "tenant", ClientID: "client", ClientSecret: "wrong",
			TokenURL: "https://login.example.test/tenant/oauth2/v2.0/token", Scope: "https://api.securitycenter.microsoft.com/.default"})
		api := &fakeTransport{fn: sequence(status(200, `{"value":[]}`))}
		limits := quota.NewSet(10*time.Second, quota.Window{Limit: 100, Per: time.Minute}, quota.Window{Limit: 1500, Per: time.Hour})
		rec := &callRecorder{}
		client := fakeClient(t, api, func(o *Options) { o.Tokens, o.Limiter, o.Observe = src, limits, rec.observe })

		used := func() int {
			n := 0
			for _, f := range limits.Status() {
				for _, w := range f.Windows {
					n += w.Used
				}
			}
			return n
		}
		// Half the queries at once, half one after another within the failure window.
		var wg sync.WaitGroup
		for i := range queries {
			query := func() {
				_, resp, err := client.Machines.LogonUsers(t.Context(), deviceID)
				errorAs[*upstreamauth.Error](t, err)
				assertEqual(t, fmt.Sprintf("query %d attempts", i), resp.Attempts, 0)
			}
			if i < queries/2 {
				wg.Go(query)
				continue
			}
			wg.Wait()
			time.Sleep(upstreamauth.FailureTTL / queries)
			query()
		}
		assertEqual(t, "token endpoint calls", tokenEndpoint.calls(), 1)
		assertEqual(t, "quota grants", used(), 0)
		assertEqual(t, "observed API calls", len(rec.all()), 0)
		assertEqual(t, "API calls", api.calls(), 0)

		// The credentials are fixed; the first query after the window gets a token.
		fixed.Store(true)
		time.Sleep(upstreamauth.FailureTTL)
		if _, _, err := client.Machines.LogonUsers(t.Context(), deviceID); err != nil {
			t.Fatalf("after the fix: %v", err)
		}
		assertEqual(t, "token endpoint calls after the fix", tokenEndpoint.calls(), 2)
		assertEqual(t, "quota grants after the fix", used(), 2) // one per window of one family
		assertEqual(t, "API calls after the fix", api.calls(), 1)
		assertEqual(t, "Authorization", api.reqs[0].Header.Get("Authorization"), "Bearer tok-2")
	})
}
