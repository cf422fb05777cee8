package app_test

// Reproductions of what people running clients of this API reported, each against the whole
// service configured as for a real tenant (MDE_API_URL, MDE_TOKEN_URL) with an httptest fake of
// Entra ID and Defender.

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/mdegraph/mdegraph/internal/app"
	"github.com/mdegraph/mdegraph/internal/logtest"
)

const (
	fakeTenant = "contoso.onmicrosoft.com"
	fakeDevice = "1e5bc9d7e413ddd7902c2932e418702b84d0cc07"
)

// fakeUpstream is Entra ID's token endpoint and Defender's API on one httptest server. token
// answers the n-th token request; api answers every API call (nil: one logon user, whatever
// the token). It counts both.
type fakeUpstream struct {
	token func(w http.ResponseWriter, n int)
	api   func(w http.ResponseWriter, r *http.Request)

	mu       sync.Mutex
	tokens   int
	apiCalls int
	auths    []string
}

func (f *fakeUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/"+fakeTenant+"/oauth2/v2.0/token" {
		f.mu.Lock()
		f.tokens++
		n := f.tokens
		f.mu.Unlock()
		f.token(w, n)
		return
	}
	f.mu.Lock()
	f.apiCalls++
	f.auths = append(f.auths, r.Header.Get("Authorization"))
	f.mu.Unlock()
	if f.api != nil {
		f.api(w, r)
		return
	}
	logonUsers(w)
}

func (f *fakeUpstream) counts() (tokens, apiCalls int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tokens, f.apiCalls
}

func logonUsers(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal")
	io.WriteString(w, `{"value":[{"id":"contoso\\jdoe","accountName":"jdoe","accountDomain":"contoso","logonTypes":"Interactive","isDomainAdmin":false}]}`)
}

// issue answers tok-n, living expiresIn seconds.
func issue(expiresIn int) func(http.ResponseWriter, int) {
	return func(w http.ResponseWriter, n int) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"token_type":"Bearer","expires_in":%d,"access_token":"tok-%d"}`, expiresIn, n)
	}
}

// invalidToken is Defender's 401 for a token it does not accept.
func invalidToken(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="The access token is invalid"`)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnauthorized)
	io.WriteString(w, `{"error":{"code":"Unauthorized","message":"Authorization token has expired or is invalid","target":"corr-401"}}`)
}

// startFake serves f and the service in front of it, with env on top of the real-tenant
// settings; the service's log goes to the returned buffer.
func startFake(t *testing.T, f *fakeUpstream, env map[string]string) (*service, *logtest.Buffer) {
	t.Helper()
	upstream := httptest.NewServer(f)
	t.Cleanup(upstream.Close)
	all := map[string]string{
		"MDE_TENANT_ID": fakeTenant, "MDE_CLIENT_ID": "app-1", "MDE_CLIENT_SECRET": "s3cr3t-value",
		"MDE_API_URL": upstream.URL, "MDE_TOKEN_URL": upstream.URL + "/" + fakeTenant + "/oauth2/v2.0/token",
	}
	for k, v := range env {
		all[k] = v
	}
	logs := &logtest.Buffer{}
	s := newLoggingService(t, all, app.Options{}, slog.New(slog.NewTextHandler(logs, nil)))
	<-s.app.CredentialsChecked()
	return s, logs
}

func (s *service) quotaUsed() int {
	n := 0
	for _, f := range s.app.Quota.Status() {
		for _, w := range f.Windows {
			if w.Per < 2*60e9 { // the minute window only
				n += w.Used
			}
		}
	}
	return n
}

func (s *service) metrics(t *testing.T) string {
	t.Helper()
	rec := httptest.NewRecorder()
	s.app.Metrics.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	return rec.Body.String()
}

const fakeDeviceLogonUsersQuery = `{ machine(id: "` + fakeDevice + `") { logonUsers { id } } }`

