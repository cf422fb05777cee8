package app_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdegraph/mdegraph/internal/app"
	"github.com/mdegraph/mdegraph/internal/simulator"
)

// The leak test: in the demo, megan and grady (device groups that do not overlap) and anonymous
// callers (served as the application, which sees every device) ask about the same devices at
// once, many times, through every layer that keeps or shares answers: the dataloaders' batched
// list calls, calls in flight shared between requests, the cache, remembered 404s, persisted
// GET queries (whose answers browsers may keep), and stale fallbacks. Each answer must be
// exactly what Defender (the simulator) shows that caller: all of its own devices, none of
// another's.

// leakQuery asks one device's details and logon users: a machine call and a logonusers call.
const leakQuery = `query($id: ID!) { machine(id: $id) { id computerDnsName logonUsers { id } } }`

// viewer is one kind of caller and what Defender shows it.
type viewer struct {
	name   string
	person *simulator.Person // nil: anonymous, served as the application
	header http.Header
}

func (v viewer) sees(sim *simulator.Simulator, id string) bool {
	m, ok := sim.Machine(id)
	return ok && (v.person == nil || v.person.CanSee(m))
}

// leakFixture is a demo service, its viewers and the devices they ask about: two only megan
// sees, two only grady, two neither (device group 0: only the application), and one no one.
type leakFixture struct {
	s       *service
	viewers []viewer
	devices []string
	// stale counts, per viewer, the answers served stale (extensions.stale).
	mu    sync.Mutex
	stale map[string]int
}

func newLeakFixture(t *testing.T, env map[string]string) *leakFixture {
	t.Helper()
	// Latency keeps calls in flight while others arrive; a long batch window keeps a
	// request's aliases in one list call.
	s := newService(t, env, app.Options{Simulator: &simulator.Options{Latency: 30 * time.Millisecond}, BatchWait: 50 * time.Millisecond})
	f := &leakFixture{s: s, viewers: []viewer{{name: "anonymous"}}, stale: map[string]int{}}
	for _, name := range []string{"megan", "grady"} {
		p, _ := s.sim.Person(name)
		f.viewers = append(f.viewers, viewer{name: name, person: &p, header: bearer(signInAs(t, s, name))})
	}
	megan, grady := f.viewers[1].person, f.viewers[2].person
	picked := map[string]int{}
	for _, m := range s.sim.Machines() {
		kind := "neither"
		switch {
		case megan.CanSee(m):
			kind = "megan"
		case grady.CanSee(m):
			kind = "grady"
		}
		if picked[kind] < 2 {
			picked[kind]++
			f.devices = append(f.devices, m.ID)
		}
	}
	if len(f.devices) != 6 {
		t.Fatalf("the demo data set lacks devices of some group: %v", picked)
	}
	f.devices = append(f.devices, unknownID())
	return f
}

// leakAnswer is one machine as a query answered it, with the errors about it.
type leakAnswer struct {
	machine json.RawMessage
	codes   []string
}

// check compares an answer about device id with what Defender shows v. unavailable allows an
// error where no fresh or stale answer could be had (Defender failing), never another's data.
func (f *leakFixture) check(t *testing.T, v viewer, via, id string, a leakAnswer, unavailable bool) {
	t.Helper()
	sim := f.s.sim
	failed := len(a.codes) > 0 && !slices.ContainsFunc(a.codes, func(c string) bool { return c != "UPSTREAM_UNAVAILABLE" })
	if !v.sees(sim, id) {
		if string(a.machine) != "null" || !slices.Equal(a.codes, []string{"NOT_FOUND"}) && !(unavailable && failed) {
			t.Errorf("%s, %s, device %s it must not see: machine %s, codes %v", v.name, via, id, a.machine, a.codes)
		}
		return
	}
	if unavailable && string(a.machine) == "null" && failed {
		return
	}
	var got struct {
		ID              string
		ComputerDNSName string `json:"computerDnsName"`
		LogonUsers      []struct{ ID string }
	}
	if err := json.Unmarshal(a.machine, &got); err != nil || got.ID != id || len(a.codes) > 0 && !(unavailable && failed) {
		t.Errorf("%s, %s, its device %s: machine %s, codes %v", v.name, via, id, a.machine, a.codes)
		return
	}
	m, _ := sim.Machine(id)
	if got.ComputerDNSName != m.ComputerDNSName {
		t.Errorf("%s, %s, device %s: computerDnsName %q, want %q", v.name, via, id, got.ComputerDNSName, m.ComputerDNSName)
	}
	if strings.Contains(via, "batched") || got.LogonUsers == nil && failed {
		return // the batched query asks no logon users; or they could not be had (an error says so)
	}
	users, _ := sim.LogonUsers(id)
	var want, have []string
	for _, u := range users {
		want = append(want, u.ID)
	}
	for _, u := range got.LogonUsers {
		have = append(have, u.ID)
	}
	slices.Sort(want)
	slices.Sort(have)
	if !slices.Equal(have, want) {
		t.Errorf("%s, %s, device %s: logon users %v, want %v", v.name, via, id, have, want)
	}
}

