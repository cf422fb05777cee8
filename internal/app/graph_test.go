package app_test

// The graph around a device, end to end on the simulator: finding devices (Query.machines),
// a user's other devices (LogonUser.machines), a device's alerts (Machine.alerts).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdegraph/mdegraph/internal/app"
	"github.com/mdegraph/mdegraph/internal/simulator"
)

// graphAsk sends query with vars and decodes the whole answer.
func graphAsk(t *testing.T, s *service, query string, vars map[string]any) answer {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, s.url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return do(t, req)
}

// page is the part of a MachineConnection the tests read.
type page struct {
	Edges []struct {
		Cursor string `json:"cursor"`
		Node   struct {
			ID string `json:"id"`
		} `json:"node"`
	} `json:"edges"`
	PageInfo *struct {
		HasNextPage     bool    `json:"hasNextPage"`
		HasPreviousPage bool    `json:"hasPreviousPage"`
		StartCursor     *string `json:"startCursor"`
		EndCursor       *string `json:"endCursor"`
	} `json:"pageInfo"`
}

const pageQuery = `query ($first: Int, $after: String, $filter: MachineFilter) {
  machines(first: $first, after: $after, filter: $filter) {
    edges { cursor node { id } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }`

// allPages pages through machines with filter, first at a time, and returns the ids in order
// and the number of pages.
func allPages(t *testing.T, s *service, filter map[string]any, first int) ([]string, int) {
	t.Helper()
	var ids []string
	var after any
	for n := 1; n <= 100; n++ {
		a := graphAsk(t, s, pageQuery, map[string]any{"first": first, "after": after, "filter": filter})
		if len(a.Errors) > 0 {
			t.Fatalf("page %d: %+v", n, a.Errors)
		}
		var p page
		if err := json.Unmarshal(a.Data["machines"], &p); err != nil {
			t.Fatal(err)
		}
		if p.PageInfo.HasPreviousPage != (n > 1) {
			t.Errorf("page %d: hasPreviousPage %v", n, p.PageInfo.HasPreviousPage)
		}
		for _, e := range p.Edges {
			ids = append(ids, e.Node.ID)
		}
		if len(p.Edges) > 0 && (*p.PageInfo.StartCursor != p.Edges[0].Cursor || *p.PageInfo.EndCursor != p.Edges[len(p.Edges)-1].Cursor) {
			t.Errorf("page %d: start and end cursors are not the first and last edges'", n)
		}
		if !p.PageInfo.HasNextPage {
			return ids, n
		}
		if len(p.Edges) != first {
			t.Fatalf("page %d: %d devices and hasNextPage; want a full page of %d", n, len(p.Edges), first)
		}
		after = *p.PageInfo.EndCursor
	}
	t.Fatal("more than 100 pages")
	return nil, 0
}

