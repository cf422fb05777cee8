package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdegraph/mdegraph/internal/app"
	"github.com/mdegraph/mdegraph/internal/config"
	"github.com/mdegraph/mdegraph/internal/defender"
	"github.com/mdegraph/mdegraph/internal/logtest"
	"github.com/mdegraph/mdegraph/internal/simulator"
)

// service is the whole service in demo mode, its GraphQL endpoint served by httptest.
type service struct {
	app *app.App
	sim *simulator.Simulator
	url string
}

func newService(t *testing.T, env map[string]string, opts app.Options) *service {
	t.Helper()
	return newLoggingService(t, env, opts, slog.New(slog.DiscardHandler))
}

// newLoggingService is newService logging to logger.
func newLoggingService(t *testing.T, env map[string]string, opts app.Options, logger *slog.Logger) *service {
	t.Helper()
	cfg, err := config.Load(nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	if opts.Client == nil {
		opts.Client = func(o *defender.Options) { o.RetryBaseDelay, o.RetryMaxDelay = time.Millisecond, 2*time.Millisecond }
	}
	a, err := app.New(t.Context(), cfg, logger, opts)
	if err != nil {
		t.Fatalf("app: %v", err)
	}
	t.Cleanup(a.Close)
	srv := httptest.NewServer(a.GraphQL)
	t.Cleanup(srv.Close)
	return &service{app: a, sim: a.Simulator, url: srv.URL}
}

type gqlError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

type response struct {
	Data   map[string]json.RawMessage `json:"data"`
	Errors []gqlError                 `json:"errors"`
}

func (s *service) query(t *testing.T, q string, vars map[string]any) response {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": q, "variables": vars})
	resp, err := http.Post(s.url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	var out response
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("decode (status %d): %v", resp.StatusCode, err)
	}
	return out
}

// calls returns the upstream calls per API endpoint since the last reset.
func (s *service) calls() map[simulator.Endpoint]int {
	out := map[simulator.Endpoint]int{}
	for e, st := range s.sim.Stats() {
		if e.IsAPI() {
			out[e] = st.Calls
		}
	}
	return out
}

func codes(r response) []string {
	var out []string
	for _, e := range r.Errors {
		c, _ := e.Extensions["code"].(string)
		out = append(out, c)
	}
	return out
}

func unknownID() string { return strings.Repeat("e", 40) }

func TestQuotaSpentOnlyOnWhatWasAsked(t *testing.T) {
	t.Parallel()
	s := newService(t, nil, app.Options{})
	id := s.sim.ExampleMachineID()
	name := s.sim.ExampleMachineName()
	other := s.sim.Machines()[3].ID
	tests := []struct {
		name      string
		query     string
		wantCalls map[simulator.Endpoint]int
	}{
		{"logonUsers only: one logonusers call", `{ machine(id: "` + id + `") { logonUsers { id } } }`,
			map[simulator.Endpoint]int{simulator.EndpointLogonUsers: 1}},
		{"id and __typename come free with logonUsers", `{ machine(id: "` + id + `") { id __typename logonUsers { id } } }`,
			map[simulator.Endpoint]int{simulator.EndpointLogonUsers: 1}},
		{"a detail field adds the machine call", `{ machine(id: "` + id + `") { computerDnsName logonUsers { id } } }`,
			map[simulator.Endpoint]int{simulator.EndpointLogonUsers: 1, simulator.EndpointGetMachine: 1}},
		{"details only", `{ machine(id: "` + id + `") { osPlatform healthStatus } }`,
			map[simulator.Endpoint]int{simulator.EndpointGetMachine: 1}},
		{"a computer name is resolved first", `{ machine(id: "` + name + `") { logonUsers { id } } }`,
			map[simulator.Endpoint]int{simulator.EndpointLogonUsers: 1, simulator.EndpointGetMachine: 1}},
		{"20 aliases of one device: one call per endpoint", aliases(id, 20, "computerDnsName logonUsers { id }"),
			map[simulator.Endpoint]int{simulator.EndpointLogonUsers: 1, simulator.EndpointGetMachine: 1}},
		{"two devices' details: one list call", `{ a: machine(id: "` + id + `") { osPlatform } b: machine(id: "` + other + `") { osPlatform } }`,
			map[simulator.Endpoint]int{simulator.EndpointListMachines: 1}},
		{"quota costs nothing", `{ quota { endpoint } }`, map[simulator.Endpoint]int{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Sequential: each case counts the simulator's calls from zero, with a fresh cache.
			// A long batch window, so that a busy machine (-race, parallel packages) cannot
			// delay one alias's resolver past it and split the list call.
			s := newService(t, map[string]string{"CACHE_TTL": "0"}, app.Options{BatchWait: 200 * time.Millisecond})
			r := s.query(t, tt.query, nil)
			if len(r.Errors) > 0 {
				t.Fatalf("errors: %+v", r.Errors)
			}
			got := s.calls()
			for _, e := range []simulator.Endpoint{simulator.EndpointLogonUsers, simulator.EndpointGetMachine, simulator.EndpointListMachines} {
				if got[e] != tt.wantCalls[e] {
					t.Errorf("%s calls = %d, want %d", e, got[e], tt.wantCalls[e])
				}
			}
		})
	}
}

func aliases(id string, n int, fields string) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		fmt.Fprintf(&b, " m%d: machine(id: %q) { %s }", i, id, fields)
	}
	b.WriteString(" }")
	return b.String()
}