// TestRevokedTokenIsReplaced: Defender refuses the token (401, WWW-Authenticate: Bearer
// error="invalid_token") long before its stated expiry. It used to stay in use: every query
// answered UPSTREAM_UNAUTHORIZED and spent quota, and Entra ID was asked once. Now the first
// query drops it, gets a new one and is retried once; the next ones use the new token.
func TestRevokedTokenIsReplaced(t *testing.T) {
	t.Parallel()
	f := &fakeUpstream{token: issue(3599), api: func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "Bearer tok-1" {
			invalidToken(w)
			return
		}
		logonUsers(w)
	}}
	s, _ := startFake(t, f, map[string]string{"CACHE_TTL": "0"})
	for i := range 3 {
		r := s.query(t, fakeDeviceLogonUsersQuery, nil)
		if len(r.Errors) > 0 || !strings.Contains(string(r.Data["machine"]), `contoso\\jdoe`) {
			t.Fatalf("query %d: %+v %s", i+1, r.Errors, r.Data["machine"])
		}
	}
	tokens, calls := f.counts()
	if tokens != 2 || calls != 4 {
		t.Errorf("%d token requests and %d API calls, want 2 (startup, replacement) and 4 (the refused one, its retry, two more)", tokens, calls)
	}
	if used := s.quotaUsed(); used != 4 {
		t.Errorf("quota used: %d, want 4 (Defender counted the 401 too)", used)
	}
	m := s.metrics(t)
	for _, want := range []string{
		`mdegraph_upstream_calls_total{endpoint="machines.logonusers",status="401"} 1`,
		`mdegraph_upstream_calls_total{endpoint="machines.logonusers",status="200"} 3`,
		`mdegraph_token_requests_total{outcome="issued"} 2`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestEveryTokenRefused: Defender refuses every token (one issued for another API, say). The
// first query is retried once with a new token, then answers UPSTREAM_UNAUTHORIZED naming the
// setting to check; queries right after it answer the same without calling Defender.
func TestEveryTokenRefused(t *testing.T) {
	t.Parallel()
	f := &fakeUpstream{token: issue(3599), api: func(w http.ResponseWriter, _ *http.Request) { invalidToken(w) }}
	s, _ := startFake(t, f, map[string]string{"CACHE_TTL": "0"})
	for i := range 4 {
		r := s.query(t, fakeDeviceLogonUsersQuery, nil)
		if got := codes(r); len(got) != 1 || got[0] != "UPSTREAM_UNAUTHORIZED" {
			t.Fatalf("query %d: codes %v, want UPSTREAM_UNAUTHORIZED", i+1, got)
		}
		if !strings.Contains(r.Errors[0].Message, "MDE_SCOPE") {
			t.Errorf("query %d: message %q does not say what to check", i+1, r.Errors[0].Message)
		}
	}
	if tokens, calls := f.counts(); tokens != 2 || calls != 2 {
		t.Errorf("%d token requests and %d API calls, want 2 and 2 (one query and its one retry)", tokens, calls)
	}
	if used := s.quotaUsed(); used != 2 {
		t.Errorf("quota used: %d, want 2", used)
	}
}

// TestTokenEndpointFailures: the token endpoint's own trouble used to be reported as bad
// credentials ("an administrator must check MDE_..."), a 429 without retryAfter. Each answer
// now gets its own code, the startup log says which it was, and no quota is spent.
func TestTokenEndpointFailures(t *testing.T) {
	t.Parallel()
	answer := func(status int, contentType, body string, kv ...string) func(http.ResponseWriter, int) {
		return func(w http.ResponseWriter, _ int) {
			w.Header().Set("Content-Type", contentType)
			for i := 0; i+1 < len(kv); i += 2 {
				w.Header().Set(kv[i], kv[i+1])
			}
			w.WriteHeader(status)
			io.WriteString(w, body)
		}
	}
	tests := []struct {
		name       string
		token      func(http.ResponseWriter, int) // nil: the endpoint never answers
		env        map[string]string
		wantCode   string
		wantMsg    string
		wantRetry  [2]float64 // retryAfter within, for RATE_LIMITED
		wantLog    []string   // in the startup credentials line
		notInLog   string
		wantTokens int
	}{
		{name: "503 HTML", token: answer(503, "text/html", "<html><body>Service Unavailable</body></html>"),
			wantCode: "UPSTREAM_UNAVAILABLE", wantMsg: "Entra ID", wantLog: []string{"outcome=unavailable", "status=503"}, notInLog: "credentials refused", wantTokens: 1},
		{name: "503 temporarily_unavailable", token: answer(503, "application/json", `{"error":"temporarily_unavailable","error_description":"AADSTS90036"}`),
			wantCode: "UPSTREAM_UNAVAILABLE", wantMsg: "Entra ID", wantLog: []string{"outcome=unavailable", "error=temporarily_unavailable"}, notInLog: "credentials refused", wantTokens: 1},
		{name: "429 with Retry-After", token: answer(429, "application/json", `{"error":"temporarily_unavailable"}`, "Retry-After", "30"),
			wantCode: "RATE_LIMITED", wantMsg: "throttling", wantRetry: [2]float64{20, 30}, wantLog: []string{"outcome=throttled", "status=429", "retry_after=30s"}, notInLog: "credentials refused", wantTokens: 1},
		{name: "wrong secret", token: answer(401, "application/json", `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}`),
			wantCode: "UPSTREAM_UNAUTHORIZED", wantMsg: "MDE_CLIENT_SECRET", wantLog: []string{"outcome=refused", "credentials refused", "MDE_CLIENT_SECRET"}, wantTokens: 1},
		{name: "invalid scope", token: answer(400, "application/json", `{"error":"invalid_scope","error_description":"AADSTS70011: The provided value for the input parameter 'scope' is not valid."}`),
			wantCode: "UPSTREAM_UNAUTHORIZED", wantMsg: "MDE_SCOPE", wantLog: []string{"outcome=refused", "MDE_SCOPE"}, wantTokens: 1},
		{name: "silent token endpoint", env: map[string]string{"REQUEST_TIMEOUT": "1s"},
			wantCode: "UPSTREAM_UNAVAILABLE", wantMsg: "in time", wantLog: nil, wantTokens: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeUpstream{token: tt.token}
			if tt.token == nil {
				hang := make(chan struct{})
				f.token = func(http.ResponseWriter, int) { <-hang }
				defer close(hang) // before the server's Close (a cleanup) waits for the handler
			}
			env := map[string]string{"CACHE_TTL": "0"}
			for k, v := range tt.env {
				env[k] = v
			}
			var s *service
			var logs *logtest.Buffer
			if tt.wantLog == nil { // the check waits 15 s for a silent endpoint: do not wait for it
				upstream := httptest.NewServer(f)
				t.Cleanup(upstream.Close)
				env["MDE_TENANT_ID"], env["MDE_CLIENT_ID"], env["MDE_CLIENT_SECRET"] = fakeTenant, "app-1", "s3cr3t-value"
				env["MDE_API_URL"], env["MDE_TOKEN_URL"] = upstream.URL, upstream.URL+"/"+fakeTenant+"/oauth2/v2.0/token"
				s = newService(t, env, app.Options{})
			} else {
				s, logs = startFake(t, f, env)
			}
			r := s.query(t, fakeDeviceLogonUsersQuery, nil)
			if got := codes(r); len(got) != 1 || got[0] != tt.wantCode {
				t.Fatalf("codes %v, want %s (%+v)", got, tt.wantCode, r.Errors)
			}
			e := r.Errors[0]
			if !strings.Contains(e.Message, tt.wantMsg) {
				t.Errorf("message %q, want it to contain %q", e.Message, tt.wantMsg)
			}
			if tt.wantCode != "UPSTREAM_UNAUTHORIZED" && strings.Contains(e.Message, "MDE_") {
				t.Errorf("message %q blames the configuration", e.Message)
			}
			retry, hasRetry := e.Extensions["retryAfter"].(float64)
			if want := tt.wantRetry != [2]float64{}; hasRetry != want || want && (retry < tt.wantRetry[0] || retry > tt.wantRetry[1]) {
				t.Errorf("retryAfter %v, want within %v", e.Extensions["retryAfter"], tt.wantRetry)
			}
			if tokens, calls := f.counts(); tokens != tt.wantTokens || calls != 0 {
				t.Errorf("%d token requests and %d API calls, want %d and 0", tokens, calls, tt.wantTokens)
			}
			if used := s.quotaUsed(); used != 0 {
				t.Errorf("quota used: %d, want 0", used)
			}
			if logs != nil {
				line := grep(logs.String(), `msg="credentials `)
				for _, w := range tt.wantLog {
					if !strings.Contains(line, w) {
						t.Errorf("credentials line %q: want %q in it", line, w)
					}
				}
				if tt.notInLog != "" && strings.Contains(line, tt.notInLog) {
					t.Errorf("credentials line %q: want no %q", line, tt.notInLog)
				}
				if strings.Contains(logs.String(), "s3cr3t-value") {
					t.Error("the log has the secret")
				}
			}
		})
	}
}

