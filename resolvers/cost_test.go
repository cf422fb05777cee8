package resolvers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/mdegraph/mdegraph/graph"
	"github.com/mdegraph/mdegraph/internal/defender"
	"github.com/mdegraph/mdegraph/internal/loaders"
	"github.com/mdegraph/mdegraph/resolvers"
)

// upstream is a fake Defender for the loaders: devices 0..n-1, device i named host-i, and a
// record of every call and its argument.
type upstream struct {
	n     int
	mu    sync.Mutex
	calls []string // "get <ref>", "list <ids>", "users <id>"
}

func deviceID(i int) string { return fmt.Sprintf("%040x", i+1) }

func (u *upstream) record(call string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.calls = append(u.calls, call)
}

func (u *upstream) taken() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := u.calls
	u.calls = nil
	return out
}

func (u *upstream) find(ref string) *defender.Machine {
	for i := range u.n {
		if ref == deviceID(i) || ref == fmt.Sprintf("host-%d", i) {
			return &defender.Machine{ID: deviceID(i), ComputerDNSName: fmt.Sprintf("host-%d", i)}
		}
	}
	return nil
}

func notFound(ref string) error {
	return &defender.ErrorResponse{StatusCode: http.StatusNotFound, Message: "Machine " + ref + " was not found"}
}

func (u *upstream) GetMachine(_ context.Context, ref string) (*defender.Machine, error) {
	u.record("get " + ref)
	if m := u.find(ref); m != nil {
		return m, nil
	}
	return nil, notFound(ref)
}

func (u *upstream) GetMachines(_ context.Context, ids []string) ([]defender.Machine, error) {
	u.record("list " + strings.Join(ids, ","))
	var out []defender.Machine
	for _, id := range ids {
		if m := u.find(id); m != nil {
			out = append(out, *m)
		}
	}
	return out, nil
}

func (u *upstream) LogonUsers(_ context.Context, id string) ([]defender.User, error) {
	u.record("users " + id)
	if u.find(id) == nil {
		return nil, notFound(id)
	}
	return []defender.User{{ID: `contoso\u`, AccountName: "u"}}, nil
}

// The wider graph of the fake: every device has one alert, its logon user is account "u",
// and "u" logged on to devices 0 to 4; the list holds the devices in order.
var _ loaders.GraphSource = (*upstream)(nil)

func (u *upstream) Alerts(_ context.Context, id string) ([]defender.Alert, error) {
	u.record("alerts " + id)
	if u.find(id) == nil {
		return nil, notFound(id)
	}
	return []defender.Alert{{ID: "a-" + id}}, nil
}

func (u *upstream) UserMachines(_ context.Context, name defender.AccountName) ([]defender.Machine, error) {
	u.record("usermachines " + name.String())
	if name != "u" {
		return []defender.Machine{}, nil
	}
	return u.list(0, 5), nil
}

func (u *upstream) ListMachines(_ context.Context, opts defender.ListOptions) ([]defender.Machine, error) {
	u.record(fmt.Sprintf("page %d+%d", opts.Skip, opts.Top))
	return u.list(opts.Skip, opts.Top), nil
}

// list is devices skip to skip+top-1, those that exist.
func (u *upstream) list(skip, top int) []defender.Machine {
	var out []defender.Machine
	for i := skip; i < min(skip+top, u.n); i++ {
		out = append(out, *u.find(deviceID(i)))
	}
	return out
}

// estimates keeps the estimate of each operation, taken where CostLimit takes it.
type estimates struct {
	mu        sync.Mutex
	last      int
	unbounded bool
}

func (*estimates) ExtensionName() string                   { return "RecordEstimate" }
func (*estimates) Validate(graphql.ExecutableSchema) error { return nil }
func (e *estimates) MutateOperationContext(ctx context.Context, opCtx *graphql.OperationContext) *gqlerror.Error {
	e.mu.Lock()
	defer e.mu.Unlock()
	est := resolvers.EstimateUpstreamCalls(ctx, opCtx)
	e.last, e.unbounded = est.Calls, est.Unbounded
	return nil
}

// costHarness runs queries through gqlgen, the resolvers and the loaders over the fake
// upstream, as the service does, and reports each query's estimate and the calls it made.
type costHarness struct {
	up  *upstream
	est *estimates
	h   http.Handler
}

func newCostHarness(t testing.TB, max int) *costHarness {
	t.Helper()
	return newCostHarnessTimeout(t, max, func() time.Duration { return 30 * time.Second })
}