func TestLogonUsersMatchTheUpstream(t *testing.T) {
	t.Parallel()
	s := newService(t, nil, app.Options{})
	id := s.sim.ExampleMachineID()
	r := s.query(t, `query($id: ID!) { machine(id: $id) { id computerDnsName logonUsers {
		id accountName accountDomain accountSid firstSeen lastSeen logonTypes isDomainAdmin
		isOnlyNetworkUser mostPrevalentMachineId leastPrevalentMachineId logOnMachinesCount } } }`,
		map[string]any{"id": strings.ToUpper(id)})
	if len(r.Errors) > 0 {
		t.Fatalf("errors: %+v", r.Errors)
	}
	var got struct {
		ID              string
		ComputerDNSName string `json:"computerDnsName"`
		LogonUsers      []struct {
			ID, AccountName, AccountDomain string
			AccountSid                     *string
			FirstSeen, LastSeen            string
			LogonTypes                     []string
			IsDomainAdmin                  bool
			IsOnlyNetworkUser              *bool
			MostPrevalentMachineID         *string `json:"mostPrevalentMachineId"`
			LeastPrevalentMachineID        *string `json:"leastPrevalentMachineId"`
			LogOnMachinesCount             *int
		}
	}
	if err := json.Unmarshal(r.Data["machine"], &got); err != nil {
		t.Fatal(err)
	}
	want, _ := s.sim.LogonUsers(id)
	m, _ := s.sim.Machine(id)
	if got.ID != id || got.ComputerDNSName != m.ComputerDNSName {
		t.Errorf("machine = %s %s, want %s %s", got.ID, got.ComputerDNSName, id, m.ComputerDNSName)
	}
	if len(got.LogonUsers) != len(want) || len(want) == 0 {
		t.Fatalf("got %d users, want %d (> 0)", len(got.LogonUsers), len(want))
	}
	for i, w := range want {
		g := got.LogonUsers[i]
		wantFirst, _ := defender.ParseTime(w.FirstSeen)
		gotFirst, _ := defender.ParseTime(g.FirstSeen)
		if g.ID != w.ID || g.AccountName != w.AccountName || g.AccountDomain != w.AccountDomain ||
			g.IsDomainAdmin != w.IsDomainAdmin || !gotFirst.Equal(wantFirst) ||
			strings.Join(g.LogonTypes, ", ") != w.LogonTypes ||
			fmt.Sprint(deref(g.AccountSid)) != fmt.Sprint(deref(w.AccountSID)) ||
			fmt.Sprint(deref(g.LogOnMachinesCount)) != fmt.Sprint(deref(w.LogOnMachinesCount)) {
			t.Errorf("user %d = %+v, want %+v", i, g, w)
		}
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		inject    func(*simulator.Simulator)
		env       map[string]string
		simOpts   *simulator.Options
		query     string
		wantCode  string
		wantExt   map[string]any
		wantCalls int // upstream API calls, -1 to skip the check
	}{
		{name: "unknown device, logonUsers only", query: `{ machine(id: "` + unknownID() + `") { logonUsers { id } } }`, wantCode: "NOT_FOUND", wantCalls: 1},
		{name: "unknown device, with details", query: `{ machine(id: "` + unknownID() + `") { computerDnsName logonUsers { id } } }`, wantCode: "NOT_FOUND", wantCalls: 1},
		{name: "unknown computer name", query: `{ machine(id: "nope.contoso.local") { logonUsers { id } } }`, wantCode: "NOT_FOUND", wantCalls: 1},
		{name: "bad id: no upstream call", query: `{ machine(id: "../../machines?$top=1") { logonUsers { id } } }`, wantCode: "BAD_USER_INPUT", wantCalls: 0},
		{name: "empty id", query: `{ machine(id: "") { logonUsers { id } } }`, wantCode: "BAD_USER_INPUT", wantCalls: 0},
		{name: "missing permission", simOpts: &simulator.Options{DeniedPermissions: []string{"User.Read.All"}},
			query: `{ machine(id: "$ID") { logonUsers { id } } }`, wantCode: "FORBIDDEN", wantExt: map[string]any{"permission": "User.Read.All"}, wantCalls: 1},
		{name: "upstream 500 after retries", inject: func(s *simulator.Simulator) { s.Inject(simulator.EndpointLogonUsers, 500, 10) },
			query: `{ machine(id: "$ID") { logonUsers { id } } }`, wantCode: "UPSTREAM_UNAVAILABLE", wantCalls: 3},
		{name: "one upstream 503 is retried away", inject: func(s *simulator.Simulator) { s.Inject(simulator.EndpointLogonUsers, 503, 1) },
			query: `{ machine(id: "$ID") { logonUsers { id } } }`, wantCode: "", wantCalls: 2},
		{name: "upstream 429 longer than we may wait", env: map[string]string{"QUOTA_MAX_WAIT": "1s"},
			inject: func(s *simulator.Simulator) { s.InjectRetryAfter(simulator.EndpointLogonUsers, 30*time.Second, 1) },
			query:  `{ machine(id: "$ID") { logonUsers { id } } }`, wantCode: "RATE_LIMITED", wantExt: map[string]any{"retryAfter": float64(30)}, wantCalls: 1},
		{name: "too expensive: no upstream call", env: map[string]string{"MAX_UPSTREAM_CALLS_PER_QUERY": "3"},
			query:    `{ a: machine(id: "$ID") { logonUsers { id } } b: machine(id: "` + unknownID() + `") { logonUsers { id } } c: machine(id: "x.contoso.local") { logonUsers { id } } }`,
			wantCode: "QUERY_TOO_EXPENSIVE", wantExt: map[string]any{"upstreamCalls": float64(4), "maxUpstreamCalls": float64(3)}, wantCalls: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newService(t, tt.env, app.Options{Simulator: tt.simOpts})
			if tt.inject != nil {
				tt.inject(s.sim)
			}
			r := s.query(t, strings.ReplaceAll(tt.query, "$ID", s.sim.ExampleMachineID()), nil)
			got := codes(r)
			if tt.wantCode == "" {
				if len(got) != 0 {
					t.Fatalf("errors %v, want none", r.Errors)
				}
			} else if len(got) != 1 || got[0] != tt.wantCode {
				t.Fatalf("error codes %v, want exactly one %s (%+v)", got, tt.wantCode, r.Errors)
			}
			if tt.wantCode != "" && tt.wantCode != "QUERY_TOO_EXPENSIVE" && string(r.Data["machine"]) != "null" {
				t.Errorf("machine = %s, want null", r.Data["machine"])
			}
			for k, v := range tt.wantExt {
				if r.Errors[0].Extensions[k] != v {
					t.Errorf("extensions[%s] = %v (%T), want %v", k, r.Errors[0].Extensions[k], r.Errors[0].Extensions[k], v)
				}
			}
			if tt.wantCalls >= 0 {
				n := 0
				for _, c := range s.calls() {
					n += c
				}
				if n != tt.wantCalls {
					t.Errorf("upstream calls = %d, want %d", n, tt.wantCalls)
				}
			}
			for _, e := range r.Errors {
				if strings.Contains(e.Message, "secret") || strings.Contains(e.Message, "rotated") || strings.Contains(e.Message, "Bearer") {
					t.Errorf("error message leaks a credential: %q", e.Message)
				}
			}
		})
	}
}

