package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdegraph/mdegraph/internal/app"
	"github.com/mdegraph/mdegraph/internal/defender"
	"github.com/mdegraph/mdegraph/internal/quota"
	"github.com/mdegraph/mdegraph/internal/simulator"
)

// serveAs answers one GraphQL POST in-process, from a client at remoteAddr (host:port), with
// extra request headers.
func (s *service) serveAs(t *testing.T, remoteAddr, q string, vars map[string]any, header http.Header) (response, *httptest.ResponseRecorder) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": q, "variables": vars})
	req := httptest.NewRequest(http.MethodPost, "/query", bytes.NewReader(body))
	req.RemoteAddr = remoteAddr
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	s.app.GraphQL.ServeHTTP(rec, req)
	var out response
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("decode (status %d): %v: %s", rec.Code, err, rec.Body)
	}
	return out, rec
}

// recordingLimiter is the client's limiter, recording the time of every grant.
type recordingLimiter struct {
	defender.Limiter
	mu     sync.Mutex
	grants []time.Time
}

func (r *recordingLimiter) Take(ctx context.Context, family string) (time.Time, error) {
	at, err := r.Limiter.Take(ctx, family)
	if err == nil {
		r.mu.Lock()
		r.grants = append(r.grants, at)
		r.mu.Unlock()
	}
	return at, err
}

// most returns the most grants in any window of length per (ending at a grant).
func (r *recordingLimiter) most(per time.Duration) int {
	r.mu.Lock()
	grants := slices.SortedFunc(slices.Values(r.grants), time.Time.Compare)
	r.mu.Unlock()
	most := 0
	for i, end := range grants {
		n := 0
		for j := i; j >= 0 && grants[j].Add(per).After(end); j-- {
			n++
		}
		most = max(most, n)
	}
	return most
}

const logonUsersQuery = `query($id: ID!) { machine(id: $id) { logonUsers { id } } }`

