package resolvers_test

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/mdegraph/mdegraph/resolvers"
)

// TestUpstreamCallsGraph: the estimate counts the calls of the graph around a device, one per
// distinct key (a page as one call, its devices as first devices), knows which the cache
// answers, and is exactly what the query spends when nothing is left to the answers.
func TestUpstreamCallsGraph(t *testing.T) {
	t.Parallel()
	id := func(i int) string { return `"` + deviceID(i) + `"` }
	tenUsers := make([]string, 10)
	for i := range tenUsers {
		tenUsers[i] = id(i)
	}
	tests := []struct {
		name      string
		warm      []string
		query     string
		estimate  int
		unbounded bool
		calls     []string // sorted; nil: the query's calls are not listed, only counted
		nCalls    int
		codes     []string // the answer's errors
	}{
		{name: "alerts alone prove the device: one call", query: `{ machine(id: ` + id(1) + `) { id alerts { id } } }`,
			estimate: 1, calls: []string{"alerts " + deviceID(1)}},
		{name: "alerts by name: details resolve it first", query: `{ machine(id: "host-1") { alerts { id } } }`,
			estimate: 2, calls: []string{"alerts " + deviceID(1), "get host-1"}},
		{name: "a refused first makes no alerts call, so the details prove the device", query: `{ machine(id: ` + id(1) + `) { alerts(first: 0) { id } } }`,
			estimate: 1, calls: []string{"get " + deviceID(1)}, codes: []string{resolvers.CodeBadUserInput}},
		{name: "two selections of alerts: one call", query: `{ machine(id: ` + id(1) + `) { a: alerts(first: 1) { id } b: alerts { title } logonUsers { id } } }`,
			estimate: 2, calls: []string{"alerts " + deviceID(1), "users " + deviceID(1)}},
		{name: "a user's machines: unknown until the logon users arrive", query: `{ machine(id: ` + id(1) + `) { logonUsers { machines { id } } } }`,
			estimate: 1, unbounded: true, calls: []string{"usermachines u", "users " + deviceID(1)}},
		{name: "the logon users cached: the names are known", warm: []string{`{ machine(id: ` + id(1) + `) { logonUsers { id } } }`},
			query: `{ machine(id: ` + id(1) + `) { logonUsers { machines { id } } } }`, estimate: 1, calls: []string{"usermachines u"}},
		{name: "everything cached, three levels deep", warm: []string{`{ machine(id: ` + id(1) + `) { logonUsers { machines { alerts { id } } } } }`},
			query: `{ machine(id: ` + id(1) + `) { logonUsers { machines { alerts { id } } } } }`, estimate: 0, calls: []string{}},
		{name: "ten devices' users' machines: one call per distinct account", query: "{ " + machines(tenUsers, "logonUsers { machines { id } }") + "}",
			estimate: 10, unbounded: true, nCalls: 11},
		{name: "a page: one call", query: `{ machines(first: 3) { nodes { id computerDnsName } pageInfo { hasNextPage } } }`,
			estimate: 1, calls: []string{"page 0+4"}},
		{name: "a page's devices' alerts: first more", query: `{ machines(first: 3) { edges { node { alerts { id } } } } }`,
			estimate: 4, calls: []string{"alerts " + deviceID(0), "alerts " + deviceID(1), "alerts " + deviceID(2), "page 0+4"}},
		{name: "a cached page: its devices are known", warm: []string{`{ machines(first: 3) { nodes { id } } }`, `{ machine(id: ` + id(1) + `) { alerts { id } } }`},
			query: `{ machines(first: 3) { nodes { alerts { id } } } }`, estimate: 2, calls: []string{"alerts " + deviceID(0), "alerts " + deviceID(2)}},
		{name: "a page's devices reached twice: counted once", query: `{ machines(first: 3) { edges { node { alerts { id } } } nodes { alerts { id } } } }`,
			estimate: 4, calls: []string{"alerts " + deviceID(0), "alerts " + deviceID(1), "alerts " + deviceID(2), "page 0+4"}},
		{name: "one page asked twice: one call", query: `{ a: machines(first: 2) { nodes { id } } b: machines(first: 2) { edges { cursor } } }`,
			estimate: 1, calls: []string{"page 0+3"}},
		{name: "__typename alone needs no page", query: `{ machines { __typename } }`, estimate: 0, calls: []string{}},
		{name: "a refused first: nothing", query: `{ machines(first: 0) { nodes { alerts { id } } } }`, estimate: 0, calls: []string{},
			codes: []string{resolvers.CodeBadUserInput}},
		{name: "a filter: one call", query: `{ machines(first: 2, filter: {healthStatus: ACTIVE, machineTag: "o'brien", deviceGroupId: 12, lastSeenAfter: "2026-01-01T00:00:00Z"}) { nodes { id } } }`,
			estimate: 1, calls: []string{"page 0+3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newCostHarness(t, 1000)
			for _, q := range tt.warm {
				if a := c.run(t, q, nil); len(a.codes) > 0 {
					t.Fatalf("warming %s: %v", q, a.codes)
				}
			}
			a := c.run(t, tt.query, nil)
			if !slices.Equal(a.codes, tt.codes) {
				t.Fatalf("errors %v, want %v: %s", a.codes, tt.codes, a.body)
			}
			slices.Sort(a.calls)
			if a.estimate != tt.estimate || a.unbounded != tt.unbounded {
				t.Errorf("estimate %d (unbounded %v), want %d (%v)", a.estimate, a.unbounded, tt.estimate, tt.unbounded)
			}
			switch {
			case tt.calls != nil && !slices.Equal(a.calls, tt.calls):
				t.Errorf("calls %q, want %q", a.calls, tt.calls)
			case tt.calls == nil && len(a.calls) != tt.nCalls:
				t.Errorf("%d calls %q, want %d", len(a.calls), a.calls, tt.nCalls)
			}
			if !tt.unbounded && len(a.calls) > a.estimate {
				t.Errorf("%d calls above the estimate %d", len(a.calls), a.estimate)
			}
		})
	}
}