// TestMachinesPagesToTheEnd: paging 1,000 devices 100 at a time gives every device once, in
// Defender's order, in 10 calls, whatever Defender does with @odata.nextLink (the service
// pages with $top and $skip, and never follows it).
func TestMachinesPagesToTheEnd(t *testing.T) {
	t.Parallel()
	for _, mode := range []simulator.NextLinkMode{simulator.NextLinkNormal, simulator.NextLinkMissing, simulator.NextLinkRepeat} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			t.Parallel()
			s := newService(t, nil, app.Options{Simulator: &simulator.Options{Devices: 1000, NextLink: mode, PageSize: 300}})
			ids, pages := allPages(t, s, nil, 100)
			var want []string
			for _, m := range s.sim.Machines() {
				want = append(want, m.ID)
			}
			if !slices.Equal(ids, want) {
				t.Errorf("%d ids (%d distinct), want the simulator's %d in order", len(ids), len(slices.Compact(slices.Sorted(slices.Values(ids)))), len(want))
			}
			calls := s.sim.KeyCalls(simulator.EndpointListMachines)
			if pages != 10 || len(calls) != 10 || s.calls()[simulator.EndpointListMachines] != 10 {
				t.Errorf("%d pages, list calls %v; want 10 pages, one call each", pages, calls)
			}
			for q := range calls {
				if !strings.Contains(q, "%24top=101") && !strings.Contains(q, "$top=101") {
					t.Errorf("list call %q: want $top=101 (first + 1)", q)
				}
			}
		})
	}
	t.Run("filtered, and a cursor of another filter", func(t *testing.T) {
		t.Parallel()
		s := newService(t, nil, app.Options{Simulator: &simulator.Options{Devices: 1000}})
		filter := map[string]any{"healthStatus": "ACTIVE", "osPlatform": "Windows11"}
		ids, _ := allPages(t, s, filter, 37)
		var want []string
		for _, m := range s.sim.Machines() {
			if m.HealthStatus == "Active" && m.OSPlatform == "Windows11" {
				want = append(want, m.ID)
			}
		}
		if len(want) < 38 || !slices.Equal(ids, want) {
			t.Errorf("%d ids, want the simulator's %d active Windows 11 devices in order", len(ids), len(want))
		}
		first := graphAsk(t, s, pageQuery, map[string]any{"first": 2, "filter": filter})
		var p page
		json.Unmarshal(first.Data["machines"], &p)
		other := graphAsk(t, s, pageQuery, map[string]any{"first": 2, "after": *p.PageInfo.EndCursor})
		if got := other.errorsAt(); !slices.Equal(got, []string{"BAD_USER_INPUT@machines"}) || string(other.Data["machines"]) != `{"edges":null,"pageInfo":null}` {
			t.Errorf("a cursor of another filter: errors %v, machines %s; want BAD_USER_INPUT and null fields", got, other.Data["machines"])
		}
	})
}

