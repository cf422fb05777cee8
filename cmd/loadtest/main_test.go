package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mdegraph/mdegraph/internal/app"
	"github.com/mdegraph/mdegraph/internal/config"
	"github.com/mdegraph/mdegraph/internal/redistest"
	"github.com/mdegraph/mdegraph/internal/simulator"
)

// noEnv keeps the developer's environment (credentials above all) out of the tests.
func noEnv(string) string { return "" }

// tiny is a run small enough for a unit test: one unknown id among five.
var tiny = []string{"-q", "50", "-c", "5", "-m", "5", "-unknown", "0.2", "-latency", "1ms", "-progress", "0"}

func TestRunInProcess(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), tiny, noEnv, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	// Cache on, and -q 50 over 5 ids: one logonusers call per id asked.
	wantInReport(t, stdout.String(), "verdict PASS", "5 ids (4 known, 1 unknown)", "wrong 0",
		"logonusers calls per distinct id 1.00", "429 answers 0")
}

// TestRunWarmupAndProfiles: -warmup asks each distinct query once before the measured run,
// whose answers then all come from the cache; the profiles asked for are written, and the
// report says what CPU the run took.
func TestRunWarmupAndProfiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	files := map[string]string{"-cpuprofile": "cpu.out", "-trace": "trace.out", "-mutexprofile": "mutex.out", "-blockprofile": "block.out", "-memprofile": "mem.out"}
	args := append([]string{"-warmup"}, tiny...)
	for flag, name := range files {
		args = append(args, flag, filepath.Join(dir, name))
	}
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), args, noEnv, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	// 5 ids, one unknown: the warm-up asks each id the plan asks, and the measured run calls
	// Defender no more.
	wantInReport(t, stdout.String(), "verdict PASS", "warm-up 5 distinct queries asked once before the run, not measured", "0 wrong",
		"cpu this process", "calls saved machines.logonusers/cache 50")
	for flag, name := range files {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v (want a profile written)", flag, err)
		}
	}
}