// TestCallBudgetAtExecution: a query whose calls only its answers tell cannot spend more than
// the maximum per query: the calls past it are refused field by field with
// QUERY_TOO_EXPENSIVE at their paths, and the rest of the answer stays.
func TestCallBudgetAtExecution(t *testing.T) {
	t.Parallel()
	c := newCostHarness(t, 3)
	// logonusers of device 1, machines of "u" (devices 0 to 4), then the logon users of the
	// four others: two calls left, and four wanted.
	a := c.run(t, `{ machine(id: "`+deviceID(1)+`") { logonUsers { machines { id logonUsers { id } } } } }`, nil)
	if !a.unbounded || a.estimate > 3 {
		t.Fatalf("estimate %d (unbounded %v): want at most 3, and unbounded", a.estimate, a.unbounded)
	}
	if len(a.calls) != 3 {
		t.Errorf("%d calls %q, want the maximum, 3", len(a.calls), a.calls)
	}
	var resp struct {
		Data struct {
			Machine struct {
				LogonUsers []struct {
					Machines []struct {
						ID         string            `json:"id"`
						LogonUsers []json.RawMessage `json:"logonUsers"`
					} `json:"machines"`
				} `json:"logonUsers"`
			} `json:"machine"`
		} `json:"data"`
		Errors []struct {
			Path       []any          `json:"path"`
			Extensions map[string]any `json:"extensions"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(a.body, &resp); err != nil {
		t.Fatal(err)
	}
	ms := resp.Data.Machine.LogonUsers[0].Machines
	refused := 0
	for _, e := range resp.Errors {
		if e.Extensions["code"] != resolvers.CodeQueryTooExpensive || e.Extensions["maxUpstreamCalls"] != float64(3) || len(e.Path) != 6 || e.Path[5] != "logonUsers" {
			t.Errorf("error %+v: want QUERY_TOO_EXPENSIVE with maxUpstreamCalls at a device's logonUsers", e)
			continue
		}
		if ms[int(e.Path[4].(float64))].LogonUsers != nil {
			t.Errorf("error at %v, yet that field has a value", e.Path)
		}
		refused++
	}
	answered := 0
	for _, m := range ms {
		if m.LogonUsers != nil {
			answered++
		}
	}
	// Device 1's own logon users were fetched first; one more device could be fetched.
	if len(ms) != 5 || refused != 3 || answered != 2 {
		t.Errorf("%d devices, %d refused, %d answered; want 5, 3 and 2:\n%s", len(ms), refused, answered, a.body)
	}
}
