package app_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/mdegraph/mdegraph/internal/app"
	"github.com/mdegraph/mdegraph/internal/config"
	"github.com/mdegraph/mdegraph/internal/querylimit"
	"github.com/mdegraph/mdegraph/internal/web"
)

// between returns the text of s between the first start and the next end after it.
func between(t *testing.T, s, start, end string) string {
	t.Helper()
	_, after, ok := strings.Cut(s, start)
	text, _, ok2 := strings.Cut(after, end)
	if !ok || !ok2 {
		t.Fatalf("no text between %q and %q", start, end)
	}
	return text
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// dashboard is what a frontend's device table asks for n devices at once.
func dashboard(ids []string, users bool) string {
	var b strings.Builder
	b.WriteString("query Dashboard {\n")
	for i, id := range ids {
		fmt.Fprintf(&b, "  d%d: machine(id: %q) { id computerDnsName osPlatform osVersion healthStatus riskScore exposureLevel lastSeen lastIpAddress machineTags", i, id)
		if users {
			b.WriteString(" logonUsers { id isDomainAdmin lastSeen }")
		}
		b.WriteString(" }\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// TestHonestQueriesPassTheDefaults: every query this project shows or sends passes the default
// query limits, and answers without error in demo mode: the README's example, the example
// page's query, the playground's default query and its docs (GraphiQL's real introspection
// query), and a 50-device dashboard.
func TestHonestQueriesPassTheDefaults(t *testing.T) {
	t.Parallel()
	s := newService(t, nil, app.Options{})
	var ids []string
	for _, m := range s.sim.Machines()[:50] {
		ids = append(ids, m.ID)
	}
	device := map[string]any{"id": s.sim.ExampleMachineID()}
	tests := []struct {
		name  string
		query string
		vars  map[string]any
	}{
		{"README example", between(t, readFile(t, "../../README.md"), "```graphql\n", "```"), device},
		{"example page", between(t, readFile(t, "../web/static/example/example.js"), "const QUERY = `", "`;"), device},
		{"playground default", web.DefaultQuery, device},
		{"GraphiQL's introspection query", readFile(t, "../querylimit/testdata/graphiql-introspection.graphql"), nil},
		{"introspection with every option", readFile(t, "../querylimit/testdata/full-introspection.graphql"), nil},
		{"50-device dashboard", dashboard(ids, false), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := s.query(t, tt.query, tt.vars)
			if len(r.Errors) > 0 || len(r.Data) == 0 {
				t.Errorf("errors %v (codes %v), data %d entries; want an answer", r.Errors, codes(r), len(r.Data))
			}
		})
	}
	// With logon users, the dashboard is 52 calls cold, over MAX_UPSTREAM_CALLS_PER_QUERY: the
	// query limits admit it, the estimate decides.
	cfg, err := config.Load(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if e := cfg.QueryLimits.Check(dashboard(ids, true)); e != nil {
		t.Errorf("the dashboard with logon users exceeds a default limit: %v", e)
	}
	if n := querylimit.CountTokens(dashboard(ids, true)); n*2 > cfg.QueryLimits.Tokens {
		t.Errorf("the dashboard has %d tokens: less than twice that is left for bigger honest queries", n)
	}
}

// TestHostileQueriesRefusedByTheDefaults: the two reports, 1 MiB bodies refused unread
// by the body bound (their declared length says enough), and what fits under the bound
// refused by the query limits before anything is parsed.
func TestHostileQueriesRefusedByTheDefaults(t *testing.T) {
	t.Parallel()
	s := newService(t, nil, app.Options{})
	body := func(q string) string {
		b, _ := json.Marshal(map[string]string{"query": q})
		return string(b)
	}
	repeat := func(format string, n int) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			fmt.Fprintf(&b, format, i)
		}
		return b.String() + "}"
	}
	tests := []struct {
		name, body, code string
		status           int
	}{
		{"55,000 aliases of __typename", body(repeat("a%d: __typename ", 55000)), "BAD_REQUEST", http.StatusRequestEntityTooLarge},
		{"20,000 aliases of quota", body(repeat("a%d: quota { endpoint call queued } ", 20000)), "BAD_REQUEST", http.StatusRequestEntityTooLarge},
		{"3,000 aliases of __typename", body(repeat("a%d: __typename ", 3000)), "QUERY_TOO_MANY_ALIASES", http.StatusOK},
		{"1,300 aliases of quota", body(repeat("a%d: quota { endpoint call queued } ", 1300)), "QUERY_TOO_MANY_ALIASES", http.StatusOK},
		{"a list of 30,000 values", body("{ machine(id: [" + strings.Repeat("1 ", 30000) + "]) { id } }"), "QUERY_TOO_MANY_TOKENS", http.StatusOK},
	}
	for _, tt := range tests {
		resp, err := http.Post(s.url, "application/json", strings.NewReader(tt.body))
		if err != nil {
			t.Fatal(err)
		}
		var r response
		err = json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		if err != nil || resp.StatusCode != tt.status || len(r.Errors) != 1 || codes(r)[0] != tt.code || r.Data != nil {
			t.Errorf("%s (%d bytes): status %d, codes %v, data %v (%v); want %d, %s, no data", tt.name, len(tt.body), resp.StatusCode, codes(r), r.Data, err, tt.status, tt.code)
		}
	}
}
