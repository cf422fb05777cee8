package simulator

import (
	"net/http"
	"strings"
	"testing"
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
