package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mdegraph/mdegraph/internal/logtest"
	"github.com/mdegraph/mdegraph/internal/simulator"
)

// startService runs the whole service in demo mode on a free loopback port, as `go run .`
// would, and returns its base URL; it is stopped (gracefully) when the test ends.
func startService(t *testing.T, env map[string]string) (base string, logs *logtest.Buffer) {
	t.Helper()
	if env == nil {
		env = map[string]string{}
	}
	if env["ADDR"] == "" {
		env["ADDR"] = "127.0.0.1:0"
	}
	logs = &logtest.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, nil, func(k string) string { return env[k] }, logs, func(u string) { ready <- u })
	}()
	select {
	case base = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("the service did not start: %v\n%s", err, logs)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("the service did not start within 30 s\n%s", logs)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if !strings.Contains(logs.String(), "stopped") {
			t.Errorf("no shutdown log line:\n%s", logs)
		}
		if t.Failed() {
			t.Logf("service log:\n%s", logs)
		}
	})
	return base, logs
}

func fetch(t *testing.T, method, u, body string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(method, u, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestDemoModeEndToEnd(t *testing.T) {
	t.Parallel()
	base, logs := startService(t, nil)
	sim := simulator.New(simulator.Options{}) // the demo data set: same default seed
	id := sim.ExampleMachineID()
	users, _ := sim.LogonUsers(id)

	if !strings.Contains(logs.String(), "demo mode") || !strings.Contains(logs.String(), "GraphQL playground: "+base+"/") {
		t.Errorf("startup log should say demo mode and print the playground URL:\n%s", logs)
	}

	// The playground's prefilled query, with its prefilled variables, answers logon users.
	status, _, page := fetch(t, http.MethodGet, base+"/", "")
	if status != http.StatusOK || !strings.Contains(page, id) {
		t.Fatalf("GET /: status %d, the page should prefill device %s", status, id)
	}
	body, _ := json.Marshal(map[string]any{"query": exampleQueryFromPage(t, page), "variables": map[string]string{"id": id}})
	status, _, answer := fetch(t, http.MethodPost, base+"/query", string(body))
	if status != http.StatusOK || strings.Contains(answer, `"errors"`) {
		t.Fatalf("POST /query: status %d: %s", status, answer)
	}
	for _, u := range users {
		want, _ := json.Marshal(u.ID)
		if !strings.Contains(answer, string(want)) {
			t.Errorf("answer lacks logon user %s: %s", u.ID, answer)
		}
	}

	// The same question again is answered from the cache.
	if _, _, again := fetch(t, http.MethodPost, base+"/query", string(body)); again[:200] != answer[:200] {
		t.Errorf("second answer differs:\n%s\n%s", again, answer)
	}

	for _, tt := range []struct {
		path       string
		wantStatus int
		wantBody   string
	}{
		{"/healthz", 200, "ok"},
		{"/readyz", 200, "ready"},
		{"/example", 200, "users"},
		{"/metrics", 200, "mdegraph_upstream_calls_total"},
		{"/nope", 404, ""},
	} {
		status, _, got := fetch(t, http.MethodGet, base+tt.path, "")
		if status != tt.wantStatus || !strings.Contains(got, tt.wantBody) {
			t.Errorf("GET %s: status %d, want %d with %q", tt.path, status, tt.wantStatus, tt.wantBody)
		}
	}

	// Every metric the service promises is exported.
	_, _, metrics := fetch(t, http.MethodGet, base+"/metrics", "")
	for _, name := range []string{
		`mdegraph_upstream_calls_total{endpoint="machines.logonusers",status="200"} 1`,
		"mdegraph_upstream_call_duration_seconds",
		`mdegraph_upstream_calls_saved_total{endpoint="machines.logonusers",reason="cache"} 1`,
		"mdegraph_quota_wait_seconds",
		`mdegraph_quota_queue_length{endpoint="machines.logonusers"} 0`,
		`mdegraph_quota_remaining{endpoint="machines.logonusers",window="minute"} 99`,
		`mdegraph_graphql_operations_total{outcome="ok"}`,
		`mdegraph_token_requests_total{outcome="issued"} 1`,
	} {
		if !strings.Contains(metrics, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

// exampleQueryFromPage reads the prefilled query out of the playground's config block.
func exampleQueryFromPage(t *testing.T, page string) string {
	t.Helper()
	const marker = `id="mdegraph-config">`
	i := strings.Index(page, marker)
	if i < 0 {
		t.Fatal("the playground has no config block")
	}
	rest := page[i+len(marker):]
	var cfg struct{ Query string }
	if err := json.NewDecoder(strings.NewReader(rest)).Decode(&cfg); err != nil || cfg.Query == "" {
		t.Fatalf("config block: %v", err)
	}
	return cfg.Query
}

func TestStartupErrorsNameTheSetting(t *testing.T) {
	t.Parallel()
	tests := []struct {
		env  map[string]string
		want []string
	}{
		{map[string]string{"MDE_CLIENT_ID": "abc"}, []string{"MDE_TENANT_ID", "MDE_CLIENT_SECRET"}},
		{map[string]string{"MDE_TENANT_ID": "t", "MDE_CLIENT_ID": "c"}, []string{"MDE_CLIENT_SECRET"}},
		{map[string]string{"MDE_API_URL": "http://127.0.0.1:9"}, []string{"MDE_API_URL", "credentials"}},
		{map[string]string{"CACHE_TTL": "soon"}, []string{"CACHE_TTL"}},
		{map[string]string{"ADDR": "nonsense"}, []string{"ADDR"}},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		err := run(t.Context(), nil, func(k string) string { return tt.env[k] }, &out, func(string) { t.Error("started anyway") })
		if err == nil {
			t.Errorf("%v: started, want an error", tt.env)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q does not name %s", tt.env, err, w)
			}
		}
	}
}

// TestJSONLogIsAllJSON: with LOG_FORMAT=json every line the service writes is a JSON object,
// so that a log shipper can read it; the playground URL is in the "listening" line.
func TestJSONLogIsAllJSON(t *testing.T) {
	t.Parallel()
	base, logs := startService(t, map[string]string{"LOG_FORMAT": "json"})
	fetch(t, http.MethodGet, base+"/healthz", "")
	sawURL := false
	for line := range strings.Lines(logs.String()) {
		if strings.TrimSpace(line) == "" {
			t.Errorf("a blank line in the JSON log")
			continue
		}
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Errorf("not JSON: %q", line)
			continue
		}
		if entry["playground"] == base+"/" {
			sawURL = true
		}
	}
	if !sawURL {
		t.Errorf("no JSON line gives the playground URL %s/:\n%s", base, logs)
	}
}

// TestFatalErrorFormat: with LOG_FORMAT=json (the variable or the flag) the error that stops
// the service is one JSON line, even when it is the configuration that could not be read.
func TestFatalErrorFormat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantJSON bool
	}{
		{"text by default", nil, map[string]string{"CACHE_TTL": "soon"}, false},
		{"json from the environment", nil, map[string]string{"CACHE_TTL": "soon", "LOG_FORMAT": "json"}, true},
		{"json from the flag", []string{"-cache-ttl", "soon", "-log-format", "json"}, nil, true},
		{"json, with LOG_FORMAT itself among the errors", nil, map[string]string{"CACHE_TTL": "soon", "ADDR": "x", "LOG_FORMAT": "JSON"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			getenv := func(k string) string { return tt.env[k] }
			err := run(t.Context(), tt.args, getenv, io.Discard, func(string) { t.Error("started anyway") })
			if err == nil {
				t.Fatal("started, want a configuration error")
			}
			var out bytes.Buffer
			reportFatal(&out, tt.args, getenv, err)
			if n := strings.Count(out.String(), "\n"); n != 1 {
				t.Errorf("%d lines, want 1:\n%s", n, out.String())
			}
			var entry struct{ Level, Msg, Error string }
			isJSON := json.Unmarshal(out.Bytes(), &entry) == nil
			if isJSON != tt.wantJSON {
				t.Fatalf("JSON: %v, want %v:\n%s", isJSON, tt.wantJSON, out.String())
			}
			if isJSON && (entry.Level != "ERROR" || !strings.Contains(entry.Error, "CACHE_TTL")) {
				t.Errorf("entry %+v: want level ERROR and the error naming CACHE_TTL", entry)
			}
			if !isJSON && !strings.HasPrefix(out.String(), "mdegraph: CACHE_TTL") {
				t.Errorf("text %q: want mdegraph: and the error", out.String())
			}
		})
	}
}

// TestStartupLogShowsSettings: the startup log has every setting's effective value (not the
// secret) and a warning for a setting that was adjusted.
func TestStartupLogShowsSettings(t *testing.T) {
	t.Parallel()
	_, logs := startService(t, map[string]string{"CACHE_TTL": "20s", "NOT_FOUND_TTL": "30s", "DEMO_LATENCY": "5ms"})
	out := logs.String()
	for _, want := range []string{"config.cache_ttl=20s", "config.not_found_ttl=20s", "config.demo_latency=5ms", "config.request_timeout=30s",
		"config.quota_max_wait=10s", "config.log_format=text", "config.client_secret_set=false"} {
		if !strings.Contains(out, want) {
			t.Errorf("startup log lacks %s", want)
		}
	}
	if !strings.Contains(out, `level=WARN msg="NOT_FOUND_TTL 30s is above CACHE_TTL 20s`) {
		t.Errorf("no warning for NOT_FOUND_TTL above CACHE_TTL:\n%s", out)
	}
}

// TestMetricsAddr: with METRICS_ADDR the metrics are served there alone, without sign-in,
// and no longer on ADDR.
func TestMetricsAddr(t *testing.T) {
	t.Parallel()
	base, logs := startService(t, map[string]string{"METRICS_ADDR": "127.0.0.1:0"})
	metricsURL := loggedMetricsURL(logs)
	if !strings.HasPrefix(metricsURL, "http://127.0.0.1:") || strings.HasPrefix(metricsURL, base) {
		t.Fatalf("the listening line gives the metrics URL %q, want one on its own port", metricsURL)
	}
	if status, _, body := fetch(t, http.MethodGet, metricsURL, ""); status != http.StatusOK || !strings.Contains(body, "mdegraph_quota_remaining") {
		t.Errorf("GET %s: status %d", metricsURL, status)
	}
	if status, _, _ := fetch(t, http.MethodGet, base+"/metrics", ""); status != http.StatusNotFound {
		t.Errorf("GET /metrics on ADDR: status %d, want 404", status)
	}
	metricsBase := strings.TrimSuffix(metricsURL, "/metrics")
	if status, _, _ := fetch(t, http.MethodGet, metricsBase+"/query", ""); status != http.StatusNotFound {
		t.Errorf("GET /query on METRICS_ADDR: status %d, want 404", status)
	}
}

// loggedMetricsURL is the metrics URL the listening line gives (metrics=...), "" if none.
func loggedMetricsURL(logs *logtest.Buffer) string {
	_, after, _ := strings.Cut(logs.String(), "metrics=")
	u, _, _ := strings.Cut(after, " ")
	return u
}

// TestPprof: PPROF=true serves Go's profiles on METRICS_ADDR, never on ADDR; without it there
// are none anywhere.
func TestPprof(t *testing.T) {
	t.Parallel()
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprint("PPROF=", on), func(t *testing.T) {
			t.Parallel()
			base, logs := startService(t, map[string]string{"METRICS_ADDR": "127.0.0.1:0", "PPROF": fmt.Sprint(on)})
			metricsURL := loggedMetricsURL(logs)
			profiles := strings.TrimSuffix(metricsURL, "/metrics") + "/debug/pprof/"
			status, _, body := fetch(t, http.MethodGet, profiles, "")
			switch {
			case on && (status != http.StatusOK || !strings.Contains(body, "goroutine")):
				t.Errorf("GET %s: status %d, want 200 and the profiles' index", profiles, status)
			case !on && status != http.StatusNotFound:
				t.Errorf("GET %s without PPROF: status %d, want 404", profiles, status)
			}
			if on {
				if status, _, body := fetch(t, http.MethodGet, profiles+"heap?debug=1", ""); status != http.StatusOK || !strings.Contains(body, "heap profile") {
					t.Errorf("GET heap profile: status %d", status)
				}
				if !strings.Contains(logs.String(), "PPROF=true") {
					t.Errorf("no warning that the profiles are served:\n%s", logs)
				}
			}
			if status, _, _ := fetch(t, http.MethodGet, base+"/debug/pprof/", ""); status == http.StatusOK {
				t.Errorf("GET /debug/pprof/ on ADDR: status %d, want no profiles there", status)
			}
		})
	}
}