func TestGETQueries(t *testing.T) {
	t.Parallel()
	s := newService(t, nil, app.Options{})
	q := url.Values{"query": {`query($id: ID!) { machine(id: $id) { logonUsers { id } } }`}, "variables": {`{"id":"` + s.sim.ExampleMachineID() + `"}`}}
	req, _ := http.NewRequest(http.MethodGet, s.url+"?"+q.Encode(), nil)
	req.Header.Set("Apollo-Require-Preflight", "true") // what a browser cannot send cross-site unasked (CSRF)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r response
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || len(r.Errors) > 0 {
		t.Fatalf("GET: %v %+v", err, r.Errors)
	}
	if !strings.Contains(string(r.Data["machine"]), `"logonUsers":[{"id":`) {
		t.Errorf("GET answer %s has no logon users", r.Data["machine"])
	}
}

func TestConcurrentQueriesShareUpstreamCalls(t *testing.T) {
	t.Parallel()
	// Cache off: only in-flight sharing and batching can save calls. The simulator's latency
	// keeps each call in flight long enough for the others to join it.
	s := newService(t, map[string]string{"CACHE_TTL": "0"}, app.Options{Simulator: &simulator.Options{Latency: 200 * time.Millisecond}})
	ids := []string{}
	for _, m := range s.sim.Machines()[:5] {
		ids = append(ids, m.ID)
	}
	const clients = 50
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan string, clients)
	for i := range clients {
		wg.Go(func() {
			<-start
			r := s.query(t, `query($id: ID!) { machine(id: $id) { logonUsers { id } } }`, map[string]any{"id": ids[i%len(ids)]})
			if len(r.Errors) > 0 {
				errs <- fmt.Sprint(r.Errors)
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	for _, id := range ids {
		if n := s.sim.LogonUserCalls(id); n < 1 || n > 2 {
			// Usually 1; 2 only if a client arrives after the first call finished (200 ms later).
			t.Errorf("device %s: %d upstream calls for %d concurrent queries, want 1 (shared)", id, n, clients/len(ids))
		}
	}
	if total := s.calls()[simulator.EndpointLogonUsers]; total >= clients/2 {
		t.Errorf("%d logonusers calls for %d queries over %d devices: sharing does not work", total, clients, len(ids))
	}
}

func TestQuotaField(t *testing.T) {
	t.Parallel()
	s := newService(t, nil, app.Options{})
	s.query(t, `{ machine(id: "`+s.sim.ExampleMachineID()+`") { logonUsers { id } } }`, nil)
	r := s.query(t, `{ quota { endpoint call minute { limit used remaining seconds } hour { limit used remaining seconds } nextSlotAt pausedUntil queued } }`, nil)
	var got []struct {
		Endpoint, Call string
		Minute, Hour   struct{ Limit, Used, Remaining, Seconds int }
		NextSlotAt     time.Time
		PausedUntil    *time.Time
		Queued         int
	}
	if err := json.Unmarshal(r.Data["quota"], &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(defender.Endpoints) {
		t.Fatalf("got %d endpoint families, want %d: %+v", len(got), len(defender.Endpoints), got)
	}
	for _, q := range got {
		used := 0
		if q.Endpoint == string(defender.EndpointLogonUsers) {
			used = 1
		}
		if q.Minute.Limit != 100 || q.Hour.Limit != 1500 || q.Minute.Used != used || q.Minute.Remaining != 100-used ||
			q.Hour.Used != used || q.Minute.Seconds != 61 || q.Hour.Seconds != 3601 || q.PausedUntil != nil || q.Queued != 0 || q.Call == "" {
			t.Errorf("%s: %+v", q.Endpoint, q)
		}
	}
}

func TestRequestTimeout(t *testing.T) {
	t.Parallel()
	var logs logtest.Buffer
	s := newLoggingService(t, map[string]string{"REQUEST_TIMEOUT": "100ms"}, app.Options{Simulator: &simulator.Options{Latency: 10 * time.Second}},
		slog.New(slog.NewTextHandler(&logs, nil)))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	body := strings.NewReader(`{"query":"{ machine(id: \"` + s.sim.ExampleMachineID() + `\") { logonUsers { id } } }"}`)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.url, body)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("the request did not end by itself: %v", err)
	}
	defer resp.Body.Close()
	var r response
	json.NewDecoder(resp.Body).Decode(&r)
	if c := codes(r); len(c) != 1 || c[0] != "UPSTREAM_UNAVAILABLE" {
		t.Errorf("codes %v, want UPSTREAM_UNAVAILABLE", c)
	}
	// The log says which deadline passed, not only "context deadline exceeded".
	if !strings.Contains(logs.String(), "longer than REQUEST_TIMEOUT (100ms)") {
		t.Errorf("the log does not name REQUEST_TIMEOUT:\n%s", logs.String())
	}
}

// TestAnyDefenderLikeServer points the service, configured as for a real tenant, at a
// simulator on its own port: it must work the same, and refuse wrong credentials clearly.
func TestAnyDefenderLikeServer(t *testing.T) {
	t.Parallel()
	sim := simulator.New(simulator.Options{TenantID: "contoso.onmicrosoft.com", ClientID: "app-1", ClientSecret: "right-secret"})
	upstream := httptest.NewServer(sim)
	t.Cleanup(upstream.Close)
	for _, tt := range []struct {
		secret   string
		wantCode string
	}{
		{"right-secret", ""},
		{"wrong-secret", "UPSTREAM_UNAUTHORIZED"},
	} {
		t.Run(tt.secret, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{
				"MDE_TENANT_ID": "contoso.onmicrosoft.com", "MDE_CLIENT_ID": "app-1", "MDE_CLIENT_SECRET": tt.secret,
				"MDE_API_URL": upstream.URL, "MDE_TOKEN_URL": upstream.URL + "/contoso.onmicrosoft.com/oauth2/v2.0/token",
			}
			s := newService(t, env, app.Options{})
			if s.sim != nil {
				t.Fatal("credentials given, yet the service started its own simulator")
			}
			r := s.query(t, `{ machine(id: "`+sim.ExampleMachineID()+`") { computerDnsName logonUsers { id } } }`, nil)
			got := codes(r)
			if tt.wantCode == "" {
				if len(got) > 0 {
					t.Fatalf("errors: %+v", r.Errors)
				}
				want, _ := sim.LogonUsers(sim.ExampleMachineID())
				if n := strings.Count(string(r.Data["machine"]), `{"id":`); n != len(want) {
					t.Errorf("got %d users, want %d: %s", n, len(want), r.Data["machine"])
				}
				return
			}
			if len(got) != 1 || got[0] != tt.wantCode {
				t.Fatalf("codes %v, want %s", got, tt.wantCode)
			}
			if strings.Contains(r.Errors[0].Message, tt.secret) {
				t.Errorf("the error leaks the secret: %q", r.Errors[0].Message)
			}
		})
	}
}

// TestUpstream429PausesThenRetries: Defender answers 429 with Retry-After 1 s; the service
// pauses that endpoint family (no call goes out meanwhile) and retries within the caller's
// deadline, so the query succeeds with exactly one extra call.
func TestUpstream429PausesThenRetries(t *testing.T) {
	t.Parallel()
	s := newService(t, nil, app.Options{})
	s.sim.InjectRetryAfter(simulator.EndpointLogonUsers, time.Second, 1)
	r := s.query(t, `{ machine(id: "`+s.sim.ExampleMachineID()+`") { logonUsers { id } } }`, nil)
	if len(r.Errors) > 0 {
		t.Fatalf("errors: %+v", r.Errors)
	}
	st := s.sim.Stats()[simulator.EndpointLogonUsers]
	if st.Calls != 2 || st.TooManyRequests != 1 {
		t.Errorf("logonusers: %d calls, %d answered 429; want 2 and 1", st.Calls, st.TooManyRequests)
	}
}

// realModeEnv configures the service as for a real tenant, against the simulator served at
// upstreamURL (which accepts app-1 / right-secret in contoso.onmicrosoft.com).
func realModeEnv(upstreamURL, secret string) map[string]string {
	return map[string]string{
		"MDE_TENANT_ID": "contoso.onmicrosoft.com", "MDE_CLIENT_ID": "app-1", "MDE_CLIENT_SECRET": secret,
		"MDE_API_URL": upstreamURL, "MDE_TOKEN_URL": upstreamURL + "/contoso.onmicrosoft.com/oauth2/v2.0/token",
	}
}

func standaloneSimulator(t *testing.T) (*simulator.Simulator, string) {
	t.Helper()
	sim := simulator.New(simulator.Options{TenantID: "contoso.onmicrosoft.com", ClientID: "app-1", ClientSecret: "right-secret"})
	upstream := httptest.NewServer(sim)
	t.Cleanup(upstream.Close)
	return sim, upstream.URL
}

// TestStartupCredentialCheck: outside demo mode the service checks its credentials once at
// startup and says in one log line whether Entra ID accepts them; in demo mode it says nothing.
func TestStartupCredentialCheck(t *testing.T) {
	t.Parallel()
	_, upstreamURL := standaloneSimulator(t)
	tests := []struct {
		name   string
		env    map[string]string
		want   []string // in the credentials line; no such line when empty
		absent []string // anywhere in the log
	}{
		{name: "demo mode: no check", env: nil},
		{name: "right secret", env: realModeEnv(upstreamURL, "right-secret"),
			want: []string{"level=INFO", "credentials checked", "client_id=app-1"}, absent: []string{"right-secret"}},
		{name: "wrong secret", env: realModeEnv(upstreamURL, "wrong-secret"),
			want:   []string{"level=WARN", "credentials refused", "error=invalid_client", "AADSTS7000215", "MDE_CLIENT_SECRET"},
			absent: []string{"wrong-secret"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer
			var mu sync.Mutex
			logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
				mu.Lock()
				defer mu.Unlock()
				return logs.Write(p)
			}), nil))
			s := newLoggingService(t, tt.env, app.Options{}, logger)
			<-s.app.CredentialsChecked()
			mu.Lock()
			out := logs.String()
			mu.Unlock()
			var line string
			for l := range strings.Lines(out) {
				if strings.Contains(l, `msg="credentials `) {
					if line != "" {
						t.Errorf("a second credentials line: %s", l)
					}
					line = l
				}
			}
			if len(tt.want) == 0 && line != "" {
				t.Errorf("logged %q, want no credentials line", line)
			}
			for _, w := range tt.want {
				if !strings.Contains(line, w) {
					t.Errorf("credentials line %q: want %q in it\n(log:\n%s)", line, w, out)
				}
			}
			for _, a := range tt.absent {
				if strings.Contains(out, a) {
					t.Errorf("the log contains %q:\n%s", a, out)
				}
			}
		})
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestWrongSecretSpendsNoQuota is the new-user trial: the simulator on its own port, the
// service pointed at it with a wrong secret, many queries. Every query answers
// UPSTREAM_UNAUTHORIZED (never RATE_LIMITED), no quota slot is taken, no upstream call is
// counted, and the token endpoint is not asked once per query. (The exact number of token
// requests per failure window is pinned, with synctest, in packages auth and defender.)
func TestWrongSecretSpendsNoQuota(t *testing.T) {
	t.Parallel()
	const queries = 120 // more than the 100 calls a minute Defender allows
	sim, upstreamURL := standaloneSimulator(t)
	s := newService(t, realModeEnv(upstreamURL, "wrong-secret"), app.Options{})
	<-s.app.CredentialsChecked()

	var wg sync.WaitGroup
	codesSeen := make(chan string, queries)
	for range queries {
		wg.Go(func() {
			r := s.query(t, `{ machine(id: "`+sim.ExampleMachineID()+`") { logonUsers { id } } }`, nil)
			codesSeen <- strings.Join(codes(r), ",")
		})
	}
	wg.Wait()
	close(codesSeen)
	for c := range codesSeen {
		if c != "UPSTREAM_UNAUTHORIZED" {
			t.Errorf("codes %q, want UPSTREAM_UNAUTHORIZED", c)
		}
	}
	for _, f := range s.app.Quota.Status() {
		for _, w := range f.Windows {
			if w.Used != 0 {
				t.Errorf("%s: %d quota slots used per %v, want 0", f.Family, w.Used, w.Per)
			}
		}
	}
	stats := sim.Stats()
	for e, st := range stats {
		if e.IsAPI() && st.Calls != 0 {
			t.Errorf("%s: %d API calls, want 0", e, st.Calls)
		}
	}
	if n := stats[simulator.EndpointToken].Calls; n >= queries {
		t.Errorf("%d token requests for %d queries: every query asks Entra ID again", n, queries)
	}

	rec := httptest.NewRecorder()
	s.app.Metrics.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if strings.Contains(rec.Body.String(), "mdegraph_upstream_calls_total{") {
		t.Errorf("token failures counted as upstream calls:\n%s", grep(rec.Body.String(), "mdegraph_upstream_calls_total"))
	}
	rec = httptest.NewRecorder()
	s.app.Ready.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("/readyz: status %d, want 503", rec.Code)
	}
}

