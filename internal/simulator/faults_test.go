package simulator

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestInject(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		inject     func(s *Simulator)
		endpoint   string // target suffix after /api/machines
		wantStatus []int
		wantCode   string
		retryAfter string
	}{
		{"500 twice", func(s *Simulator) { s.Inject(EndpointGetMachine, 500, 2) }, "/{id}", []int{500, 500, 200}, codeInternal, ""},
		{"503", func(s *Simulator) { s.Inject(EndpointListMachines, 503, 1) }, "", []int{503, 200}, "ServiceUnavailable", ""},
		{"429 default", func(s *Simulator) { s.Inject(EndpointLogonUsers, 429, 1) }, "/{id}/logonusers", []int{429, 200}, codeTooManyRequests, "1"},
		{"429 chosen", func(s *Simulator) { s.InjectRetryAfter(EndpointLogonUsers, 30*time.Second, 1) }, "/{id}/logonusers", []int{429, 200}, codeTooManyRequests, "30"},
		{"403", func(s *Simulator) { s.Inject(EndpointGetMachine, 403, 1) }, "/{id}", []int{403, 200}, codeForbidden, ""},
		{"401 despite a valid token", func(s *Simulator) { s.Inject(EndpointGetMachine, 401, 1) }, "/{id}", []int{401, 200}, codeUnauthorized, ""},
		{"400", func(s *Simulator) { s.Inject(EndpointListMachines, 400, 1) }, "", []int{400, 200}, codeBadRequest, ""},
		{"404 transient", func(s *Simulator) { s.Inject(EndpointGetMachine, 404, 1) }, "/{id}", []int{404, 200}, codeNotFound, ""},
		{"queued in order", func(s *Simulator) {
			s.Inject(EndpointGetMachine, 500, 1)
			s.Inject(EndpointGetMachine, 503, 1)
		}, "/{id}", []int{500, 503, 200}, "", ""},
		{"other endpoints untouched", func(s *Simulator) { s.Inject(EndpointListMachines, 500, 5) }, "/{id}", []int{200}, "", ""},
		{"zero times", func(s *Simulator) { s.Inject(EndpointGetMachine, 500, 0) }, "/{id}", []int{200}, "", ""},
		{"cleared", func(s *Simulator) {
			s.Inject(EndpointGetMachine, 500, 5)
			s.ClearFaults()
		}, "/{id}", []int{200}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, _ := newTestSim(t, Options{})
			tok := getToken(t, s)
			tt.inject(s)
			target := "/api/machines"
			if tt.endpoint != "" {
				target += strings.ReplaceAll(tt.endpoint, "{id}", s.ExampleMachineID())
			}
			for i, want := range tt.wantStatus {
				rec := get(t, s, target, tok)
				if i == 0 && tt.wantCode != "" {
					wantAPIError(t, rec, want, tt.wantCode)
					if got := rec.Header().Get("Retry-After"); got != tt.retryAfter {
						t.Errorf("Retry-After: got %q, want %q", got, tt.retryAfter)
					}
					continue
				}
				wantStatus(t, rec, want)
			}
		})
	}
}

// Injected answers neither need a token nor spend rate-limit slots: a test gets exactly the
// fault it asked for.
func TestInjectBypassesLimits(t *testing.T) {
	t.Parallel()
	s, _ := newTestSim(t, Options{PerMinute: 1})
	tok := getToken(t, s)
	target := "/api/machines/" + s.ExampleMachineID()
	s.Inject(EndpointGetMachine, 500, 3)
	for range 3 {
		wantStatus(t, get(t, s, target, ""), http.StatusInternalServerError)
	}
	wantStatus(t, get(t, s, target, tok), http.StatusOK)
	wantStatus(t, get(t, s, target, tok), http.StatusTooManyRequests)
	st := s.Stats()[EndpointGetMachine]
	if st.Calls != 5 || st.ByStatus[500] != 3 || st.MaxInAnyMinute != 1 {
		t.Errorf("stats: got %+v", st)
	}
}

func TestInjectToken(t *testing.T) {
	t.Parallel()
	s, _ := newTestSim(t, Options{})
	s.Inject(EndpointToken, 503, 1)
	s.InjectRetryAfter(EndpointToken, 5*time.Second, 1)
	rec := postToken(t, s, "t", tokenForm())
	wantStatus(t, rec, http.StatusServiceUnavailable)
	if e := decode[oauthErrorBody](t, rec); e.Error != "temporarily_unavailable" || len(e.ErrorCodes) != 1 {
		t.Errorf("injected token error: got %+v, want Entra's OAuth shape", e)
	}
	rec = postToken(t, s, "t", tokenForm())
	wantStatus(t, rec, http.StatusTooManyRequests)
	if got := rec.Header().Get("Retry-After"); got != "5" {
		t.Errorf("Retry-After: got %q, want 5", got)
	}
	wantStatus(t, postToken(t, s, "t", tokenForm()), http.StatusOK)
}