// newCostHarnessTimeout is newCostHarness whose requests' deadline is timeout() away.
func newCostHarnessTimeout(t testing.TB, max int, timeout func() time.Duration) *costHarness {
	t.Helper()
	up := &upstream{n: 30}
	est := &estimates{}
	srv := handler.New(graph.NewExecutableSchema(graph.Config{Resolvers: &resolvers.Resolver{}}))
	srv.AddTransport(transport.POST{})
	srv.Use(est)
	srv.Use(resolvers.CostLimit{Max: max})
	srv.SetErrorPresenter(resolvers.ErrorPresenter(slog.New(slog.DiscardHandler)))
	// A batch window long enough that a busy test machine cannot split one request's batch.
	f := loaders.NewFetcher(loaders.Options{Source: up, CacheTTL: time.Hour, NotFoundTTL: time.Hour, BatchWait: 50 * time.Millisecond})
	h := loaders.Middleware(f, func(*http.Request) string { return "app" }, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), timeout())
		defer cancel()
		srv.ServeHTTP(w, r.WithContext(ctx))
	}))
	return &costHarness{up: up, est: est, h: h}
}

type costAnswer struct {
	estimate  int
	unbounded bool
	calls     []string
	codes     []string
	body      []byte
}

func (c *costHarness) run(t testing.TB, query string, vars map[string]any) costAnswer {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req := httptest.NewRequest(http.MethodPost, "/query", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	c.est.last = -1
	c.h.ServeHTTP(rec, req)
	var resp struct {
		Errors []struct {
			Extensions map[string]any `json:"extensions"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatalf("answer %s: %v", rec.Body, err)
	}
	a := costAnswer{estimate: c.est.last, unbounded: c.est.unbounded, calls: c.up.taken(), body: rec.Body.Bytes()}
	for _, e := range resp.Errors {
		code, _ := e.Extensions["code"].(string)
		a.codes = append(a.codes, code)
	}
	return a
}

// aliases builds query ($v: ID!, $n: ID!) { v: … n: … m0: machine(id: <arg 0>) { fields } m1: ... }.
func aliases(args []string, fields string) string {
	return "query ($v: ID!, $n: ID!) { v: machine(id: $v) { __typename } n: machine(id: $n) { __typename } " + machines(args, fields) + "}"
}

// machines is m0: machine(id: <arg 0>) { fields } m1: ...
func machines(args []string, fields string) string {
	var b strings.Builder
	for i, a := range args {
		fmt.Fprintf(&b, "m%d: machine(id: %s) { %s } ", i, a, fields)
	}
	return b.String()
}

// TestUpstreamCallsIDSpellings: an id costs the same in the estimate however it is spelled,
// as gqlgen hands it to the resolver, and the estimate is exactly what the query spends.
// The reproduction: twenty integer ids with MAX_UPSTREAM_CALLS_PER_QUERY=5 made
// twenty calls, since the estimate skipped every id that was not a GraphQL string.
func TestUpstreamCallsIDSpellings(t *testing.T) {
	t.Parallel()
	ints := make([]string, 20)
	for i := range ints {
		ints[i] = fmt.Sprint(1000 + i)
	}
	tests := []struct {
		name  string
		query string
		vars  map[string]any
		calls int // what the query spends, when the estimate cannot know it (unknown devices)
	}{
		{"twenty integer literals", aliases(ints, "osPlatform"), map[string]any{"v": "1", "n": "2"}, -1},
		{"integer literals and variables", aliases([]string{"1000", `"1000"`, "$v", "$n"}, "osPlatform"),
			map[string]any{"v": json.Number("1000"), "n": 1001}, -1},
		{"a device id as a string, a variable, and upper case", aliases([]string{`"` + deviceID(1) + `"`, "$v", `"` + strings.ToUpper(deviceID(1)) + `"`}, "logonUsers { id }"),
			map[string]any{"v": deviceID(1), "n": deviceID(2)}, -1},
		// Unknown devices (deviceID(79), nope) end at their details call: the estimate counts
		// their logon users too, since it cannot know. 4 is refused (all digits) and costs
		// nothing.
		{"names and ids, some unknown", aliases([]string{`"host-1"`, `"HOST-2"`, `"` + deviceID(3) + `"`, `"` + deviceID(79) + `"`, `"nope"`, "4"}, "osPlatform logonUsers { id }"),
			map[string]any{"v": "host-1", "n": deviceID(1)}, 7},
		{"refused ids cost nothing", aliases([]string{`""`, `"a..b"`, `"` + strings.Repeat("a", 35) + `"`}, "osPlatform"),
			map[string]any{"v": "../x", "n": "-1"}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newCostHarness(t, 1000)
			a := c.run(t, tt.query, tt.vars)
			if a.estimate < 0 {
				t.Fatalf("no estimate taken; codes %v", a.codes)
			}
			switch {
			case tt.calls < 0 && a.estimate != len(a.calls):
				t.Errorf("estimate %d, but the query made %d calls: %v", a.estimate, len(a.calls), a.calls)
			case tt.calls >= 0 && (len(a.calls) != tt.calls || a.estimate < tt.calls):
				t.Errorf("estimate %d, calls %d (%v); want %d calls, and an estimate at least that", a.estimate, len(a.calls), a.calls, tt.calls)
			}
			checkCallArguments(t, a.calls)
		})
	}
	t.Run("the issue's twenty integers are refused over 5", func(t *testing.T) {
		t.Parallel()
		c := newCostHarness(t, 5)
		a := c.run(t, aliases(ints, "osPlatform"), map[string]any{"v": "1", "n": "2"})
		want := 0
		for _, id := range append(ints, "1", "2") {
			if _, err := defender.ParseMachineRef(id); err == nil {
				want++
			}
		}
		if a.estimate != want {
			t.Errorf("estimate %d, want %d (every id the validator accepts)", a.estimate, want)
		}
		if want > 5 && (len(a.codes) != 1 || a.codes[0] != resolvers.CodeQueryTooExpensive || len(a.calls) != 0) {
			t.Errorf("codes %v after %d calls; want QUERY_TOO_EXPENSIVE and none", a.codes, len(a.calls))
		}
	})
}

// TestUpstreamCallsKnowTheCache: what is cached until the request's deadline costs nothing,
// a computer name the cache resolves counts as its device id, and the estimate stays exactly
// what the query spends.
func TestUpstreamCallsKnowTheCache(t *testing.T) {
	t.Parallel()
	id1, id2 := `"`+deviceID(1)+`"`, `"`+deviceID(2)+`"`
	tests := []struct {
		name     string
		warm     []string // queries run first
		query    string
		estimate int
		calls    int
	}{
		// get host-1, get id1, and the logon users of each, since the estimate cannot know
		// that host-1 is id1: they turn out to be one device, so one users call.
		{"cold: a name and its id, details and users", nil,
			aliases([]string{`"host-1"`, id1}, "osPlatform logonUsers { id }"), 4, 3},
		{"the name resolved by the cache: one device", []string{aliases([]string{`"host-1"`}, "osPlatform")},
			aliases([]string{`"host-1"`, id1}, "osPlatform logonUsers { id }"), 1, 1}, // users of id1
		{"everything cached", []string{aliases([]string{`"host-1"`, id1}, "osPlatform logonUsers { id }")},
			aliases([]string{`"host-1"`, id1, `"HOST-1"`}, "osPlatform logonUsers { id }"), 0, 0},
		{"users cached, details not", []string{aliases([]string{id1, id2}, "logonUsers { id }")},
			aliases([]string{id1, id2}, "osPlatform logonUsers { id }"), 1, 1}, // one list call
		{"a cached 404: its fields cost nothing", []string{aliases([]string{`"nope"`}, "osPlatform")},
			aliases([]string{`"nope"`}, "osPlatform logonUsers { id }"), 0, 0},
		{"a cached 404 does not stop a call that skips the details", []string{aliases([]string{`"` + deviceID(99) + `"`}, "osPlatform")},
			aliases([]string{`"` + deviceID(99) + `"`}, "logonUsers { id }"), 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newCostHarness(t, 1000)
			vars := map[string]any{"v": deviceID(5), "n": deviceID(5)}
			for _, q := range tt.warm {
				c.run(t, q, vars)
			}
			c.run(t, aliases(nil, ""), vars) // device 5's details, cached for every query below
			a := c.run(t, tt.query, vars)
			if a.estimate != tt.estimate || len(a.calls) != tt.calls {
				t.Errorf("estimate %d, calls %v; want an estimate of %d and %d calls", a.estimate, a.calls, tt.estimate, tt.calls)
			}
		})
	}
}

// TestUpstreamCallsNearExpiry: an answer that expires before the request's deadline counts as
// a call, since the resolver may find it gone.
func TestUpstreamCallsNearExpiry(t *testing.T) {
	t.Parallel()
	timeout := time.Minute
	c := newCostHarnessTimeout(t, 1000, func() time.Duration { return timeout })
	q := aliases([]string{`"host-1"`}, "osPlatform")
	vars := map[string]any{"v": "host-1", "n": "host-1"}
	c.run(t, q, vars)
	if a := c.run(t, q, vars); a.estimate != 0 {
		t.Errorf("cached for an hour, deadline in a minute: estimate %d, want 0", a.estimate)
	}
	timeout = 2 * time.Hour
	if a := c.run(t, q, vars); a.estimate != 1 || len(a.calls) != 0 {
		t.Errorf("cached for an hour, deadline in two: estimate %d with %d calls, want 1 (a bound) and 0", a.estimate, len(a.calls))
	}
}

// FuzzUpstreamCallsBound: whatever mix of ids, spellings, fields, pages and cached answers, a
// query never makes more upstream calls than its estimate when the estimate is a bound, never
// more than the maximum per query whatever its answers hold, and never calls with an argument
// the validator refuses.
func FuzzUpstreamCallsBound(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7}, []byte{1, 2})
	f.Add([]byte{9, 9, 9, 17, 33, 65, 129}, []byte{})
	f.Add([]byte{2, 18, 34, 50, 66}, []byte{2, 66, 18})
	f.Add([]byte{0, 53, 1, 2, 3, 4, 5, 6, 3}, []byte{0, 53, 1})
	f.Add([]byte{0, 55, 1, 2, 3, 4, 5, 6, 5}, []byte{})
	f.Add([]byte{0, 1, 54, 2, 3, 4, 5, 6, 7}, []byte{0, 1, 54, 2, 3, 4, 5, 6, 7})
	f.Add([]byte{0, 56, 1}, []byte{})                   // alerts(first: 0): refused, so the details prove the device
	f.Add([]byte{0, 59, 1, 2, 3}, []byte{0, 57, 1})     // three levels deep, the logon users warm
	f.Add([]byte{0, 58, 1, 2, 3, 4, 5, 6, 2}, []byte{}) // and a page of two
	refs := []string{deviceID(1), strings.ToUpper(deviceID(2)), "host-1", "HOST-3", "1000", deviceID(99), "nope", "", "a..b", "4"}
	fieldSets := []string{"logonUsers { id }", "osPlatform", "id", "osPlatform logonUsers { id }", "__typename logonUsers { id }",
		"alerts { id }", "alerts(first: 0) { id }", "logonUsers { machines { id } }", "alerts(first: 1) { id } logonUsers { machines { alerts { id } } }",
		"osPlatform alerts { id } logonUsers { machines { logonUsers { id } } }"}
	const maxCalls = 12
	build := func(spec []byte) (string, map[string]any) {
		vars := map[string]any{"v": "host-2", "n": json.Number("5")}
		var args []string
		fields := fieldSets[0]
		for i, b := range spec {
			if i >= 8 {
				break
			}
			ref := refs[int(b)%len(refs)]
			switch b / 16 % 4 {
			case 0:
				args = append(args, `"`+ref+`"`)
			case 1:
				vars["v"] = ref
				args = append(args, "$v")
			case 2:
				if ref == "1000" || ref == "4" {
					args = append(args, ref) // an integer literal
				} else {
					args = append(args, `"`+ref+`"`)
				}
			case 3:
				fields = fieldSets[int(b)%len(fieldSets)]
			}
		}
		q := aliases(args, fields)
		if len(spec) > 8 { // a page of devices too, with the same fields
			q = strings.TrimSuffix(q, "}") + fmt.Sprintf("c: machines(first: %d) { nodes { %s } } }", int(spec[8]%8), fields)
		}
		return q, vars
	}
	f.Fuzz(func(t *testing.T, spec, warm []byte) {
		c := newCostHarness(t, maxCalls)
		if len(warm) > 0 {
			q, vars := build(warm)
			c.run(t, q, vars)
		}
		q, vars := build(spec)
		a := c.run(t, q, vars)
		switch {
		case a.estimate > maxCalls && len(a.calls) > 0:
			t.Errorf("estimate %d over the maximum %d, yet %d calls: %v\nquery %s %v", a.estimate, maxCalls, len(a.calls), a.calls, q, vars)
		case !a.unbounded && max(a.estimate, 0) < len(a.calls): // -1: refused before the estimate
			t.Errorf("estimate %d, but %d calls: %v\nquery %s %v", a.estimate, len(a.calls), a.calls, q, vars)
		case len(a.calls) > maxCalls:
			t.Errorf("%d calls, more than the maximum %d: %v\nquery %s %v", len(a.calls), maxCalls, a.calls, q, vars)
		}
		checkCallArguments(t, a.calls)
	})
}

// checkCallArguments fails the test for a call with an argument the validators refuse.
func checkCallArguments(t *testing.T, calls []string) {
	t.Helper()
	for _, call := range calls {
		kind, arg, _ := strings.Cut(call, " ")
		switch kind {
		case "usermachines":
			if n, err := defender.ParseAccountName(arg); err != nil || n.String() != arg {
				t.Errorf("call %q: account name %q is not what the validator accepts (%v)", call, arg, err)
			}
		case "page":
		default:
			for ref := range strings.SplitSeq(arg, ",") {
				if r, err := defender.ParseMachineRef(ref); err != nil || r.String() != ref {
					t.Errorf("call %q: argument %q is not what the validator accepts (%v)", call, ref, err)
				}
			}
		}
	}
}
