package defender

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/oauth2"

	"github.com/mdegraph/mdegraph/internal/quota"
	"github.com/mdegraph/mdegraph/internal/upstreamauth"
)

// invalidToken is Defender's answer to a token it no longer accepts.
func invalidToken(req *http.Request) *http.Response {
	return answer(req, http.StatusUnauthorized,
		`{"error":{"code":"Unauthorized","message":"Authorization token has expired or is invalid","target":"corr-401"}}`,
		"WWW-Authenticate", `Bearer error="invalid_token", error_description="The access token is invalid"`)
}

// reauthSetup wires a client to an in-memory token endpoint issuing tok-1, tok-2, ... (an
// hour each) and to api, with a real limiter, all usable inside a synctest bubble.
func reauthSetup(t *testing.T, api *fakeTransport) (*Client, *fakeTransport, *quota.Set, *callRecorder) {
	t.Helper()
	tokenEndpoint := &fakeTransport{fn: func(n int, req *http.Request) (*http.Response, error) {
		return answer(req, 200, fmt.Sprintf(`{"token_type":"Bearer","expires_in":3599,"access_token":"tok-%d"}`, n)), nil
	}}
	ctx := context.WithValue(t.Context(), oauth2.HTTPClient, &http.Client{Transport: tokenEndpoint})
	src := upstreamauth.TokenSource(ctx, upstreamauth.ClientCredentials{TenantID: "tenant", ClientID: "client", ClientSecret: "secret",
		TokenURL: "https://login.example.test/tenant/oauth2/v2.0/token", Scope: "https://api.securitycenter.microsoft.com/.default"})
	limits := quota.NewSet(10*time.Second, quota.Window{Limit: 100, Per: time.Minute})
	rec := &callRecorder{}
	client := fakeClient(t, api, func(o *Options) { o.Tokens, o.Limiter, o.Observe = src, limits, rec.observe })
	return client, tokenEndpoint, limits, rec
}

func quotaUsed(limits *quota.Set) int {
	n := 0
	for _, f := range limits.Status() {
		for _, w := range f.Windows {
			n += w.Used
		}
	}
	return n
}

// TestTokenRejectedBeforeExpiry is the reproduction: Defender refuses a token with 401 (WWW-
// Authenticate: Bearer error="invalid_token") long before its stated expiry. The token is
// dropped, a new one fetched, and the call retried once; both attempts spent quota, since
// Defender counted both, and the next queries use the new token.
func TestTokenRejectedBeforeExpiry(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		api := &fakeTransport{fn: func(_ int, req *http.Request) (*http.Response, error) {
			if req.Header.Get("Authorization") == "Bearer tok-1" {
				return invalidToken(req), nil // revoked
			}
			return answer(req, 200, `{"value":[]}`), nil
		}}
		client, tokenEndpoint, limits, rec := reauthSetup(t, api)
		for i := range 3 {
			_, resp, err := client.Machines.LogonUsers(t.Context(), deviceID)
			if err != nil {
				t.Fatalf("query %d: %v", i+1, err)
			}
			if want := map[int]int{0: 2}[i]; i == 0 && resp.Attempts != want {
				t.Errorf("query 1: %d attempts, want %d", resp.Attempts, want)
			}
			time.Sleep(11 * time.Second)
		}
		assertEqual(t, "token requests", tokenEndpoint.calls(), 2)
		assertEqual(t, "API calls", api.calls(), 4)
		assertEqual(t, "quota used (the 401 counted)", quotaUsed(limits), 4)
		var statuses []string
		for _, c := range rec.all() {
			statuses = append(statuses, fmt.Sprint(c.Status))
		}
		assertEqual(t, "observed statuses", strings.Join(statuses, " "), "401 200 200 200")
		for i, r := range api.reqs[1:] {
			assertEqual(t, fmt.Sprintf("call %d Authorization", i+2), r.Header.Get("Authorization"), "Bearer tok-2")
		}
	})
}