// TestMachinesFilter: each filter field selects what Defender's $filter selects, and text
// that tries to end its literal selects nothing rather than everything.
func TestMachinesFilter(t *testing.T) {
	t.Parallel()
	s := newService(t, nil, app.Options{Simulator: &simulator.Options{Devices: 400}})
	all := s.sim.Machines()
	lastSeen := func(m simulator.Machine) time.Time {
		ts, err := time.Parse(time.RFC3339Nano, m.LastSeen)
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	mid := lastSeen(all[len(all)/2])
	tag := ""
	for _, m := range all {
		if len(m.MachineTags) > 0 {
			tag = m.MachineTags[0]
			break
		}
	}
	tests := []struct {
		name   string
		filter map[string]any
		match  func(simulator.Machine) bool
	}{
		{"prefix", map[string]any{"computerDnsNamePrefix": "DESK-"}, func(m simulator.Machine) bool { return strings.HasPrefix(m.ComputerDNSName, "desk-") }},
		{"health", map[string]any{"healthStatus": "IMPAIRED_COMMUNICATION"}, func(m simulator.Machine) bool { return m.HealthStatus == "ImpairedCommunication" }},
		{"risk", map[string]any{"riskScore": "HIGH"}, func(m simulator.Machine) bool { return m.RiskScore != nil && *m.RiskScore == "High" }},
		{"exposure", map[string]any{"exposureLevel": "MEDIUM"}, func(m simulator.Machine) bool { return m.ExposureLevel != nil && *m.ExposureLevel == "Medium" }},
		{"tag", map[string]any{"machineTag": tag}, func(m simulator.Machine) bool { return slices.Contains(m.MachineTags, tag) }},
		{"last seen after", map[string]any{"lastSeenAfter": mid.Format(time.RFC3339Nano)}, func(m simulator.Machine) bool { return lastSeen(m).After(mid) }},
		{"last seen before", map[string]any{"lastSeenBefore": mid.Format(time.RFC3339Nano)}, func(m simulator.Machine) bool { return lastSeen(m).Before(mid) }},
		{"device group", map[string]any{"deviceGroupId": 21}, func(m simulator.Machine) bool { return m.RBACGroupID == 21 }},
		{"platform and group", map[string]any{"osPlatform": "Linux", "deviceGroupId": "31"}, func(m simulator.Machine) bool { return m.OSPlatform == "Linux" && m.RBACGroupID == 31 }},
	}
	for _, h := range []string{"' or 1 eq 1", "x') or (id ne '", "desk-' or startswith(computerDnsName,'", "'", "o'brien", "a&$top=1", "日本'"} {
		tests = append(tests,
			struct {
				name   string
				filter map[string]any
				match  func(simulator.Machine) bool
			}{"hostile prefix " + h, map[string]any{"computerDnsNamePrefix": h}, func(simulator.Machine) bool { return false }},
			struct {
				name   string
				filter map[string]any
				match  func(simulator.Machine) bool
			}{"hostile tag " + h, map[string]any{"machineTag": h}, func(simulator.Machine) bool { return false }})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var want []string
			for _, m := range all {
				if tt.match(m) {
					want = append(want, m.ID)
				}
			}
			if len(want) == 0 && !strings.HasPrefix(tt.name, "hostile") {
				t.Fatalf("the data set has no device for %v: the test proves nothing", tt.filter)
			}
			ids, _ := allPages(t, s, tt.filter, 1000)
			if !slices.Equal(ids, want) {
				t.Errorf("filter %v: %d devices, want %d", tt.filter, len(ids), len(want))
			}
		})
	}
	t.Run("refused before any call", func(t *testing.T) {
		t.Parallel()
		s := newService(t, nil, app.Options{}) // its own, so that the other subtests' calls do not count
		before := s.sim.KeyCalls(simulator.EndpointListMachines)
		for _, f := range []map[string]any{{"healthStatus": "OTHER"}, {"machineTag": ""}, {"machineTag": "a\nb"}, {"deviceGroupId": "12 or 1 eq 1"},
			{"lastSeenAfter": "2026-02-01T00:00:00Z", "lastSeenBefore": "2026-01-01T00:00:00Z"}, {"osPlatform": "Windows 11"}} {
			a := graphAsk(t, s, pageQuery, map[string]any{"filter": f})
			if got := a.errorsAt(); !slices.Equal(got, []string{"BAD_USER_INPUT@machines"}) {
				t.Errorf("filter %v: errors %v, want BAD_USER_INPUT at machines", f, got)
			}
		}
		for _, first := range []int{0, -1, 1001} {
			if got := graphAsk(t, s, pageQuery, map[string]any{"first": first}).errorsAt(); !slices.Equal(got, []string{"BAD_USER_INPUT@machines"}) {
				t.Errorf("first %d: errors %v", first, got)
			}
		}
		if after := s.sim.KeyCalls(simulator.EndpointListMachines); !maps.Equal(after, before) {
			t.Errorf("refused arguments made list calls: %v, then %v", before, after)
		}
	})
}

// TestMachinesEmptyTenant: Defender's 404 "no recent machines" is an empty connection.
func TestMachinesEmptyTenant(t *testing.T) {
	t.Parallel()
	s := newService(t, nil, app.Options{Simulator: &simulator.Options{NoDevices: true}})
	a := graphAsk(t, s, pageQuery, nil)
	if len(a.Errors) > 0 || string(a.Data["machines"]) != `{"edges":[],"pageInfo":{"hasNextPage":false,"hasPreviousPage":false,"startCursor":null,"endCursor":null}}` {
		t.Errorf("errors %+v, machines %s; want an empty page", a.Errors, a.Data["machines"])
	}
}

// graphQuery asks, for each device, its users and each user's machines, and its alerts.
func graphQuery(ids []string) string {
	var b strings.Builder
	b.WriteString("{ ")
	for i, id := range ids {
		fmt.Fprintf(&b, `m%d: machine(id: %q) { id logonUsers { accountName machines { id computerDnsName } } alerts { id title } } `, i, id)
	}
	b.WriteString("}")
	return b.String()
}

