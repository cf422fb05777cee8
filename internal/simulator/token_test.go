package simulator

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestTokenEndpoint(t *testing.T) {
	t.Parallel()
	with := func(key, value string) url.Values {
		f := tokenForm()
		if value == "" {
			f.Del(key)
		} else {
			f.Set(key, value)
		}
		return f
	}
	tests := []struct {
		name       string
		tenant     string // "" means DemoTenantID
		form       url.Values
		basic      []string // client id and secret sent with HTTP Basic instead of the form
		method     string
		wantStatus int
		wantError  string // OAuth error; "" for success
		wantCode   int    // AADSTS code
	}{
		{name: "form credentials", form: tokenForm(), wantStatus: 200},
		{name: "basic credentials", form: with("client_secret", ""), basic: []string{DefaultClientID, DefaultClientSecret}, wantStatus: 200},
		{name: "government scope", form: with("scope", "https://api-gov.securitycenter.microsoft.us/.default"), wantStatus: 200},
		{name: "wrong secret", form: with("client_secret", "hunter2-wrong"), wantStatus: 401, wantError: "invalid_client", wantCode: 7000215},
		{name: "wrong basic secret", form: with("client_secret", ""), basic: []string{DefaultClientID, "nope"}, wantStatus: 401, wantError: "invalid_client", wantCode: 7000215},
		{name: "missing secret", form: with("client_secret", ""), wantStatus: 401, wantError: "invalid_client", wantCode: 7000218},
		{name: "unknown client", form: with("client_id", "someone-else"), wantStatus: 400, wantError: "unauthorized_client", wantCode: 700016},
		{name: "missing client", form: with("client_id", ""), wantStatus: 400, wantError: "invalid_request", wantCode: 900144},
		{name: "password grant", form: with("grant_type", "password"), wantStatus: 400, wantError: "unsupported_grant_type", wantCode: 70003},
		{name: "missing grant", form: with("grant_type", ""), wantStatus: 400, wantError: "invalid_request", wantCode: 900144},
		{name: "missing scope", form: with("scope", ""), wantStatus: 400, wantError: "invalid_request", wantCode: 900144},
		{name: "delegated scope", form: with("scope", "https://api.securitycenter.microsoft.com/Machine.Read.All"), wantStatus: 400, wantError: "invalid_scope", wantCode: 1002012},
		{name: "wrong tenant", tenant: "another-tenant", form: tokenForm(), wantStatus: 400, wantError: "invalid_request", wantCode: 90002},
		{name: "GET", form: tokenForm(), method: http.MethodGet, wantStatus: 405, wantError: "invalid_request", wantCode: 900561},
	}
	s, _ := newTestSim(t, Options{TenantID: DemoTenantID})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tenant := tt.tenant
			if tenant == "" {
				tenant = DemoTenantID
			}
			method := tt.method
			if method == "" {
				method = http.MethodPost
			}
			req := httptest.NewRequest(method, "/"+tenant+"/oauth2/v2.0/token", strings.NewReader(tt.form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tt.basic != nil {
				req.SetBasicAuth(url.QueryEscape(tt.basic[0]), url.QueryEscape(tt.basic[1]))
			}
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			wantStatus(t, rec, tt.wantStatus)
			if !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
				t.Errorf("Content-Type: got %q, want JSON", rec.Header().Get("Content-Type"))
			}
			if tt.wantError == "" {
				tok := decode[tokenAnswer](t, rec)
				if tok.TokenType != "Bearer" || tok.ExpiresIn != 3599 || tok.ExtExpiresIn != 3599 || len(tok.AccessToken) < 32 {
					t.Errorf("token answer: got %+v, want Bearer, 3599 s, an opaque token", tok)
				}
				return
			}
			e := decode[oauthErrorBody](t, rec)
			if e.Error != tt.wantError {
				t.Errorf("error: got %q, want %q", e.Error, tt.wantError)
			}
			if prefix := fmt.Sprintf("AADSTS%d: ", tt.wantCode); !strings.HasPrefix(e.ErrorDescription, prefix) {
				t.Errorf("error_description: got %q, want prefix %q", e.ErrorDescription, prefix)
			}
			if len(e.ErrorCodes) != 1 || e.ErrorCodes[0] != tt.wantCode {
				t.Errorf("error_codes: got %v, want [%d]", e.ErrorCodes, tt.wantCode)
			}
			if !guidRE.MatchString(e.TraceID) || !guidRE.MatchString(e.CorrelationID) || e.Timestamp == "" {
				t.Errorf("trace_id, correlation_id, timestamp: got %q, %q, %q", e.TraceID, e.CorrelationID, e.Timestamp)
			}
			for _, secret := range []string{DefaultClientSecret, "hunter2-wrong", "nope"} {
				if strings.Contains(rec.Body.String(), secret) {
					t.Errorf("error body echoes a secret %q: %s", secret, rec.Body.String())
				}
			}
		})
	}
}

