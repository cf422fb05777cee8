package app_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mdegraph/mdegraph/internal/app"
	"github.com/mdegraph/mdegraph/internal/callerauth"
	"github.com/mdegraph/mdegraph/internal/simulator"
)

// End-to-end tests of who may ask (AUTH_MODE), the CSRF rules and as whom Defender is asked
// (UPSTREAM_IDENTITY), through the whole service: a refused request must spend no quota and
// reach no upstream endpoint.

// spent returns the API calls the simulator received and the quota slots the limiter granted.
func (s *service) spent() (calls, slots int) {
	for _, n := range s.calls() {
		calls += n
	}
	for _, f := range s.app.Quota.Status() {
		slots += f.Windows[0].Used
	}
	return calls, slots
}

// metric returns the /metrics exposition, read in-process.
func (s *service) metric(t *testing.T, header http.Header) (int, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	s.app.Metrics.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// issueQuery is the issue's: the logon users of one device, which costs one logonusers call.
func issueQuery(id string) string { return `{ machine(id:"` + id + `") { logonUsers { id } } }` }

// getQuery is GET /query?query=q with header.
func getQuery(t *testing.T, s *service, q string, header http.Header) answer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.url+"?"+url.Values{"query": {q}}.Encode(), nil)
	for k, v := range header {
		req.Header[k] = v
	}
	return do(t, req)
}

func bearer(token string) http.Header { return http.Header{"Authorization": {"Bearer " + token}} }

func signInAs(t *testing.T, s *service, person string) string {
	t.Helper()
	tok, err := s.sim.SignIn(person)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestForgedRequestsRefused: what a page on another site can make an analyst's browser send is
// refused before anything runs, the issue's exact curl first; what a frontend or a script
// sends on purpose passes.
func TestForgedRequestsRefused(t *testing.T) {
	t.Parallel()
	evil := http.Header{"Origin": {"https://evil.example"}}
	tests := []struct {
		name       string
		method     string
		header     http.Header
		body       string
		wantStatus int
		wantReason string // csrf reason; "" when the request passes
	}{
		// curl -H 'Origin: https://evil.example' -G --data-urlencode 'query={ machine(id:"<id>") { logonUsers { id } } }' http://127.0.0.1:8080/query
		{"the issue's curl", http.MethodGet, evil, "", http.StatusForbidden, "cross_origin"},
		{"an <img> on another site", http.MethodGet, http.Header{"Sec-Fetch-Site": {"cross-site"}, "Sec-Fetch-Mode": {"no-cors"}}, "", http.StatusForbidden, "cross_origin"},
		{"a plain GET", http.MethodGet, nil, "", http.StatusForbidden, "simple_request"},
		{"a form POST", http.MethodPost, http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, "query=x", http.StatusForbidden, "simple_request"},
		{"a text/plain POST of JSON", http.MethodPost, http.Header{"Content-Type": {"text/plain"}}, `{"query":"$Q"}`, http.StatusForbidden, "simple_request"},
		{"a JSON POST from another site's page", http.MethodPost, http.Header{"Content-Type": {"application/json"}, "Origin": {"https://evil.example"}, "Sec-Fetch-Site": {"cross-site"}},
			`{"query":"$Q"}`, http.StatusForbidden, "cross_origin"},
		{"a GET with Apollo-Require-Preflight", http.MethodGet, http.Header{"Apollo-Require-Preflight": {"true"}}, "", http.StatusOK, ""},
		{"a GET with X-Requested-With", http.MethodGet, http.Header{"X-Requested-With": {"XMLHttpRequest"}}, "", http.StatusOK, ""},
		{"a GET from the service's own page", http.MethodGet, http.Header{"Sec-Fetch-Site": {"same-origin"}}, "", http.StatusOK, ""},
		{"a JSON POST", http.MethodPost, http.Header{"Content-Type": {"application/json"}}, `{"query":"$Q"}`, http.StatusOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newService(t, nil, app.Options{})
			q := issueQuery(s.sim.ExampleMachineID())
			target := s.url
			if tt.method == http.MethodGet {
				target += "?" + url.Values{"query": {q}}.Encode()
			}
			quoted, _ := json.Marshal(q)
			req, _ := http.NewRequest(tt.method, target, strings.NewReader(strings.ReplaceAll(tt.body, `"$Q"`, string(quoted))))
			for k, v := range tt.header {
				req.Header[k] = v
			}
			a := do(t, req)
			calls, slots := s.spent()
			if tt.wantReason == "" {
				if a.status != tt.wantStatus || len(a.Errors) > 0 || calls != 1 {
					t.Fatalf("status %d, errors %v, %d upstream calls; want %d, none, 1", a.status, a.Errors, calls, tt.wantStatus)
				}
				return
			}
			if a.status != tt.wantStatus || len(a.Errors) != 1 || a.Errors[0].Extensions["code"] != "CSRF_REFUSED" || a.Errors[0].Extensions["reason"] != tt.wantReason {
				t.Fatalf("status %d, errors %+v; want %d CSRF_REFUSED (%s)", a.status, a.Errors, tt.wantStatus, tt.wantReason)
			}
			if calls != 0 || slots != 0 || s.sim.Stats()[simulator.EndpointToken].Calls != 0 {
				t.Errorf("a refused request made %d upstream calls, took %d quota slots, asked for %d tokens; want none",
					calls, slots, s.sim.Stats()[simulator.EndpointToken].Calls)
			}
			if _, m := s.metric(t, nil); !strings.Contains(m, `mdegraph_requests_refused_total{check="csrf",reason="`+tt.wantReason+`"} 1`) {
				t.Errorf("the refusal is not counted:\n%s", grep(m, "refused"))
			}
		})
	}
}