type graphMachine struct {
	ID         string `json:"id"`
	LogonUsers []struct {
		AccountName string `json:"accountName"`
		Machines    []struct {
			ID string `json:"id"`
		} `json:"machines"`
	} `json:"logonUsers"`
	Alerts []struct {
		ID string `json:"id"`
	} `json:"alerts"`
}

// checkGraph compares the answer's devices with the simulator's data.
func checkGraph(t *testing.T, sim *simulator.Simulator, a answer, n int) {
	t.Helper()
	if len(a.Errors) > 0 {
		t.Fatalf("errors %+v", a.Errors)
	}
	for i := range n {
		var m graphMachine
		if err := json.Unmarshal(a.Data[fmt.Sprintf("m%d", i)], &m); err != nil {
			t.Fatal(err)
		}
		wantAlerts, _ := sim.Alerts(m.ID)
		if len(m.Alerts) != len(wantAlerts) {
			t.Errorf("%s: %d alerts, want %d", m.ID, len(m.Alerts), len(wantAlerts))
		}
		for j := range min(len(m.Alerts), len(wantAlerts)) {
			if m.Alerts[j].ID != wantAlerts[j].ID {
				t.Errorf("%s: alert %d is %s, want %s", m.ID, j, m.Alerts[j].ID, wantAlerts[j].ID)
			}
		}
		for _, u := range m.LogonUsers {
			var got, want []string
			for _, um := range u.Machines {
				got = append(got, um.ID)
			}
			for _, um := range sim.UserMachines(u.AccountName) {
				want = append(want, um.ID)
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s's machines: %v, want %v", u.AccountName, got, want)
			}
		}
	}
}

// TestGraphOneCallPerDistinctKey: the users' machines asked for from ten devices' logon users
// are one call per distinct account name, and the alerts one call per distinct device, within
// one request (devices asked twice included) and across concurrent requests.
func TestGraphOneCallPerDistinctKey(t *testing.T) {
	t.Parallel()
	s := newService(t, map[string]string{"MAX_UPSTREAM_CALLS_PER_QUERY": "500"}, app.Options{})
	var ids []string
	for _, m := range s.sim.Machines()[:10] {
		ids = append(ids, m.ID)
	}
	ids = append(ids, ids[0], ids[3]) // asked twice
	wantNames := map[string]bool{}
	for _, id := range ids {
		users, _ := s.sim.LogonUsers(id)
		for _, u := range users {
			wantNames[strings.ToLower(u.AccountName)] = true
		}
	}
	q := graphQuery(ids)
	const requests = 6
	answers := make([]answer, requests)
	var wg sync.WaitGroup
	for i := range requests {
		wg.Go(func() { answers[i] = graphAsk(t, s, q, nil) })
	}
	wg.Wait()
	for _, a := range answers {
		checkGraph(t, s.sim, a, len(ids))
	}
	users := s.sim.KeyCalls(simulator.EndpointUserMachines)
	if len(users) != len(wantNames) || slices.ContainsFunc(slices.Collect(maps.Values(users)), func(n int) bool { return n != 1 }) {
		t.Errorf("users' machines calls %v: want one for each of the %d distinct account names of the devices' users", users, len(wantNames))
	}
	alerts := s.sim.KeyCalls(simulator.EndpointMachineAlerts)
	if len(alerts) != 10 || slices.ContainsFunc(slices.Collect(maps.Values(alerts)), func(n int) bool { return n != 1 }) {
		t.Errorf("alerts calls %v: want one for each of the 10 devices", alerts)
	}
	// The machines the users' answers listed are in the cache: their details cost nothing.
	before := s.calls()
	listed := map[string]bool{}
	for name := range wantNames {
		for _, m := range s.sim.UserMachines(name) {
			listed[m.ID] = true
		}
	}
	var detailIDs []string
	for id := range listed {
		detailIDs = append(detailIDs, id)
	}
	var b strings.Builder
	b.WriteString("{ ")
	for i, id := range detailIDs[:min(40, len(detailIDs))] {
		fmt.Fprintf(&b, `d%d: machine(id: %q) { computerDnsName osPlatform } `, i, id)
	}
	b.WriteString("}")
	if a := graphAsk(t, s, b.String(), nil); len(a.Errors) > 0 {
		t.Fatalf("details: %+v", a.Errors)
	}
	if after := s.calls(); !maps.Equal(after, before) {
		t.Errorf("details of listed machines made calls: %v, then %v", before, after)
	}
}

