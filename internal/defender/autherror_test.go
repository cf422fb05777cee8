package defender

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mdegraph/mdegraph/internal/upstreamauth"
)

// TestAuthError: a token endpoint refusing the credentials surfaces from a machines call as an
// *upstreamauth.Error of kind Refused that carries Entra ID's explanation and never the secret,
// in the error or the logs.
// With the token source given as Options.Tokens (as the app does) the refusal takes no quota
// and is no API call; with the token added by the HTTP client, it happens inside an attempt.
func TestAuthError(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t~Qx8Q_zZ.9-Very+Secret/Value="
	const aadsts = "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID. Trace ID: 0a0b Correlation ID: 1c1d Timestamp: 2024-05-01 12:00:00Z"

	tests := []struct {
		name                    string
		wire                    func(o *Options, src *upstreamauth.Source)
		wantAttempts, wantWaits int
		wantObserved            int
	}{
		{"token source asked before the limiter", func(o *Options, src *upstreamauth.Source) { o.Tokens = src }, 0, 0, 0},
		{"token added by the HTTP client", func(o *Options, src *upstreamauth.Source) { o.HTTPClient = upstreamauth.HTTPClient(src, nil) }, 1, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var tokenCalls atomic.Int32
			tokenSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				tokenCalls.Add(1)
				if err := r.ParseForm(); err != nil {
					t.Errorf("token request form: %v", err)
				}
				if r.PostForm.Get("client_secret") != secret {
					t.Errorf("token request: client_secret not sent")
				}
				w.Header().Set("Content-Type", "application/json; charset=utf-8")
				w.WriteHeader(http.StatusUnauthorized)
				fmt.Fprintf(w, `{"error":"invalid_client","error_description":%q,"error_codes":[7000215],"trace_id":"0a0b","correlation_id":"1c1d"}`, aadsts)
			}))
			t.Cleanup(tokenSrv.Close)

			var apiCalls atomic.Int32
			apiSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				apiCalls.Add(1)
				io.WriteString(w, machineJSON)
			}))
			t.Cleanup(apiSrv.Close)

			var logs bytes.Buffer
			logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			rec := &callRecorder{}
			limiter := &fakeLimiter{}
			src := upstreamauth.TokenSource(t.Context(), upstreamauth.ClientCredentials{
				TenantID: "tenant", ClientID: "client", ClientSecret: secret,
				TokenURL: tokenSrv.URL + "/tenant/oauth2/v2.0/token", Scope: "https://api.securitycenter.microsoft.com/.default",
			})
			opts := Options{BaseURL: apiSrv.URL + baseURLPath, Limiter: limiter, Logger: logger, Observe: rec.observe}
			tt.wire(&opts, src)
			client, err := New(opts)
			if err != nil {
				t.Fatal(err)
			}

			m, resp, err := client.Machines.Get(t.Context(), deviceID)
			if m != nil {
				t.Errorf("got machine %+v, want nil", m)
			}
			ae := errorAs[*upstreamauth.Error](t, err)
			assertEqual(t, "kind", ae.Kind, upstreamauth.Refused)
			assertEqual(t, "status", ae.StatusCode, http.StatusUnauthorized)
			assertEqual(t, "code", ae.Code, "invalid_client")
			if !strings.Contains(err.Error(), "AADSTS7000215: Invalid client secret provided.") {
				t.Errorf("error %q: want Entra ID's AADSTS explanation", err)
			}
			// Refused credentials do not get better by retrying.
			assertEqual(t, "attempts", resp.Attempts, tt.wantAttempts)
			assertEqual(t, "token calls", tokenCalls.Load(), 1)
			assertEqual(t, "API calls", apiCalls.Load(), 0)
			waits, _ := limiter.recorded()
			assertEqual(t, "limiter waits", len(waits), tt.wantWaits)
			assertEqual(t, "observed calls", len(rec.all()), tt.wantObserved)

			for _, c := range rec.all() {
				logger.Debug("observed", "call", c, "err", c.Err)
			}
			for what, text := range map[string]string{
				"error":      err.Error(),
				"error %+v":  fmt.Sprintf("%+v", err),
				"error %#v":  fmt.Sprintf("%#v", err),
				"debug logs": logs.String(),
			} {
				for _, s := range []string{secret, url.QueryEscape(secret)} {
					if strings.Contains(text, s) {
						t.Errorf("%s contains the client secret: %s", what, text)
					}
				}
			}
			if !strings.Contains(logs.String(), "AADSTS7000215") {
				t.Errorf("debug logs do not explain the failure:\n%s", logs.String())
			}
		})
	}
}