// TestOtherMethodsAnswered405: a method that runs no operation is not judged by the CSRF
// rules, whatever its Origin: HEAD (curl -I) and the rest get the endpoint's 405
// METHOD_NOT_ALLOWED with Allow, and nothing is called.
func TestOtherMethodsAnswered405(t *testing.T) {
	t.Parallel()
	s := newService(t, nil, app.Options{})
	target := s.url + "?" + url.Values{"query": {issueQuery(s.sim.ExampleMachineID())}}.Encode()
	for _, method := range []string{http.MethodHead, http.MethodPut, http.MethodDelete} {
		for _, origin := range []string{"", "https://evil.example"} {
			req, _ := http.NewRequest(method, target, nil)
			if origin != "" {
				req.Header.Set("Origin", origin)
				req.Header.Set("Sec-Fetch-Site", "cross-site")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var body struct{ Errors []gqlError }
			decodeErr := json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "OPTIONS, GET, POST" {
				t.Errorf("%s (Origin %q): status %d, Allow %q; want 405, OPTIONS, GET, POST", method, origin, resp.StatusCode, resp.Header.Get("Allow"))
			}
			if method != http.MethodHead && (decodeErr != nil || len(body.Errors) != 1 || body.Errors[0].Extensions["code"] != "METHOD_NOT_ALLOWED") {
				t.Errorf("%s (Origin %q): errors %+v (%v), want one METHOD_NOT_ALLOWED", method, origin, body.Errors, decodeErr)
			}
		}
	}
	if calls, slots := s.spent(); calls != 0 || slots != 0 {
		t.Errorf("%d upstream calls, %d quota slots; want none", calls, slots)
	}
}

// TestAPIKeys: AUTH_MODE=apikey through the whole service.
func TestAPIKeys(t *testing.T) {
	t.Parallel()
	key, entry, err := callerauth.NewAPIKey("frontend")
	if err != nil {
		t.Fatal(err)
	}
	s := newService(t, map[string]string{"AUTH_MODE": "apikey", "API_KEYS": entry, "CALLER_LIMIT_PER_MINUTE": "100"}, app.Options{})
	q := issueQuery(s.sim.ExampleMachineID())
	for _, tt := range []struct {
		name       string
		header     http.Header
		wantStatus int
		wantReason string
	}{
		{"no key", nil, http.StatusUnauthorized, "missing"},
		{"another key", http.Header{"X-Api-Key": {"mdg_not-a-key"}}, http.StatusUnauthorized, "unknown_api_key"},
		{"a key with a scheme of its own", http.Header{"Authorization": {"ApiKey " + key}}, http.StatusUnauthorized, "malformed"},
	} {
		a := ask(t, s, q, tt.header)
		if a.status != tt.wantStatus || len(a.Errors) != 1 || a.Errors[0].Extensions["code"] != "UNAUTHENTICATED" || a.Errors[0].Extensions["reason"] != tt.wantReason {
			t.Errorf("%s: status %d, errors %+v; want %d UNAUTHENTICATED (%s)", tt.name, a.status, a.Errors, tt.wantStatus, tt.wantReason)
		}
		if !strings.HasPrefix(a.header.Get("WWW-Authenticate"), `Bearer realm="mdegraph"`) {
			t.Errorf("%s: WWW-Authenticate %q", tt.name, a.header.Get("WWW-Authenticate"))
		}
		if strings.Contains(a.Errors[0].Message, key) {
			t.Errorf("%s: the refusal repeats the key", tt.name)
		}
	}
	if calls, slots := s.spent(); calls != 0 || slots != 0 {
		t.Fatalf("refused requests made %d upstream calls and took %d quota slots", calls, slots)
	}
	for _, h := range []http.Header{{"X-Api-Key": {key}}, bearer(key)} {
		if a := ask(t, s, q, h); a.status != http.StatusOK || len(a.Errors) > 0 {
			t.Errorf("the right key as %v: status %d, errors %+v", h, a.status, a.Errors)
		}
	}
	// /metrics on ADDR follows AUTH_MODE; the key's name is the caller, never the key.
	if status, _ := s.metric(t, nil); status != http.StatusUnauthorized {
		t.Errorf("/metrics without a key: status %d, want 401", status)
	}
	status, m := s.metric(t, http.Header{"X-Api-Key": {key}})
	if status != http.StatusOK || !strings.Contains(m, `caller="apikey:frontend"`) || strings.Contains(m, key) {
		t.Errorf("/metrics with the key: status %d; want 200, the caller by the key's name and never the key:\n%s", status, grep(m, "caller="))
	}
	for reason, n := range map[string]string{"missing": "2", "unknown_api_key": "1", "malformed": "1"} { // missing: /metrics's too
		if !strings.Contains(m, `mdegraph_requests_refused_total{check="signin",reason="`+reason+`"} `+n) {
			t.Errorf("refusal %s not counted:\n%s", reason, grep(m, "refused"))
		}
	}
}

// TestEntraSignIn: AUTH_MODE=entra in demo mode (the simulator is the Entra ID): sign-in is
// required, the role is checked, and each person is served on-behalf-of them.
func TestEntraSignIn(t *testing.T) {
	t.Parallel()
	s := newService(t, map[string]string{"AUTH_MODE": "entra", "CORS_ORIGINS": "https://soc.example.com"}, app.Options{})
	id := s.sim.ExampleMachineID() // device group 0: only the app and adele see it
	expired, err := s.sim.MintAccessToken(simulator.TokenClaims{Person: "megan", IssuedAt: time.Now().Add(-3 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name       string
		header     http.Header
		wantStatus int
		wantCode   string
		wantReason string
	}{
		{"anonymous", nil, http.StatusUnauthorized, "UNAUTHENTICATED", "missing"},
		{"an expired token", bearer(expired), http.StatusUnauthorized, "UNAUTHENTICATED", "expired"},
		{"lee lacks the app role", bearer(signInAs(t, s, "lee")), http.StatusForbidden, "FORBIDDEN", "role"},
		{"an API key", http.Header{"X-Api-Key": {"mdg_x"}}, http.StatusUnauthorized, "UNAUTHENTICATED", "wrong_kind"},
	} {
		a := ask(t, s, issueQuery(id), tt.header)
		if a.status != tt.wantStatus || len(a.Errors) != 1 || a.Errors[0].Extensions["code"] != tt.wantCode || a.Errors[0].Extensions["reason"] != tt.wantReason {
			t.Errorf("%s: status %d, errors %+v; want %d %s (%s)", tt.name, a.status, a.Errors, tt.wantStatus, tt.wantCode, tt.wantReason)
		}
	}
	if calls, slots := s.spent(); calls != 0 || slots != 0 || s.sim.Stats()[simulator.EndpointToken].Calls != 0 {
		t.Fatalf("refused requests made %d upstream calls, took %d quota slots, asked for %d tokens", calls, slots, s.sim.Stats()[simulator.EndpointToken].Calls)
	}

	// A frontend on an allowed origin reads its 401 and the challenge.
	req, _ := http.NewRequest(http.MethodPost, s.url, strings.NewReader(`{"query":"{ __typename }"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", "https://soc.example.com")
	a := do(t, req)
	if a.status != http.StatusUnauthorized || a.header.Get("Access-Control-Allow-Origin") != "https://soc.example.com" ||
		!strings.Contains(a.header.Get("Access-Control-Expose-Headers"), "Www-Authenticate") {
		t.Errorf("cross-origin 401: status %d, headers %v", a.status, a.header)
	}
	// Its preflight needs no credential.
	req, _ = http.NewRequest(http.MethodOptions, s.url, nil)
	req.Header.Set("Origin", "https://soc.example.com")
	req.Header.Set("Access-Control-Request-Method", http.MethodPost)
	req.Header.Set("Access-Control-Request-Headers", "authorization,content-type")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "https://soc.example.com" {
		t.Errorf("preflight: status %d, headers %v", resp.StatusCode, resp.Header)
	}

	// Adele sees the device; megan does not (Defender answers 404 on her token).
	if a := ask(t, s, issueQuery(id), bearer(signInAs(t, s, "adele"))); a.status != http.StatusOK || len(a.Errors) > 0 {
		t.Errorf("adele: status %d, errors %+v", a.status, a.Errors)
	}
	if a := ask(t, s, issueQuery(id), bearer(signInAs(t, s, "megan"))); len(a.Errors) != 1 || a.Errors[0].Extensions["code"] != "NOT_FOUND" {
		t.Errorf("megan: errors %+v, want NOT_FOUND", a.Errors)
	}
	if n := s.sim.Stats()[simulator.EndpointToken].ByIdentity[simulator.IdentityApp]; n != 0 {
		t.Errorf("%d application tokens issued while every caller signs in and is asked as themselves", n)
	}
}

// TestDemoSignIn: the demo (AUTH_MODE=none, loopback): anyone may ask, and is served as the
// application; a demo person who sends a token is served on-behalf-of them; pradeep, whom
// nobody consented for, is told so.
func TestDemoSignIn(t *testing.T) {
	t.Parallel()
	s := newService(t, nil, app.Options{})
	var megansDevice, gradysDevice string
	megan, _ := s.sim.Person("megan")
	grady, _ := s.sim.Person("grady")
	for _, m := range s.sim.Machines() {
		switch {
		case megansDevice == "" && megan.CanSee(m):
			megansDevice = m.ID
		case gradysDevice == "" && grady.CanSee(m):
			gradysDevice = m.ID
		}
	}
	for _, tt := range []struct {
		name     string
		header   http.Header
		id       string
		wantCode string
	}{
		{"anonymous: the application sees every device", nil, gradysDevice, ""},
		{"megan, her device", bearer(signInAs(t, s, "megan")), megansDevice, ""},
		{"megan, grady's device", bearer(signInAs(t, s, "megan")), gradysDevice, "NOT_FOUND"},
		{"grady, his device", bearer(signInAs(t, s, "grady")), gradysDevice, ""},
		{"nestor sees nothing", bearer(signInAs(t, s, "nestor")), megansDevice, "NOT_FOUND"},
		{"pradeep: consent missing", bearer(signInAs(t, s, "pradeep")), megansDevice, "FORBIDDEN"},
		{"lee lacks the app role", bearer(signInAs(t, s, "lee")), megansDevice, "FORBIDDEN"},
		{"a bad token is refused, not served anonymously", bearer("eyJ.not.valid"), megansDevice, "UNAUTHENTICATED"},
	} {
		a := ask(t, s, issueQuery(tt.id), tt.header)
		got := codes(response{Errors: a.Errors})
		switch {
		case tt.wantCode == "" && len(got) > 0:
			t.Errorf("%s: errors %+v", tt.name, a.Errors)
		case tt.wantCode != "" && (len(got) != 1 || got[0] != tt.wantCode):
			t.Errorf("%s: codes %v, want %s (%+v)", tt.name, got, tt.wantCode, a.Errors)
		}
		if tt.name == "pradeep: consent missing" && (len(a.Errors) == 0 || !strings.Contains(a.Errors[0].Message, "consent is missing") ||
			a.Errors[0].Extensions["reason"] != "consent_required") {
			t.Errorf("pradeep: %+v, want a message saying consent is missing", a.Errors)
		}
	}
	logon := s.sim.Stats()[simulator.EndpointLogonUsers].ByIdentity
	if logon[megan.OID] != 2 || logon[grady.OID] != 1 || logon[simulator.IdentityApp] != 1 {
		t.Errorf("logonusers calls by identity %v: want megan's two and grady's one with their own tokens, the anonymous one with the app's", logon)
	}
}

// TestDemoSignInAsTheApp: with UPSTREAM_IDENTITY=app a signed-in person is asked as the
// application: the difference the demo shows.
func TestDemoSignInAsTheApp(t *testing.T) {
	t.Parallel()
	s := newService(t, map[string]string{"UPSTREAM_IDENTITY": "app"}, app.Options{})
	if a := ask(t, s, issueQuery(s.sim.ExampleMachineID()), bearer(signInAs(t, s, "megan"))); len(a.Errors) > 0 {
		t.Errorf("megan, asked as the application: errors %+v", a.Errors)
	}
	if n := s.sim.Stats()[simulator.EndpointToken].Calls; n != 1 {
		t.Errorf("%d token requests, want the application's one", n)
	}
}

// TestMetricsOnTheirOwnAddress: with METRICS_ADDR the main handler set has no sign-in in front
// of the metrics (server.go serves them on that address alone).
func TestMetricsOnTheirOwnAddress(t *testing.T) {
	t.Parallel()
	_, entry, err := callerauth.NewAPIKey("frontend")
	if err != nil {
		t.Fatal(err)
	}
	s := newService(t, map[string]string{"AUTH_MODE": "apikey", "API_KEYS": entry, "METRICS_ADDR": "127.0.0.1:0"}, app.Options{})
	if status, m := s.metric(t, nil); status != http.StatusOK || !strings.Contains(m, "mdegraph_quota_remaining") {
		t.Errorf("/metrics for METRICS_ADDR: status %d", status)
	}
}