// TestGraphNullableFailures: a failing call nulls its own field, with its error at its path,
// and the rest of the answer stays; an unknown device is still null with one NOT_FOUND.
func TestGraphNullableFailures(t *testing.T) {
	t.Parallel()
	exampleUsers, _ := simulator.New(simulator.Options{}).LogonUsers(simulator.New(simulator.Options{}).ExampleMachineID())
	everyUsersMachines := slices.Repeat([]string{"UPSTREAM_UNAVAILABLE@machine.logonUsers.*.machines"}, len(exampleUsers))
	tests := []struct {
		name    string
		env     map[string]string
		simOpts *simulator.Options
		inject  func(*simulator.Simulator)
		query   string
		want    []string          // errors, CODE@path (indexes as *), sorted
		values  map[string]string // path in data → its JSON, "" for any value but null
	}{
		{name: "alerts 500", inject: func(s *simulator.Simulator) { s.Inject(simulator.EndpointMachineAlerts, 500, 10) },
			query: `{ machine(id: "$ID") { computerDnsName logonUsers { id } alerts { id } } }`,
			want:  []string{"UPSTREAM_UNAVAILABLE@machine.alerts"}, values: map[string]string{"machine.alerts": "null", "machine.computerDnsName": "", "machine.logonUsers": ""}},
		{name: "alerts 404 of a device its details show", inject: func(s *simulator.Simulator) { s.Inject(simulator.EndpointMachineAlerts, 404, 1) },
			query: `{ machine(id: "$ID") { computerDnsName alerts { id } } }`,
			want:  []string{"UPSTREAM_UNAVAILABLE@machine.alerts"}, values: map[string]string{"machine.alerts": "null", "machine.computerDnsName": ""}},
		{name: "alerts 404 of a device its logon users show", inject: func(s *simulator.Simulator) { s.Inject(simulator.EndpointMachineAlerts, 404, 1) },
			query: `{ machine(id: "$ID") { logonUsers { id } alerts { id } } }`,
			want:  []string{"UPSTREAM_UNAVAILABLE@machine.alerts"}, values: map[string]string{"machine.alerts": "null", "machine.logonUsers": ""}},
		{name: "alerts 429", env: map[string]string{"QUOTA_MAX_WAIT": "1s"}, inject: func(s *simulator.Simulator) { s.InjectRetryAfter(simulator.EndpointMachineAlerts, time.Minute, 1) },
			query: `{ machine(id: "$ID") { logonUsers { id } alerts { id } } }`,
			want:  []string{"RATE_LIMITED@machine.alerts"}, values: map[string]string{"machine.alerts": "null", "machine.logonUsers": ""}},
		{name: "alerts forbidden", simOpts: &simulator.Options{DeniedPermissions: []string{"Alert.Read.All"}},
			query: `{ machine(id: "$ID") { computerDnsName alerts { id } } }`,
			want:  []string{"FORBIDDEN@machine.alerts"}, values: map[string]string{"machine.alerts": "null", "machine.computerDnsName": ""}},
		{name: "an unknown device, alerts alone", query: `{ machine(id: "` + unknownID() + `") { id alerts { id } } }`,
			want: []string{"NOT_FOUND@machine.alerts"}, values: map[string]string{"machine": "null"}},
		{name: "an unknown device, alerts and logon users: one NOT_FOUND", query: `{ machine(id: "` + unknownID() + `") { logonUsers { id } alerts { id } } }`,
			want: []string{"NOT_FOUND@machine.logonUsers"}, values: map[string]string{"machine": "null"}},
		{name: "alerts and logon users both fail: nothing was had", inject: func(s *simulator.Simulator) {
			s.Inject(simulator.EndpointMachineAlerts, 500, 10)
			s.Inject(simulator.EndpointLogonUsers, 500, 10)
		}, query: `{ machine(id: "$ID") { logonUsers { id } alerts { id } } }`,
			want: []string{"UPSTREAM_UNAVAILABLE@machine.alerts", "UPSTREAM_UNAVAILABLE@machine.logonUsers"}, values: map[string]string{"machine": "null"}},
		{name: "users' machines 500", inject: func(s *simulator.Simulator) { s.Inject(simulator.EndpointUserMachines, 500, 100) },
			query: `{ machine(id: "$ID") { computerDnsName logonUsers { accountName machines { id } } } }`,
			want:  everyUsersMachines, values: map[string]string{"machine.logonUsers.0.machines": "null", "machine.logonUsers.0.accountName": "", "machine.computerDnsName": ""}},
		{name: "users' machines forbidden", simOpts: &simulator.Options{DeniedPermissions: []string{"Machine.Read.All"}},
			query: `{ machine(id: "$ID") { logonUsers { accountName machines { id } } alerts { id } } }`,
			want:  slices.Repeat([]string{"FORBIDDEN@machine.logonUsers.*.machines"}, len(exampleUsers)), values: map[string]string{"machine.alerts": ""}},
		{name: "the list 500", inject: func(s *simulator.Simulator) { s.Inject(simulator.EndpointListMachines, 500, 10) },
			query: `{ machines(first: 2) { nodes { id } pageInfo { hasNextPage } } quota { endpoint } }`,
			want:  []string{"UPSTREAM_UNAVAILABLE@machines"}, values: map[string]string{"machines": `{"nodes":null,"pageInfo":null}`, "quota": ""}},
		{name: "a listed device's alerts 404", inject: func(s *simulator.Simulator) { s.Inject(simulator.EndpointMachineAlerts, 404, 1) },
			query: `{ machines(first: 1) { nodes { id alerts { id } } } }`,
			want:  []string{"UPSTREAM_UNAVAILABLE@machines.nodes.*.alerts"}, values: map[string]string{"machines.nodes.0.alerts": "null", "machines.nodes.0.id": ""}},
		{name: "a listed device's logon users 500", inject: func(s *simulator.Simulator) { s.Inject(simulator.EndpointLogonUsers, 500, 10) },
			query: `{ machines(first: 1) { nodes { id logonUsers { id } } } }`,
			want:  []string{"UPSTREAM_UNAVAILABLE@machines.nodes.*.logonUsers"}, values: map[string]string{"machines.nodes.0.logonUsers": "null"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newService(t, tt.env, app.Options{Simulator: tt.simOpts})
			if tt.inject != nil {
				tt.inject(s.sim)
			}
			a := graphAsk(t, s, strings.ReplaceAll(tt.query, "$ID", s.sim.ExampleMachineID()), nil)
			var got []string
			for _, e := range a.errorsAt() {
				got = append(got, indexesAsStars(e))
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("errors %v, want %v (%+v)", got, tt.want, a.Errors)
			}
			for p, want := range tt.values {
				v := jsonAt(t, a.Data, p)
				if want == "" && v == "null" || want != "" && v != want {
					t.Errorf("%s = %s, want %q (\"\": any value but null)", p, v, want)
				}
			}
		})
	}
}