// TestRunGraphShape: each user's machines and the device's alerts, checked against the
// simulator's data, one call per distinct account name and device.
func TestRunGraphShape(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	args := append([]string{"-shape", "graph", "-details"}, tiny...)
	if err := run(t.Context(), args, noEnv, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	wantInReport(t, stdout.String(), "verdict PASS", "wrong 0", "shape graph (logon users, each user's machines, alerts)",
		"calls per distinct key")
	for _, e := range []string{"logonusers", "machine-alerts", "user-machines"} {
		found := false
		for line := range strings.Lines(stdout.String()) {
			if f := strings.Fields(line); len(f) > 0 && f[0] == e && strings.Contains(line, "distinct keys") {
				found = true
				if !strings.Contains(line, "1.00 per key, at most 1 for one") {
					t.Errorf("%s: %s; want one call per distinct key", e, strings.TrimSpace(line))
				}
			}
		}
		if !found {
			t.Errorf("no calls per distinct key for %s:\n%s", e, stdout.String())
		}
	}
}

// TestRunDetectsUpstream429s makes the service believe in a larger quota than the simulator
// grants: the upstream answers 429, and the run must fail for it.
func TestRunDetectsUpstream429s(t *testing.T) {
	t.Parallel()
	var stdout bytes.Buffer
	args := append([]string{"-sim-per-minute", "2"}, tiny...)
	err := run(t.Context(), args, noEnv, &stdout, io.Discard)
	var failed *failedError
	if !errors.As(err, &failed) || !strings.Contains(err.Error(), "429") {
		t.Fatalf("run = %v, want a failure naming the 429s\n%s", err, stdout.String())
	}
	wantInReport(t, stdout.String(), "verdict FAIL")
}

// TestRunAgainstURL targets a service started apart, as "go run ." would serve it.
func TestRunAgainstURL(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(nil, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(t.Context(), cfg, slog.New(slog.DiscardHandler), app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	mux := http.NewServeMux()
	mux.Handle("/query", a.GraphQL)
	mux.Handle("GET /metrics", a.Metrics)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	var stdout, stderr bytes.Buffer
	args := []string{"-url", srv.URL + "/query", "-q", "50", "-c", "5", "-m", "5", "-unknown", "0.2", "-progress", "0"}
	if err := run(t.Context(), args, noEnv, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	wantInReport(t, stdout.String(), "verdict PASS", "wrong 0", "429 answers 0", "logonusers calls per distinct id 1.00", "calls saved")
}

// wantInReport checks that the report says each of wants, comparing with runs of spaces as one.
func wantInReport(t *testing.T, report string, wants ...string) {
	t.Helper()
	flat := strings.Join(strings.Fields(report), " ")
	for _, want := range wants {
		if !strings.Contains(flat, want) {
			t.Errorf("the report does not say %q:\n%s", want, report)
		}
	}
}

func TestOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args    []string
		wantErr string
	}{
		{args: nil},
		{args: []string{"-url", "http://127.0.0.1:8080/query", "-sim-seed", "2", "-devices", "50"}},
		{args: []string{"-zipf", "1"}, wantErr: "-zipf"},
		{args: []string{"-unknown", "1.5"}, wantErr: "-unknown"},
		{args: []string{"-c", "0"}, wantErr: "-c"},
		{args: []string{"-env", "CACHE_TTLL=1s"}, wantErr: "not one of the service's settings"},
		{args: []string{"-env", "CACHE_TTL"}, wantErr: "KEY=VALUE"},
		{args: []string{"-url", "http://127.0.0.1:8080/query", "-cache-ttl", "0"}, wantErr: "-cache-ttl configures the in-process service"},
		{args: []string{"-url", "localhost:8080"}, wantErr: "-url"},
		{args: []string{"-metrics-url", "http://x/metrics"}, wantErr: "goes with -url"},
		{args: []string{"extra"}, wantErr: "unexpected argument"},
		{args: []string{"-shape", "graph"}},
		{args: []string{"-shape", "everything"}, wantErr: "-shape"},
		{args: []string{"-replicas", "0"}, wantErr: "-replicas"},
		{args: []string{"-url", "http://127.0.0.1:8080/query", "-replicas", "3"}, wantErr: "-replicas configures the in-process service"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			_, err := parseOptions(tt.args, io.Discard)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("error %v, want none", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
	if _, err := parseOptions([]string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: error %v, want flag.ErrHelp", err)
	}
}

// TestRunReplicas: with -replicas, the replicas share one Redis and one simulator, and the
// report says so; the run passes (every answer right, no 429, no window over its limit).
func TestRunReplicas(t *testing.T) {
	t.Parallel()
	srv := redistest.New(t)
	var out strings.Builder
	args := append(slices.Clone(tiny), "-replicas", "2", "-env", "REDIS_URL="+srv.URL())
	if err := run(t.Context(), args, noEnv, &out, io.Discard); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	for _, want := range []string{"2 in-process replicas", "sharing one simulator and Redis " + srv.URL() + "/0", "verdict  PASS"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the report does not say %q:\n%s", want, out.String())
		}
	}
}

func TestRefusesCredentials(t *testing.T) {
	t.Parallel()
	env := map[string]string{"MDE_TENANT_ID": "contoso.onmicrosoft.com", "MDE_CLIENT_ID": "id", "MDE_CLIENT_SECRET": "s"}
	err := run(t.Context(), tiny, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "demo mode") {
		t.Fatalf("run with credentials in the environment = %v, want a refusal naming demo mode", err)
	}
}

func TestWorkloadIsDeterministic(t *testing.T) {
	t.Parallel()
	o, err := parseOptions([]string{"-m", "50", "-q", "200", "-unknown", "0.1"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ref := simulator.New(simulator.Options{}) // the demo data set
	a, err := newWorkload(ref, o)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := newWorkload(ref, o)
	unknown := 0
	for i, tg := range a.targets {
		if tg.id != b.targets[i].id {
			t.Fatalf("target %d: %s, then %s", i, tg.id, b.targets[i].id)
		}
		if !tg.known {
			unknown++
			if len(tg.id) != 40 || strings.Trim(tg.id, "0123456789abcdef") != "" {
				t.Errorf("unknown id %q is not 40 lower-case hex digits", tg.id)
			}
		}
	}
	if unknown != 5 || a.known != 45 {
		t.Errorf("%d unknown, %d known; want 5 and 45", unknown, a.known)
	}
	for i := range a.plan {
		if a.plan[i] != b.plan[i] {
			t.Fatalf("query %d: target %d, then %d", i, a.plan[i], b.plan[i])
		}
	}
	// Zipf: the most popular id is asked far more often than the least.
	counts := make([]int, len(a.targets))
	for _, j := range a.plan {
		counts[j]++
	}
	if counts[0] < 10*max(counts[len(counts)-1], 1) {
		t.Errorf("rank 0 asked %d times, rank %d %d times: not Zipf-skewed", counts[0], len(counts)-1, counts[len(counts)-1])
	}
}