// TestSlowRefreshDoesNotBlock: a token living less than the 5-minute early-refresh margin (302
// s was inside it after 2 s, 240 s at once) was stale on arrival, so with a token endpoint that
// then hung, a query with REQUEST_TIMEOUT=5s failed without calling Defender, and each query
// otherwise fetched its own token. Now the token serves, and Defender is called.
func TestSlowRefreshDoesNotBlock(t *testing.T) {
	t.Parallel()
	for _, expiresIn := range []int{299, 240} {
		t.Run(fmt.Sprint(expiresIn), func(t *testing.T) {
			t.Parallel()
			hang := make(chan struct{})
			f := &fakeUpstream{token: func(w http.ResponseWriter, n int) {
				if n > 1 {
					<-hang
				}
				issue(expiresIn)(w, n)
			}}
			s, _ := startFake(t, f, map[string]string{"REQUEST_TIMEOUT": "5s", "CACHE_TTL": "0"})
			defer close(hang) // before the server's Close (a cleanup) waits for a hanging handler
			for i := range 3 {
				r := s.query(t, fakeDeviceLogonUsersQuery, nil)
				if len(r.Errors) > 0 {
					t.Fatalf("query %d: %+v", i+1, r.Errors)
				}
			}
			if tokens, calls := f.counts(); tokens != 1 || calls != 3 {
				t.Errorf("%d token requests and %d API calls, want 1 and 3", tokens, calls)
			}
		})
	}
}