func TestInjectPanicsOnMistakes(t *testing.T) {
	t.Parallel()
	s, _ := newTestSim(t, Options{})
	for name, f := range map[string]func(){
		"success status":   func() { s.Inject(EndpointGetMachine, 200, 1) },
		"unknown endpoint": func() { s.Inject(Endpoint("alerts"), 500, 1) },
		"no status":        func() { s.InjectFault(EndpointToken, Fault{HTML: true}, 1) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f()
		})
	}
}

// TestInjectFault covers the token endpoint's outages a client must survive, and the same
// shapes on an API endpoint.
func TestInjectFault(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		endpoint    Endpoint
		fault       Fault
		status      int
		contentType string
		body        string // a substring
		retryAfter  string
	}{
		{"token 503 HTML", EndpointToken, Fault{Status: 503, HTML: true}, 503, "text/html; charset=utf-8", "<h1>Service Unavailable</h1>", ""},
		{"token 503 JSON", EndpointToken, Fault{Status: 503}, 503, contentTypeOAuth, `"error":"temporarily_unavailable"`, ""},
		{"token 429", EndpointToken, Fault{Status: 429, RetryAfter: 7 * time.Second}, 429, contentTypeOAuth, `"error":"temporarily_unavailable"`, "7"},
		{"token 429 without Retry-After", EndpointToken, Fault{Status: 429, RetryAfter: -1}, 429, contentTypeOAuth, "AADSTS90055", ""},
		{"token 500 with Retry-After", EndpointToken, Fault{Status: 500, RetryAfter: 1500 * time.Millisecond}, 500, contentTypeOAuth, "temporarily_unavailable", "2"},
		{"jwks 503", EndpointJWKS, Fault{Status: 503}, 503, contentTypeOAuth, "temporarily_unavailable", ""},
		{"discovery 502 HTML", EndpointDiscovery, Fault{Status: 502, HTML: true}, 502, "text/html; charset=utf-8", "Bad Gateway", ""},
		{"api 503 HTML", EndpointGetMachine, Fault{Status: 503, HTML: true}, 503, "text/html; charset=utf-8", "<!DOCTYPE html>", ""},
		{"api 429 without Retry-After", EndpointGetMachine, Fault{Status: 429, RetryAfter: -1}, 429, contentTypeError, codeTooManyRequests, ""},
		{"alerts 500", EndpointMachineAlerts, Fault{Status: 500}, 500, contentTypeError, codeInternal, ""},
		{"demo 503", EndpointDemo, Fault{Status: 503}, 503, contentTypeOAuth, "injected", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, _ := newIdentitySim(t, Options{})
			tok := getToken(t, s)
			s.InjectFault(tt.endpoint, tt.fault, 1)
			send := func() *httptest.ResponseRecorder {
				switch tt.endpoint {
				case EndpointToken:
					return postToken(t, s, DemoTenantID, tokenForm())
				case EndpointJWKS:
					return get(t, s, "/"+DemoTenantID+"/discovery/v2.0/keys", "")
				case EndpointDiscovery:
					return get(t, s, "/"+DemoTenantID+"/v2.0/.well-known/openid-configuration", "")
				case EndpointMachineAlerts:
					return get(t, s, "/api/machines/"+s.ExampleMachineID()+"/alerts", tok)
				case EndpointDemo:
					return get(t, s, "/demo/persons", "")
				}
				return get(t, s, "/api/machines/"+s.ExampleMachineID(), tok)
			}
			rec := send()
			wantStatus(t, rec, tt.status)
			if got := rec.Header().Get("Content-Type"); got != tt.contentType {
				t.Errorf("Content-Type: got %q, want %q", got, tt.contentType)
			}
			if !strings.Contains(rec.Body.String(), tt.body) {
				t.Errorf("body %q lacks %q", rec.Body.String(), tt.body)
			}
			if got := rec.Header().Get("Retry-After"); got != tt.retryAfter {
				t.Errorf("Retry-After: got %q, want %q", got, tt.retryAfter)
			}
			wantStatus(t, send(), http.StatusOK) // once only
		})
	}
}

// TestInjectHang: a hung call answers nothing until its client gives up, and counts as canceled.
func TestInjectHang(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s := New(Options{})
		s.InjectFault(EndpointToken, Fault{Hang: true}, 1)
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/"+DemoTenantID+"/oauth2/v2.0/token", strings.NewReader(tokenForm().Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		start := time.Now()
		s.ServeHTTP(rec, req)
		if got := time.Since(start); got != 30*time.Second {
			t.Errorf("hung for %v, want until the client's 30s deadline", got)
		}
		if rec.Body.Len() != 0 || rec.Header().Get("Content-Type") != "" {
			t.Errorf("a hung call wrote %q", rec.Body.String())
		}
		if st := s.Stats()[EndpointToken]; st.Calls != 1 || st.Canceled != 1 {
			t.Errorf("stats: %+v, want 1 call, canceled", st)
		}
		wantStatus(t, postToken(t, s, DemoTenantID, tokenForm()), http.StatusOK)
	})
}