// indexesAsStars writes the list indexes of a CODE@path as *.
func indexesAsStars(e string) string {
	code, path, _ := strings.Cut(e, "@")
	parts := strings.Split(path, ".")
	for i, p := range parts {
		if p != "" && strings.Trim(p, "0123456789") == "" {
			parts[i] = "*"
		}
	}
	return code + "@" + strings.Join(parts, ".")
}

// jsonAt is the JSON at a dotted path of data ("machine.logonUsers.0.machines"), "missing" if
// there is none.
func jsonAt(t *testing.T, data map[string]json.RawMessage, path string) string {
	t.Helper()
	first, rest, _ := strings.Cut(path, ".")
	v, ok := data[first]
	if !ok {
		return "missing"
	}
	for p := range strings.SplitSeq(rest, ".") {
		if p == "" {
			break
		}
		var i int
		if _, err := fmt.Sscan(p, &i); err == nil {
			var list []json.RawMessage
			if json.Unmarshal(v, &list) != nil || i >= len(list) {
				return "missing"
			}
			v = list[i]
			continue
		}
		var obj map[string]json.RawMessage
		if json.Unmarshal(v, &obj) != nil {
			return "missing"
		}
		if v, ok = obj[p]; !ok {
			return "missing"
		}
	}
	return string(v)
}

