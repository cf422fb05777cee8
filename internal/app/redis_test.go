package app_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdegraph/mdegraph/internal/app"
	"github.com/mdegraph/mdegraph/internal/config"
	"github.com/mdegraph/mdegraph/internal/defender"
	"github.com/mdegraph/mdegraph/internal/redistest"
	"github.com/mdegraph/mdegraph/internal/simulator"
)

// fleet is several replicas of the service sharing one Redis and one simulator.
type fleet struct {
	sim      *simulator.Simulator
	redis    *redistest.Server
	env      map[string]string
	replicas []*replica
}

type replica struct {
	app   *app.App
	url   string // GraphQL
	ready string // /readyz
	srv   *httptest.Server
}

func newFleet(t *testing.T, n int, env map[string]string, simOpts simulator.Options) *fleet {
	t.Helper()
	f := &fleet{sim: simulator.New(simOpts), redis: redistest.New(t), env: map[string]string{"REPLICAS": fmt.Sprint(n)}}
	for k, v := range env {
		f.env[k] = v
	}
	f.env["REDIS_URL"] = f.redis.URL()
	for range n {
		f.replicas = append(f.replicas, f.start(t))
	}
	return f
}

// start starts one more replica.
func (f *fleet) start(t *testing.T) *replica {
	t.Helper()
	cfg, err := config.Load(nil, func(k string) string { return f.env[k] }, io.Discard)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	a, err := app.New(t.Context(), cfg, slog.New(slog.DiscardHandler), app.Options{Upstream: f.sim,
		Client: func(o *defender.Options) { o.RetryBaseDelay, o.RetryMaxDelay = time.Millisecond, 2*time.Millisecond }})
	if err != nil {
		t.Fatalf("app: %v", err)
	}
	t.Cleanup(a.Close)
	mux := http.NewServeMux()
	mux.Handle("/query", a.GraphQL)
	mux.Handle("/readyz", a.Ready)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &replica{app: a, url: srv.URL + "/query", ready: srv.URL + "/readyz", srv: srv}
}

const usersQuery = `query($id: ID!) { machine(id: $id) { logonUsers { id } } }`