func TestTokenAnyTenantWhenUnset(t *testing.T) {
	t.Parallel()
	s, _ := newTestSim(t, Options{ClientID: "app", ClientSecret: "s3cret"})
	form := tokenForm()
	form.Set("client_id", "app")
	form.Set("client_secret", "s3cret")
	for _, tenant := range []string{"contoso.onmicrosoft.com", DemoTenantID, "common"} {
		wantStatus(t, postToken(t, s, tenant, form), http.StatusOK)
	}
	if got := s.Stats()[EndpointToken]; got.Calls != 3 || got.ByStatus[200] != 3 || got.MaxInAnyMinute != 3 {
		t.Errorf("token stats: got %+v, want 3 calls, 3 issued in a minute", got)
	}
}

func TestTokenExpiry(t *testing.T) {
	t.Parallel()
	s, clk := newTestSim(t, Options{TokenTTL: 10 * time.Minute})
	rec := postToken(t, s, "t", tokenForm())
	wantStatus(t, rec, http.StatusOK)
	if got := decode[tokenAnswer](t, rec).ExpiresIn; got != 600 {
		t.Errorf("expires_in: got %d, want 600", got)
	}
	tok := decode[tokenAnswer](t, rec).AccessToken
	target := "/api/machines/" + s.ExampleMachineID()

	clk.Advance(10*time.Minute - time.Nanosecond)
	wantStatus(t, get(t, s, target, tok), http.StatusOK)

	clk.Advance(time.Nanosecond)
	msg := wantAPIError(t, get(t, s, target, tok), http.StatusUnauthorized, codeUnauthorized)
	if !strings.Contains(msg, "expired") {
		t.Errorf("message: got %q, want it to say the token expired", msg)
	}
	wantStatus(t, get(t, s, target, getToken(t, s)), http.StatusOK) // a fresh token works again
}

func TestUnauthorized(t *testing.T) {
	t.Parallel()
	s, _ := newTestSim(t, Options{})
	other, _ := newTestSim(t, Options{})
	foreign := getToken(t, other) // issued by another simulator: unknown here
	tests := []struct {
		name, header string
	}{
		{"no header", ""},
		{"basic scheme", "Basic ZGVtbzpkZW1v"},
		{"empty bearer", "Bearer "},
		{"unknown token", "Bearer not-a-token"},
		{"foreign token", "Bearer " + foreign},
	}
	for _, tt := range tests {
		for _, target := range []string{"/api/machines", "/api/machines/" + s.ExampleMachineID(), "/api/v1.0/machines/" + s.ExampleMachineID() + "/logonusers"} {
			t.Run(tt.name+target, func(t *testing.T) {
				req := httptest.NewRequest(http.MethodGet, target, nil)
				if tt.header != "" {
					req.Header.Set("Authorization", tt.header)
				}
				rec := httptest.NewRecorder()
				s.ServeHTTP(rec, req)
				wantAPIError(t, rec, http.StatusUnauthorized, codeUnauthorized)
				if !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("WWW-Authenticate: got %q, want a Bearer challenge", rec.Header().Get("WWW-Authenticate"))
				}
			})
		}
	}
	if st := s.Stats()[EndpointListMachines]; st.MaxInAnyMinute != 0 {
		t.Errorf("401s counted against the rate limit: MaxInAnyMinute %d, want 0", st.MaxInAnyMinute)
	}
}