// one asks leakQuery for id by POST.
func (f *leakFixture) one(t *testing.T, v viewer, id string) leakAnswer {
	body, _ := json.Marshal(map[string]any{"query": leakQuery, "variables": map[string]string{"id": id}})
	req, _ := http.NewRequest(http.MethodPost, f.s.url, strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	return single(t, f.send(t, req, v))
}

// persisted asks leakQuery for id as a persisted GET (the query registered beforehand), and
// checks that the answer is cacheable only as the caller's own.
func (f *leakFixture) persisted(t *testing.T, v viewer, id string) leakAnswer {
	sum := sha256.Sum256([]byte(leakQuery))
	q := url.Values{"variables": {`{"id":"` + id + `"}`},
		"extensions": {`{"persistedQuery":{"version":1,"sha256Hash":"` + hex.EncodeToString(sum[:]) + `"}}`}}
	req, _ := http.NewRequest(http.MethodGet, f.s.url+"?"+q.Encode(), nil)
	req.Header.Set("Apollo-Require-Preflight", "true")
	a := f.send(t, req, v)
	if cc := a.header.Get("Cache-Control"); cc != "no-store" &&
		(v.person != nil && !strings.HasPrefix(cc, "private") || !strings.Contains(strings.Join(a.header.Values("Vary"), ","), "Authorization")) {
		t.Errorf("%s, persisted GET of %s: Cache-Control %q, Vary %q; want private for a person, varying by Authorization", v.name, id, cc, a.header.Values("Vary"))
	}
	return single(t, a)
}

// batched asks the details of every device in one query (one list call per caller), and
// returns the answer per device.
func (f *leakFixture) batched(t *testing.T, v viewer) map[string]leakAnswer {
	var q strings.Builder
	q.WriteString("{")
	for i, id := range f.devices {
		fmt.Fprintf(&q, ` d%d: machine(id: "%s") { id computerDnsName }`, i, id)
	}
	q.WriteString(" }")
	body, _ := json.Marshal(map[string]any{"query": q.String()})
	req, _ := http.NewRequest(http.MethodPost, f.s.url, strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	a := f.send(t, req, v)
	out := map[string]leakAnswer{}
	for i, id := range f.devices {
		alias := fmt.Sprintf("d%d", i)
		la := leakAnswer{machine: a.Data[alias]}
		for _, e := range a.Errors {
			if len(e.Path) > 0 && e.Path[0] == alias {
				code, _ := e.Extensions["code"].(string)
				la.codes = append(la.codes, code)
			}
		}
		out[id] = la
	}
	return out
}

func (f *leakFixture) send(t *testing.T, req *http.Request, v viewer) answer {
	for k, vals := range v.header {
		req.Header[k] = vals
	}
	a := do(t, req)
	if len(a.Ext.Stale) > 0 {
		f.mu.Lock()
		f.stale[v.name]++
		f.mu.Unlock()
	}
	return a
}

func single(t *testing.T, a answer) leakAnswer {
	la := leakAnswer{machine: a.Data["machine"]}
	if la.machine == nil {
		t.Errorf("no data.machine: status %d, errors %+v", a.status, a.Errors)
		la.machine = json.RawMessage("null")
	}
	for _, e := range a.Errors {
		code, _ := e.Extensions["code"].(string)
		la.codes = append(la.codes, code)
	}
	return la
}

// round asks, all at once, every viewer about every device by every route (the batched one
// alone when batchedOnly), times times over, and checks every answer.
func (f *leakFixture) round(t *testing.T, times int, batchedOnly, unavailable bool) {
	t.Helper()
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range times {
		for _, v := range f.viewers {
			for _, id := range f.devices {
				if batchedOnly {
					break
				}
				wg.Go(func() { <-start; f.check(t, v, "POST", id, f.one(t, v, id), unavailable) })
				wg.Go(func() { <-start; f.check(t, v, "persisted GET", id, f.persisted(t, v, id), unavailable) })
			}
			wg.Go(func() {
				<-start
				for id, a := range f.batched(t, v) {
					f.check(t, v, "batched list", id, a, unavailable)
				}
			})
		}
	}
	close(start)
	wg.Wait()
}

// register makes leakQuery a persisted query (the APQ cache keeps the query text, by its hash,
// for everyone: it holds no answer).
func (f *leakFixture) register(t *testing.T) {
	t.Helper()
	sum := sha256.Sum256([]byte(leakQuery))
	body, _ := json.Marshal(map[string]any{"query": leakQuery, "variables": map[string]string{"id": f.devices[0]},
		"extensions": map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hex.EncodeToString(sum[:])}}})
	req, _ := http.NewRequest(http.MethodPost, f.s.url, strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	if a := do(t, req); a.status != http.StatusOK {
		t.Fatalf("registering the persisted query: status %d, %+v", a.status, a.Errors)
	}
}

// checkIdentities checks that the simulator saw Defender calls made with each viewer's own
// token, and with no other.
func (f *leakFixture) checkIdentities(t *testing.T) {
	t.Helper()
	want := []string{simulator.IdentityApp, f.viewers[1].person.OID, f.viewers[2].person.OID}
	for _, e := range []simulator.Endpoint{simulator.EndpointLogonUsers, simulator.EndpointListMachines} {
		by := f.s.sim.Stats()[e].ByIdentity
		for _, id := range want {
			if by[id] == 0 {
				t.Errorf("%s: no call with the token of %s: %v", e, id, by)
			}
		}
		if len(by) != len(want) {
			t.Errorf("%s: calls by %v, want by %v only", e, by, want)
		}
	}
	issued := f.s.sim.Stats()[simulator.EndpointToken].ByIdentity
	for _, id := range want {
		if issued[id] != 1 {
			t.Errorf("tokens issued for %s: %d, want 1 (kept and shared by all of its requests): %v", id, issued[id], issued)
		}
	}
}

// TestNoAnswerCrossesCallers: the cache, in-flight sharing, batched list calls, persisted GETs
// and remembered 404s.
func TestNoAnswerCrossesCallers(t *testing.T) {
	t.Parallel()
	f := newLeakFixture(t, map[string]string{"CACHE_TTL": "5m", "NOT_FOUND_TTL": "5m"})
	f.register(t)
	f.round(t, 3, true, false)  // the details of every device in one list call per caller, shared
	f.round(t, 3, false, false) // every route, in flight together: sharing
	calls := f.s.calls()
	f.round(t, 2, false, false) // from the cache, 404s included
	f.round(t, 1, false, false) // whole answers kept by the response cache
	if again := f.s.calls(); fmt.Sprint(again) != fmt.Sprint(calls) {
		t.Errorf("the second rounds called Defender: %v, then %v; want every answer from the cache", calls, again)
	}
	if responseCacheHits(t, f.s) == 0 {
		t.Error("no answer came from the response cache: the test tested it for no leak")
	}
	f.checkIdentities(t)
}

// TestNoStaleAnswerCrossesCallers: answers kept as stale fallbacks serve only their own
// caller; a device a caller may not see never comes back from another's fallback while
// Defender fails.
func TestNoStaleAnswerCrossesCallers(t *testing.T) {
	t.Parallel()
	f := newLeakFixture(t, map[string]string{"CACHE_TTL": "0", "STALE_TTL": "1h"})
	f.register(t)
	f.round(t, 2, true, false) // keeps each caller's answers as its fallbacks
	f.round(t, 2, false, false)
	for _, e := range []simulator.Endpoint{simulator.EndpointGetMachine, simulator.EndpointListMachines, simulator.EndpointLogonUsers} {
		f.s.sim.Inject(e, http.StatusServiceUnavailable, 1_000_000)
	}
	f.round(t, 2, true, true)
	f.round(t, 2, false, true)
	f.checkIdentities(t)
	for _, v := range f.viewers {
		if f.stale[v.name] == 0 {
			t.Errorf("%s was served nothing stale while Defender failed: the test tested no fallback", v.name)
		}
	}
}