// logonUsers asks r for id's logon users: their ids, or the error code.
func (r *replica) logonUsers(t *testing.T, id string) ([]string, string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": usersQuery, "variables": map[string]any{"id": id}})
	resp, err := http.Post(r.url, "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Errorf("POST: %v", err)
		return nil, "transport"
	}
	defer resp.Body.Close()
	var out struct {
		Data struct {
			Machine *struct {
				LogonUsers []struct{ ID string } `json:"logonUsers"`
			} `json:"machine"`
		} `json:"data"`
		Errors []gqlError `json:"errors"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Errorf("decode: %v", err)
		return nil, "decode"
	}
	if len(out.Errors) > 0 {
		code, _ := out.Errors[0].Extensions["code"].(string)
		return nil, code
	}
	if out.Data.Machine == nil {
		return nil, "null"
	}
	ids := []string{}
	for _, u := range out.Data.Machine.LogonUsers {
		ids = append(ids, u.ID)
	}
	return ids, ""
}

// want is the simulator's answer for id.
func (f *fleet) want(id string) []string {
	users, _ := f.sim.LogonUsers(id)
	ids := []string{}
	for _, u := range users {
		ids = append(ids, u.ID)
	}
	return ids
}

func (r *replica) readyz(t *testing.T) (int, string) {
	t.Helper()
	resp, err := http.Get(r.ready)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestReplicasShareQuotaCacheAndCalls: three replicas, one Redis, one simulator; concurrent
// queries round-robin across them. Every answer is right, each distinct device is fetched
// once from the simulator, nothing earns a 429 and no window holds more than the limit.
func TestReplicasShareQuotaCacheAndCalls(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 3, nil, simulator.Options{Latency: 30 * time.Millisecond})
	var ids []string
	for _, m := range f.sim.Machines()[:40] {
		ids = append(ids, m.ID)
	}
	const queries, clients = 480, 24
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for q := c; q < queries; q += clients {
				id := ids[(q/3)%len(ids)] // each id asked three times in a row: once of each replica
				got, code := f.replicas[q%3].logonUsers(t, id)
				if code != "" || !slices.Equal(got, f.want(id)) {
					t.Errorf("query %d (%s) on replica %d: got %v %s, want %v", q, id, q%3, got, code, f.want(id))
				}
			}
		})
	}
	wg.Wait()
	for id, n := range f.sim.LogonUserCallCounts() {
		if n != 1 {
			t.Errorf("device %s fetched %d times from the simulator, want once", id, n)
		}
	}
	st := f.sim.Stats()[simulator.EndpointLogonUsers]
	if st.Calls != len(ids) || st.TooManyRequests != 0 || st.MaxInAnyMinute > simulator.DefaultPerMinute {
		t.Errorf("simulator: %d calls, %d 429s, at most %d in a minute; want %d, 0, at most %d",
			st.Calls, st.TooManyRequests, st.MaxInAnyMinute, len(ids), simulator.DefaultPerMinute)
	}
	// The quota every replica reports is the fleet's (within redisstore.StatusMaxAge).
	for _, r := range f.replicas {
		eventuallyUsed(t, r.app, defender.EndpointLogonUsers, len(ids))
	}
}

func minuteUsed(a *app.App, e defender.Endpoint) int {
	for _, s := range a.Quota.Status() {
		if s.Family == string(e) {
			return s.Windows[0].Used
		}
	}
	return -1
}

// eventuallyUsed waits until a reports want calls of e in the minute: a replica's quota
// reading shows the others' calls within redisstore.StatusMaxAge.
func eventuallyUsed(t *testing.T, a *app.App, e defender.Endpoint, want int) {
	t.Helper()
	for used := minuteUsed(a, e); used != want; used = minuteUsed(a, e) {
		select {
		case <-t.Context().Done():
			t.Fatalf("a replica reports %d %s calls in the minute, want the fleet's %d", used, e, want)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestRestartKeepsTheQuota: a replica that spent the minute's budget restarts; the new one
// does not spend it again, and finds the answers cached.
func TestRestartKeepsTheQuota(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 1, map[string]string{"MDE_LIMIT_PER_MINUTE": "5", "QUOTA_MAX_WAIT": "0s"}, simulator.Options{})
	machines := f.sim.Machines()
	for _, m := range machines[:5] {
		if _, code := f.replicas[0].logonUsers(t, m.ID); code != "" {
			t.Fatalf("first replica: %s", code)
		}
	}
	f.replicas[0].srv.Close()
	f.replicas[0].app.Close()

	again := f.start(t)
	if _, code := again.logonUsers(t, machines[5].ID); code != "RATE_LIMITED" {
		t.Errorf("after the restart a new device answered %q, want RATE_LIMITED: the minute's budget is spent", code)
	}
	if got, code := again.logonUsers(t, machines[0].ID); code != "" || !slices.Equal(got, f.want(machines[0].ID)) {
		t.Errorf("after the restart a cached device answered %v %q, want its users from the cache", got, code)
	}
	if n := f.sim.Stats()[simulator.EndpointLogonUsers].Calls; n != 5 {
		t.Errorf("simulator saw %d logonusers calls, want the 5 made before the restart", n)
	}
}

// TestRedisOutage: Redis stops mid-run. Answers stay right (or RATE_LIMITED), the fleet keeps
// within its local budgets (no 429, no window over the limit), the replicas stay ready and
// say they are degraded; when Redis is back the shared state resumes.
func TestRedisOutage(t *testing.T) {
	t.Parallel()
	const limit = 12 // per minute, for the fleet: 4 per replica while Redis is away
	f := newFleet(t, 3, map[string]string{"MDE_LIMIT_PER_MINUTE": fmt.Sprint(limit), "QUOTA_MAX_WAIT": "0s"},
		simulator.Options{PerMinute: limit})
	machines := f.sim.Machines()
	next := 0
	ask := func(n int) (answered, limited int) {
		for i := range n {
			id := machines[next].ID
			next++
			got, code := f.replicas[i%3].logonUsers(t, id)
			switch {
			case code == "RATE_LIMITED":
				limited++
			case code != "" || !slices.Equal(got, f.want(id)):
				t.Errorf("%s on replica %d: got %v %q, want %v", id, i%3, got, code, f.want(id))
			default:
				answered++
			}
		}
		return answered, limited
	}
	if answered, _ := ask(6); answered != 6 { // two per replica, shared
		t.Fatalf("before the outage %d of 6 answered", answered)
	}

	f.redis.Stop()
	answered, limited := ask(30)
	if answered != limit-6 || limited != 30-answered {
		t.Errorf("during the outage %d answered and %d RATE_LIMITED, want %d answered (each replica's 4 less the 2 it spent)",
			answered, limited, limit-6)
	}
	for i, r := range f.replicas {
		if code, body := r.readyz(t); code != http.StatusOK || !strings.Contains(body, "degraded: Redis unreachable") || !strings.Contains(body, "local budget 4/min") {
			t.Errorf("replica %d /readyz during the outage = %d %q, want 200 and degraded with its budget", i, code, body)
		}
	}
	st := f.sim.Stats()[simulator.EndpointLogonUsers]
	if st.TooManyRequests != 0 || st.MaxInAnyMinute > limit {
		t.Errorf("simulator: %d 429s, at most %d calls in a minute; want 0 and at most %d", st.TooManyRequests, st.MaxInAnyMinute, limit)
	}

	if err := f.redis.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	for i, r := range f.replicas {
		for {
			if _, body := r.readyz(t); !strings.Contains(body, "degraded") {
				break
			}
			select {
			case <-t.Context().Done():
				t.Fatalf("replica %d never left the degraded state", i)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	// Redis restarted empty: each replica wrote back what it spent in the last minute, before
	// and during the outage, so the fleet's minute is whole again, as Defender counts it.
	for _, r := range f.replicas {
		eventuallyUsed(t, r.app, defender.EndpointLogonUsers, limit)
	}
	if _, code := f.replicas[0].logonUsers(t, machines[next].ID); code != "RATE_LIMITED" {
		t.Errorf("after the outage a new device answered %q, want RATE_LIMITED: the fleet spent the minute", code)
	}
	if st := f.sim.Stats()[simulator.EndpointLogonUsers]; st.TooManyRequests != 0 || st.MaxInAnyMinute > limit {
		t.Errorf("simulator: %d 429s, at most %d calls in a minute; want 0 and at most %d", st.TooManyRequests, st.MaxInAnyMinute, limit)
	}
}