// TestTokenRejectedConcurrently: many calls refused with the same token at once cause one
// token request, and each retries once with the new token.
func TestTokenRejectedConcurrently(t *testing.T) {
	t.Parallel()
	const calls = 20
	synctest.Test(t, func(t *testing.T) {
		// Every call is sent with tok-1 before any is answered.
		var arrived sync.WaitGroup
		arrived.Add(calls)
		api := &fakeTransport{fn: func(_ int, req *http.Request) (*http.Response, error) {
			if req.Header.Get("Authorization") == "Bearer tok-1" {
				arrived.Done()
				arrived.Wait()
				return invalidToken(req), nil
			}
			return answer(req, 200, `{"value":[]}`), nil
		}}
		client, tokenEndpoint, _, _ := reauthSetup(t, api)
		if _, err := client.tokens.TokenContext(t.Context()); err != nil { // tok-1, before the burst
			t.Fatal(err)
		}
		time.Sleep(time.Minute)
		var wg sync.WaitGroup
		for i := range calls {
			wg.Go(func() {
				if _, _, err := client.Machines.LogonUsers(t.Context(), deviceID); err != nil {
					t.Errorf("call %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		assertEqual(t, "token requests", tokenEndpoint.calls(), 2)
		assertEqual(t, "API calls", api.calls(), 2*calls)
	})
}

// TestTokenAlwaysRejected: an API that refuses every token (one for another API, say). The
// call is retried once, then fails with the 401 and the Rejected error; while that is
// remembered, calls fail at once with no API call and no quota spent.
func TestTokenAlwaysRejected(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		api := &fakeTransport{fn: func(_ int, req *http.Request) (*http.Response, error) { return invalidToken(req), nil }}
		client, tokenEndpoint, limits, _ := reauthSetup(t, api)

		_, resp, err := client.Machines.LogonUsers(t.Context(), deviceID)
		er := errorAs[*ErrorResponse](t, err)
		assertEqual(t, "status", er.StatusCode, http.StatusUnauthorized)
		assertEqual(t, "correlation id", er.Target, "corr-401")
		ue := errorAs[*upstreamauth.Error](t, err)
		assertEqual(t, "kind", ue.Kind, upstreamauth.Rejected)
		assertEqual(t, "attempts", resp.Attempts, 2)
		assertEqual(t, "token requests", tokenEndpoint.calls(), 2)

		for range 5 {
			time.Sleep(time.Second)
			_, resp, err := client.Machines.LogonUsers(t.Context(), deviceID)
			ue := errorAs[*upstreamauth.Error](t, err)
			assertEqual(t, "kind", ue.Kind, upstreamauth.Rejected)
			assertEqual(t, "attempts while rejected", resp.Attempts, 0)
		}
		assertEqual(t, "API calls", api.calls(), 2)
		assertEqual(t, "quota used", quotaUsed(limits), 2)
		assertEqual(t, "token requests", tokenEndpoint.calls(), 2)
	})
}

// TestTokenRejectedAndRefused: the 401 came because the secret was revoked; the forced
// refresh is refused, and the call fails with the token endpoint's reason.
func TestTokenRejectedAndRefused(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		tokenEndpoint := &fakeTransport{fn: sequence(
			status(200, `{"token_type":"Bearer","expires_in":3599,"access_token":"tok-1"}`),
			status(401, `{"error":"invalid_client","error_description":"AADSTS7000222: The provided client secret keys are expired."}`))}
		ctx := context.WithValue(t.Context(), oauth2.HTTPClient, &http.Client{Transport: tokenEndpoint})
		src := upstreamauth.TokenSource(ctx, upstreamauth.ClientCredentials{TokenURL: "https://login.example.test/t/oauth2/v2.0/token"})
		api := &fakeTransport{fn: func(_ int, req *http.Request) (*http.Response, error) { return invalidToken(req), nil }}
		client := fakeClient(t, api, func(o *Options) { o.Tokens = src })

		_, resp, err := client.Machines.Get(t.Context(), deviceID)
		ue := errorAs[*upstreamauth.Error](t, err)
		assertEqual(t, "kind", ue.Kind, upstreamauth.Refused)
		assertEqual(t, "code", ue.Code, "invalid_client")
		assertEqual(t, "attempts", resp.Attempts, 1)
		if !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "AADSTS7000222") {
			t.Errorf("error %q: want both the 401 and Entra ID's reason", err)
		}
	})
}
