package app_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/mdegraph/mdegraph/internal/app"
	"github.com/mdegraph/mdegraph/internal/config"
	"github.com/mdegraph/mdegraph/internal/redistest"
	"github.com/mdegraph/mdegraph/internal/simulator"
)

// The benchmarks measure the service's own cost per GraphQL request once Defender's answers
// are cached: parsing, validation, the cost limit, the loaders, the cache lookup, resolvers,
// the error presenter, the quota extension and JSON encoding. The handler is called directly
// with httptest.NewRecorder, so no socket is involved.

const (
	benchUsersFields   = `logonUsers { id accountName isDomainAdmin logonTypes lastSeen }`
	benchDetailsFields = `computerDnsName osPlatform healthStatus riskScore lastSeen ` + benchUsersFields
)

// benchApp is the service in demo mode with a cache that outlives any benchmark.
type benchApp struct {
	app *app.App
	sim *simulator.Simulator
	id  string
}

func newBenchApp(b *testing.B, more ...string) *benchApp {
	return newBenchAppWith(b, app.Options{}, more...)
}

// newBenchAppWith is newBenchApp built with opts; more are settings, KEY, value, ...
func newBenchAppWith(b *testing.B, opts app.Options, more ...string) *benchApp {
	b.Helper()
	env := map[string]string{"CACHE_TTL": "1h", "NOT_FOUND_TTL": "1h"}
	for i := 0; i+1 < len(more); i += 2 { // more settings, KEY, value, ...
		env[more[i]] = more[i+1]
	}
	cfg, err := config.Load(nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	a, err := app.New(b.Context(), cfg, slog.New(slog.DiscardHandler), opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(a.Close)
	return &benchApp{app: a, sim: a.Simulator, id: a.Simulator.ExampleMachineID()}
}

// apiCalls counts the simulator's API calls (tokens aside).
func (s *benchApp) apiCalls() int {
	n := 0
	for e, st := range s.sim.Stats() {
		if e.IsAPI() {
			n += st.Calls
		}
	}
	return n
}

// serve runs one request through the GraphQL handler.
func (s *benchApp) serve(req func() *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	s.app.GraphQL.ServeHTTP(rec, req())
	return rec
}

func postRequest(body []byte) func() *http.Request {
	return func() *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/query", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		return r
	}
}

// checkAnswer fails unless rec holds, under each of aliases, the example device's logon users
// exactly as the simulator has them (and its computer name when details are asked for).
func (s *benchApp) checkAnswer(b *testing.B, rec *httptest.ResponseRecorder, aliases []string, details bool) {
	b.Helper()
	if rec.Code != http.StatusOK {
		b.Fatalf("HTTP %d: %s", rec.Code, rec.Body)
	}
	var resp struct {
		Data   map[string]json.RawMessage `json:"data"`
		Errors []json.RawMessage          `json:"errors"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || len(resp.Errors) > 0 {
		b.Fatalf("answer %s: %v", rec.Body, err)
	}
	want, _ := s.sim.LogonUsers(s.id)
	m, _ := s.sim.Machine(s.id)
	for _, alias := range aliases {
		var got struct {
			ComputerDNSName *string `json:"computerDnsName"`
			LogonUsers      []struct {
				ID, AccountName string
				IsDomainAdmin   bool
				LogonTypes      []string
			}
		}
		if err := json.Unmarshal(resp.Data[alias], &got); err != nil {
			b.Fatalf("%s: %v", alias, err)
		}
		if details && (got.ComputerDNSName == nil || *got.ComputerDNSName != m.ComputerDNSName) {
			b.Fatalf("%s: computerDnsName %v, want %s", alias, got.ComputerDNSName, m.ComputerDNSName)
		}
		if len(got.LogonUsers) != len(want) || len(want) == 0 {
			b.Fatalf("%s: %d users, want %d (> 0)", alias, len(got.LogonUsers), len(want))
		}
		for i, w := range want {
			g := got.LogonUsers[i]
			if g.ID != w.ID || g.AccountName != w.AccountName || g.IsDomainAdmin != w.IsDomainAdmin ||
				strings.Join(g.LogonTypes, ", ") != w.LogonTypes {
				b.Fatalf("%s: user %d = %+v, want %+v", alias, i, g, w)
			}
		}
	}
}

// benchWarm warms the cache with one request, checks that a second one is answered correctly
// from the cache, then measures the request.
func benchWarm(b *testing.B, req func(s *benchApp) func() *http.Request, aliases []string, details bool, settings ...string) {
	benchWarmOn(b, newBenchApp(b, settings...), req, aliases, details)
}

// benchWarmOn is benchWarm on the service s.
func benchWarmOn(b *testing.B, s *benchApp, req func(s *benchApp) func() *http.Request, aliases []string, details bool) {
	r := req(s)
	s.checkAnswer(b, s.serve(r), aliases, details) // from Defender
	calls := s.apiCalls()
	s.checkAnswer(b, s.serve(r), aliases, details) // from the cache
	if n := s.apiCalls(); n != calls {
		b.Fatalf("the second request made %d upstream calls: the cache is not warm", n-calls)
	}

	b.ReportAllocs()
	for b.Loop() {
		rec := s.serve(r)
		if rec.Code != http.StatusOK {
			b.Fatalf("HTTP %d: %s", rec.Code, rec.Body)
		}
	}
	if n := s.apiCalls(); n != calls {
		b.Fatalf("%d upstream calls during the benchmark, want 0 (warm cache)", n-calls)
	}
}

// postOf is a POST of query, with the example device as $id when withID.
func postOf(query string, withID bool) func(*benchApp) func() *http.Request {
	return func(s *benchApp) func() *http.Request {
		req := map[string]any{"query": query}
		if withID {
			req["variables"] = map[string]string{"id": s.id}
		}
		body, _ := json.Marshal(req)
		return postRequest(body)
	}
}

// BenchmarkQueryWarmCache is the question the service exists to answer: one device's logon
// users, by device id, from a warm cache.
func BenchmarkQueryWarmCache(b *testing.B) {
	benchWarm(b, postOf(`query($id: ID!) { machine(id: $id) { `+benchUsersFields+` } }`, true),
		[]string{"machine"}, false)
}

// BenchmarkQueryWarmCacheRedis is BenchmarkQueryWarmCache with REDIS_URL: the quota and the
// answers shared through Redis (a local redis-server), the answer served from the in-process
// layer in front of it, the quota read from Redis for extensions.quota.
func BenchmarkQueryWarmCacheRedis(b *testing.B) {
	srv := redistest.New(b)
	benchWarm(b, postOf(`query($id: ID!) { machine(id: $id) { `+benchUsersFields+` } }`, true),
		[]string{"machine"}, false, "REDIS_URL", srv.URL(), "REPLICAS", "1")
}

// BenchmarkQueryWarmCacheDetails adds device detail fields (a second cached answer per device).
func BenchmarkQueryWarmCacheDetails(b *testing.B) {
	benchWarm(b, postOf(`query($id: ID!) { machine(id: $id) { `+benchDetailsFields+` } }`, true),
		[]string{"machine"}, true)
}

// BenchmarkQueryWarmCache20Aliases asks for the same device's details and users under 20
// aliases: 20 resolvers sharing one loader key per endpoint.
func BenchmarkQueryWarmCache20Aliases(b *testing.B) {
	benchWarm(b, postOfAliases(twentyAliases), twentyAliases, true)
}

// twentyAliases are BenchmarkQueryWarmCache20Aliases's.
var twentyAliases = func() []string {
	aliases := make([]string, 20)
	for i := range aliases {
		aliases[i] = fmt.Sprintf("m%d", i)
	}
	return aliases
}()

// postOfAliases is a POST asking the example device's details and users under each alias.
func postOfAliases(aliases []string) func(*benchApp) func() *http.Request {
	return func(s *benchApp) func() *http.Request {
		var q strings.Builder
		q.WriteString("{")
		for _, a := range aliases {
			fmt.Fprintf(&q, " %s: machine(id: %q) { %s }", a, s.id, benchDetailsFields)
		}
		q.WriteString(" }")
		return postOf(q.String(), false)(s)
	}
}

// BenchmarkQueryWarmCachePersistedGET is a frontend's cacheable GET of an automatic persisted
// query: only the hash and the variables travel in the URL.
func BenchmarkQueryWarmCachePersistedGET(b *testing.B) {
	query := `query($id: ID!) { machine(id: $id) { ` + benchUsersFields + ` } }`
	sum := sha256.Sum256([]byte(query))
	ext := `{"persistedQuery":{"version":1,"sha256Hash":"` + hex.EncodeToString(sum[:]) + `"}}`
	first := true
	benchWarm(b, func(s *benchApp) func() *http.Request {
		vars := `{"id":"` + s.id + `"}`
		register := url.Values{"query": {query}, "variables": {vars}, "extensions": {ext}}.Encode()
		hashOnly := url.Values{"variables": {vars}, "extensions": {ext}}.Encode()
		return func() *http.Request {
			// The first request registers the query with its text, as an APQ client does after
			// PERSISTED_QUERY_NOT_FOUND; every later one sends the hash only.
			if first {
				first = false
				return preflighted(httptest.NewRequest(http.MethodGet, "/query?"+register, nil))
			}
			return preflighted(httptest.NewRequest(http.MethodGet, "/query?"+hashOnly, nil))
		}
	}, []string{"machine"}, false)
}

// BenchmarkQueryWarmCacheParallel is BenchmarkQueryWarmCache from many concurrent clients
// (b.RunParallel, so pb.Next rather than b.Loop): ns/op here approaches the CPU the service
// spends per request divided by GOMAXPROCS. (Cached answers skip the dataloaders' batch
// window, so a lone request does not sleep either.)
func BenchmarkQueryWarmCacheParallel(b *testing.B) {
	s := newBenchApp(b)
	r := postOf(`query($id: ID!) { machine(id: $id) { `+benchUsersFields+` } }`, true)(s)
	s.checkAnswer(b, s.serve(r), []string{"machine"}, false)
	calls := s.apiCalls()
	b.ReportAllocs()
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if rec := s.serve(r); rec.Code != http.StatusOK {
				b.Errorf("HTTP %d: %s", rec.Code, rec.Body)
				return
			}
		}
	})
	if n := s.apiCalls(); n != calls {
		b.Fatalf("%d upstream calls during the benchmark, want 0 (warm cache)", n-calls)
	}
}

// preflighted adds the header that shows the CSRF check a GET was not forged by another site.
func preflighted(r *http.Request) *http.Request {
	r.Header.Set("Apollo-Require-Preflight", "true")
	return r
}

// BenchmarkQueryWarmCacheSignedIn is BenchmarkQueryWarmCache from a signed-in demo person
// (adele, who sees the example device): the token is verified on every request (RS256), and
// Defender is asked on-behalf-of her, with the exchanged token and her answers cached.
func BenchmarkQueryWarmCacheSignedIn(b *testing.B) {
	benchWarm(b, func(s *benchApp) func() *http.Request {
		token, err := s.sim.SignIn("adele")
		if err != nil {
			b.Fatal(err)
		}
		post := postOf(`query($id: ID!) { machine(id: $id) { `+benchUsersFields+` } }`, true)(s)
		return func() *http.Request {
			r := post()
			r.Header.Set("Authorization", "Bearer "+token)
			return r
		}
	}, []string{"machine"}, false)
}

// noResponseCache turns the response cache off: every request runs its resolvers, answered
// from the loaders' cache.
var noResponseCache = []string{"RESPONSE_CACHE_BYTES", "0"}

// BenchmarkQueryWarmCacheExecuted is BenchmarkQueryWarmCache with the response cache off.
func BenchmarkQueryWarmCacheExecuted(b *testing.B) {
	benchWarm(b, postOf(`query($id: ID!) { machine(id: $id) { `+benchUsersFields+` } }`, true),
		[]string{"machine"}, false, noResponseCache...)
}

// BenchmarkQueryWarmCache20AliasesExecuted is BenchmarkQueryWarmCache20Aliases with the
// response cache off.
func BenchmarkQueryWarmCache20AliasesExecuted(b *testing.B) {
	benchWarm(b, postOfAliases(twentyAliases), twentyAliases, true, noResponseCache...)
}