// TestFairShareBetweenCallers runs the whole service over the simulator with a small quota:
// one client floods it with queries from one address, while another, at another address, asks
// one query at a time. The flood takes the budget it can and is refused beyond; the second
// client's every query is answered, never refused, because its calls take their turn ahead of
// the flood's queue. First come first served, they would wait behind the flood's calls, past
// QUOTA_MAX_WAIT. No window is ever exceeded.
func TestFairShareBetweenCallers(t *testing.T) {
	t.Parallel()
	const maxWait = time.Second
	window := quota.Window{Limit: 4, Per: 500 * time.Millisecond}
	var limiter *recordingLimiter
	s := newService(t, map[string]string{"CACHE_TTL": "0", "QUOTA_MAX_WAIT": maxWait.String()}, app.Options{
		QuotaWindows: []quota.Window{window},
		// Defender's own limits are per minute; the test's window is shorter.
		Simulator: &simulator.Options{PerMinute: -1, PerHour: -1},
		Client: func(o *defender.Options) {
			o.RetryBaseDelay, o.RetryMaxDelay = time.Millisecond, 2*time.Millisecond
			limiter = &recordingLimiter{Limiter: o.Limiter}
			o.Limiter = limiter
		},
	})
	machines := s.sim.Machines()

	// The flood: 12 clients from one address, each asking again as soon as answered (after a
	// refusal, 20 ms later, to spare the test machine's CPUs).
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	floodCodes := map[string]int{}
	for w := range 12 {
		wg.Go(func() {
			for i := w; ; i += 12 {
				select {
				case <-stop:
					return
				default:
				}
				r, _ := s.serveAs(t, "192.0.2.1:40000", logonUsersQuery, map[string]any{"id": machines[i%len(machines)].ID}, nil)
				code := "ok"
				if len(r.Errors) > 0 {
					code = fmt.Sprint(codes(r))
					time.Sleep(20 * time.Millisecond)
				}
				mu.Lock()
				floodCodes[code]++
				mu.Unlock()
			}
		})
	}
	time.Sleep(300 * time.Millisecond) // the flood's queue fills

	// The light client: eight queries, one at a time, on devices the flood does not ask for.
	for i := range 8 {
		id := machines[len(machines)-1-i].ID
		r, rec := s.serveAs(t, "192.0.2.2:50000", logonUsersQuery, map[string]any{"id": id}, nil)
		if len(r.Errors) > 0 || rec.Code != http.StatusOK {
			t.Errorf("light client's query %d: status %d, errors %v; want answered: it asks within its share", i, rec.Code, r.Errors)
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	wg.Wait()

	if floodCodes["ok"] == 0 || floodCodes["[RATE_LIMITED]"] == 0 {
		t.Errorf("flood answers %v, want both ok and RATE_LIMITED: the flood must exceed the quota", floodCodes)
	}
	if most := limiter.most(window.Per); most > window.Limit {
		t.Errorf("%d upstream calls in one %v window, want at most %d", most, window.Per, window.Limit)
	}
	if st := s.sim.Stats()[simulator.EndpointLogonUsers]; st.TooManyRequests != 0 {
		t.Errorf("the simulator answered %d calls with 429", st.TooManyRequests)
	}

	// The metrics tell the two callers apart.
	metrics := scrape(t, s)
	for _, want := range []string{
		`mdegraph_caller_operations_total{caller="addr:192.0.2.2",outcome="ok"} 8`,
		`mdegraph_caller_operations_total{caller="addr:192.0.2.1",outcome="RATE_LIMITED"}`,
		`mdegraph_caller_quota_waits_total{caller="addr:192.0.2.1",outcome="exceeded"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s:\n%s", want, grep(metrics, "mdegraph_caller_"))
		}
	}
	t.Logf("flood answers: %v; upstream calls granted: %d", floodCodes, len(limiter.grants))
}

// scrape returns the service's /metrics text.
func scrape(t *testing.T, s *service) string {
	t.Helper()
	rec := httptest.NewRecorder()
	s.app.Metrics.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	return rec.Body.String()
}

// TestCallerLimit checks CALLER_LIMIT_PER_MINUTE through the whole service: a caller over the
// limit is refused with 429, Retry-After and RATE_LIMITED before any upstream call, with the
// CORS headers a browser needs to read the answer; another caller is not affected.
func TestCallerLimit(t *testing.T) {
	t.Parallel()
	const origin = "https://app.example.com"
	s := newService(t, map[string]string{"CALLER_LIMIT_PER_MINUTE": "2", "CORS_ORIGINS": origin, "CACHE_TTL": "0"}, app.Options{})
	id := s.sim.ExampleMachineID()
	fromApp := http.Header{"Origin": {origin}}
	for i := range 2 {
		if r, rec := s.serveAs(t, "192.0.2.1:1000", logonUsersQuery, map[string]any{"id": id}, fromApp); rec.Code != http.StatusOK || len(r.Errors) > 0 {
			t.Fatalf("query %d: status %d, errors %v; want answered", i, rec.Code, r.Errors)
		}
	}
	before := s.calls()[simulator.EndpointLogonUsers]
	r, rec := s.serveAs(t, "192.0.2.1:2000", logonUsersQuery, map[string]any{"id": id}, fromApp)
	if rec.Code != http.StatusTooManyRequests {
		t.Fatalf("third query: status %d, want 429", rec.Code)
	}
	if len(r.Errors) != 1 || codes(r)[0] != "RATE_LIMITED" || r.Errors[0].Extensions["retryAfter"] == nil {
		t.Errorf("third query: errors %v, want one RATE_LIMITED with retryAfter", r.Errors)
	}
	retry, _ := r.Errors[0].Extensions["retryAfter"].(float64)
	if got := rec.Header().Get("Retry-After"); got != fmt.Sprint(retry) || retry < 1 || retry > 60 {
		t.Errorf("Retry-After %q, retryAfter %v; want the same whole seconds, 1 to 60", got, retry)
	}
	if got := rec.Header().Get("Access-Control-Allow-Origin"); got != origin {
		t.Errorf("Access-Control-Allow-Origin %q, want %q: a browser could not read the refusal", got, origin)
	}
	if got := rec.Header().Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", got)
	}
	if after := s.calls()[simulator.EndpointLogonUsers]; after != before {
		t.Errorf("the refused query made %d upstream calls, want 0", after-before)
	}
	if r, rec := s.serveAs(t, "192.0.2.2:1000", logonUsersQuery, map[string]any{"id": id}, fromApp); rec.Code != http.StatusOK || len(r.Errors) > 0 {
		t.Errorf("another caller: status %d, errors %v; want answered", rec.Code, r.Errors)
	}
	metrics := scrape(t, s)
	for _, want := range []string{
		`mdegraph_caller_limit_refusals_total{caller="addr:192.0.2.1"} 1`,
		`mdegraph_caller_operations_total{caller="addr:192.0.2.1",outcome="RATE_LIMITED"} 1`,
		`mdegraph_caller_operations_total{caller="addr:192.0.2.1",outcome="ok"} 2`,
		`mdegraph_graphql_operations_total{outcome="RATE_LIMITED"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s:\n%s", want, grep(metrics, "mdegraph_"))
		}
	}
}