// TestGraphStale: when Defender fails, the new calls fall back on their last good answer like
// the others, and extensions.stale names each path served stale.
func TestGraphStale(t *testing.T) {
	t.Parallel()
	s := newService(t, map[string]string{"CACHE_TTL": "0"}, app.Options{})
	q := strings.ReplaceAll(`{ machine(id: "$ID") { alerts { id } logonUsers { accountName machines { id } } } machines(first: 2) { nodes { id } } }`,
		"$ID", s.sim.ExampleMachineID())
	first := graphAsk(t, s, q, nil)
	if len(first.Errors) > 0 || len(first.Ext.Stale) > 0 {
		t.Fatalf("first answer: %+v %+v", first.Errors, first.Ext.Stale)
	}
	for _, e := range []simulator.Endpoint{simulator.EndpointMachineAlerts, simulator.EndpointUserMachines, simulator.EndpointListMachines} {
		s.sim.Inject(e, 500, 1000)
	}
	second := graphAsk(t, s, q, nil)
	if len(second.Errors) > 0 {
		t.Fatalf("errors %+v, want stale answers", second.Errors)
	}
	var paths []string
	for _, st := range second.Ext.Stale {
		var p []string
		for _, el := range st.Path {
			p = append(p, fmt.Sprint(el))
		}
		paths = append(paths, indexesAsStars("@"+strings.Join(p, ".")))
		if st.Reason != "UPSTREAM_UNAVAILABLE" || st.AgeSeconds == nil {
			t.Errorf("stale entry %+v: want UPSTREAM_UNAVAILABLE with an age", st)
		}
	}
	users, _ := s.sim.LogonUsers(s.sim.ExampleMachineID())
	want := append([]string{"@machine.alerts"}, slices.Repeat([]string{"@machine.logonUsers.*.machines"}, len(users))...)
	want = append(want, "@machines")
	if !slices.Equal(paths, want) {
		t.Errorf("stale paths %v, want %v", paths, want)
	}
	for k := range first.Data {
		if string(first.Data[k]) != string(second.Data[k]) {
			t.Errorf("%s: stale answer %s, want the first answer %s", k, second.Data[k], first.Data[k])
		}
	}
}

// TestREADMEGraphExample: the README's graph example costs what the README says for the demo
// device (9 calls cold: details, logon users, alerts, one per each of its 6 accounts), and
// nothing asked again.
func TestREADMEGraphExample(t *testing.T) {
	t.Parallel()
	s := newService(t, nil, app.Options{})
	readme := readFile(t, "../../README.md")
	q := between(t, readme[strings.Index(readme, "### The graph around a device"):], "```graphql\n", "```")
	vars := map[string]any{"id": s.sim.ExampleMachineID()}
	users, _ := s.sim.LogonUsers(s.sim.ExampleMachineID())
	total := func() int {
		n := 0
		for _, c := range s.calls() {
			n += c
		}
		return n
	}
	if a := graphAsk(t, s, q, vars); len(a.Errors) > 0 {
		t.Fatalf("errors %+v", a.Errors)
	}
	if n := total(); n != 9 || len(users) != 6 {
		t.Errorf("%d calls for a device of %d users; the README says 9 calls and 6 accounts", n, len(users))
	}
	graphAsk(t, s, q, vars)
	if n := total(); n != 9 {
		t.Errorf("asked again: %d calls in all, want still 9", n)
	}
}