// TestIdsAsPeopleTypeThem: surrounding white space and a fully qualified name's trailing dot
// were refused; a short host name answered NOT_FOUND without a hint; machine(id: 1000) with an
// integer literal called GET /api/machines/1000.
func TestIdsAsPeopleTypeThem(t *testing.T) {
	t.Parallel()
	s := newService(t, nil, app.Options{})
	name := s.sim.ExampleMachineName()
	short, _, _ := strings.Cut(name, ".")
	tests := []struct {
		name      string
		query     string
		wantCode  string
		wantMsg   string
		wantCalls int
	}{
		{"white space and a trailing dot", `{ machine(id: "  ` + strings.ToUpper(name) + `.\n") { computerDnsName } }`, "", "", 1},
		{"a device id with white space", `{ machine(id: " ` + s.sim.ExampleMachineID() + ` ") { id logonUsers { id } } }`, "", "", 1},
		{"an integer literal", `{ machine(id: 1000) { computerDnsName } }`, "BAD_USER_INPUT", "all digits", 0},
		{"a short host name", `{ machine(id: "` + short + `") { computerDnsName } }`, "NOT_FOUND",
			"Defender looks devices up by their full DNS name (e.g. " + short + ".contoso.local)", 1},
		{"a short host name, the 404 remembered", `{ machine(id: "` + short + `") { computerDnsName } }`, "NOT_FOUND",
			"Defender looks devices up by their full DNS name (e.g. " + short + ".contoso.local)", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := 0
			for _, c := range s.calls() {
				before += c
			}
			r := s.query(t, tt.query, nil)
			after := 0
			for _, c := range s.calls() {
				after += c
			}
			got := codes(r)
			switch {
			case tt.wantCode == "" && len(got) > 0:
				t.Fatalf("errors %+v", r.Errors)
			case tt.wantCode != "" && (len(got) != 1 || got[0] != tt.wantCode):
				t.Fatalf("codes %v, want %s", got, tt.wantCode)
			case tt.wantCode != "" && !strings.Contains(r.Errors[0].Message, tt.wantMsg):
				t.Errorf("message %q, want it to contain %q", r.Errors[0].Message, tt.wantMsg)
			case tt.wantCode == "" && tt.name == "white space and a trailing dot" && !strings.Contains(string(r.Data["machine"]), name):
				t.Errorf("machine %s, want %s", r.Data["machine"], name)
			}
			if after-before != tt.wantCalls {
				t.Errorf("%d upstream calls, want %d", after-before, tt.wantCalls)
			}
		})
	}
}

// TestQuotaSpentIsLogged: running out of quota logged nothing at the default level
// (RATE_LIMITED was debug only). Now one warning a minute per endpoint family says so, with
// the family and retryAfter; the repeats in between stay at debug.
func TestQuotaSpentIsLogged(t *testing.T) {
	t.Parallel()
	var logs logtest.Buffer
	s := newLoggingService(t, map[string]string{"MDE_LIMIT_PER_MINUTE": "1", "QUOTA_MAX_WAIT": "0", "CACHE_TTL": "0"}, app.Options{},
		slog.New(slog.NewTextHandler(&logs, nil))) // the default level, info
	limited := 0
	for i := range 4 {
		r := s.query(t, `{ machine(id: "`+s.sim.Machines()[i].ID+`") { logonUsers { id } } }`, nil)
		if got := codes(r); len(got) == 1 && got[0] == "RATE_LIMITED" {
			limited++
		}
	}
	if limited != 3 {
		t.Fatalf("%d queries answered RATE_LIMITED, want 3 (a limit of 1 a minute)", limited)
	}
	lines := grep(logs.String(), "quota spent")
	if n := strings.Count(lines, "\n"); n != 1 {
		t.Fatalf("%d quota-spent lines, want 1 for the minute:\n%s", n, logs.String())
	}
	for _, want := range []string{"level=WARN", "code=RATE_LIMITED", "endpoint=machines.logonusers", "retry_after_seconds="} {
		if !strings.Contains(lines, want) {
			t.Errorf("quota-spent line %q lacks %s", lines, want)
		}
	}
}