func grep(text, word string) string {
	var b strings.Builder
	for l := range strings.Lines(text) {
		if strings.Contains(l, word) {
			b.WriteString(l)
		}
	}
	return b.String()
}

// TestUnreachableUpstreamSpendsNoQuota: calls that could not even connect never reached
// Defender, so they give their quota slots back; after Defender comes back, the service is
// not rate limited by an outage. (A new user saw 100 refused connections, retries included,
// turn the outage into RATE_LIMITED for a minute.)
func TestUnreachableUpstreamSpendsNoQuota(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there: connection refused

	s := newService(t, map[string]string{"CACHE_TTL": "0", "MDE_LIMIT_PER_MINUTE": "5"}, app.Options{
		Client: func(o *defender.Options) {
			o.BaseURL = closed
			o.RetryBaseDelay, o.RetryMaxDelay = time.Nanosecond, time.Nanosecond
		},
	})
	// 10 queries of 3 attempts each: 30 connections refused, against 5 calls a minute.
	for i := range 10 {
		r := s.query(t, `{ machine(id: "`+s.sim.Machines()[i].ID+`") { logonUsers { id } } }`, nil)
		if got := strings.Join(codes(r), ","); got != "UPSTREAM_UNAVAILABLE" {
			t.Fatalf("query %d: codes %q, want UPSTREAM_UNAVAILABLE (not RATE_LIMITED: no call reached Defender)", i, got)
		}
	}
	for _, f := range s.app.Quota.Status() {
		for _, w := range f.Windows {
			if w.Used != 0 {
				t.Errorf("%s: %d quota slots used per %v, want 0", f.Family, w.Used, w.Per)
			}
		}
	}
}

// TestLimitsAboveDefenderWarn: limits Defender does not grant are allowed (a tenant may have
// been granted more), but the operator is told at start what they will earn.
func TestLimitsAboveDefenderWarn(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		env  map[string]string
		warn bool
	}{
		{map[string]string{}, false},
		{map[string]string{"MDE_LIMIT_PER_MINUTE": "50", "MDE_LIMIT_PER_HOUR": "1000"}, false},
		{map[string]string{"MDE_LIMIT_PER_MINUTE": "200"}, true},
		{map[string]string{"MDE_LIMIT_PER_HOUR": "1501"}, true},
	} {
		var logs logtest.Buffer
		newLoggingService(t, tt.env, app.Options{}, slog.New(slog.NewTextHandler(&logs, nil)))
		if got := strings.Contains(logs.String(), "above Defender's published"); got != tt.warn {
			t.Errorf("%v: warned %v, want %v:\n%s", tt.env, got, tt.warn, logs.String())
		}
	}
}