// TestAuthModeNoneBeyondLoopback: the service does not start on every interface without
// sign-in unless told to, and says so.
func TestAuthModeNoneBeyondLoopback(t *testing.T) {
	t.Parallel()
	err := run(t.Context(), nil, func(k string) string { return map[string]string{"ADDR": "0.0.0.0:0"}[k] }, io.Discard,
		func(string) { t.Error("started anyway") })
	if err == nil || !strings.Contains(err.Error(), "AUTH_MODE") {
		t.Errorf("ADDR=0.0.0.0:0 without AUTH_MODE: %v, want an error naming AUTH_MODE", err)
	}
}

// TestDemoPlaygroundSignIn: the playground of the demo signs a demo person in (?person=)
// without a browser: the page carries the person's token, and /query answers as the person.
func TestDemoPlaygroundSignIn(t *testing.T) {
	t.Parallel()
	base, _ := startService(t, nil)
	status, header, page := fetch(t, http.MethodGet, base+"/?person=grady", "")
	if status != http.StatusOK || header.Get("Cache-Control") != "no-store" {
		t.Fatalf("GET /?person=grady: status %d, Cache-Control %q", status, header.Get("Cache-Control"))
	}
	_, rest, _ := strings.Cut(page, `id="mdegraph-config">`)
	var cfg struct{ Query, Headers string }
	if err := json.NewDecoder(strings.NewReader(rest)).Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	var headers map[string]string
	if err := json.Unmarshal([]byte(cfg.Headers), &headers); err != nil {
		t.Fatalf("headers %q: %v", cfg.Headers, err)
	}
	sim := simulator.New(simulator.Options{})
	body, _ := json.Marshal(map[string]any{"query": cfg.Query, "variables": map[string]string{"id": sim.ExampleMachineID()}})
	req, _ := http.NewRequest(http.MethodPost, base+"/query", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", headers["Authorization"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(answer), `"code":"NOT_FOUND"`) {
		t.Errorf("grady asking about the demo device (device group 0): %s, want NOT_FOUND", answer)
	}
}
