package app_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/mdegraph/mdegraph/internal/gqlhttp"
)

// hostileBodies are the reports (1 MiB bodies) and the costliest bodies of their kind
// that fit under the default body bound (gqlhttp.MaxBodyBytes), with the code each must be
// refused with.
var hostileBodies = []struct {
	name, query, code string
}{
	{"aliases-55000-1MiB", aliasQuery("a%d: __typename ", 55000), "BAD_REQUEST"},
	{"aliases-3400", aliasQuery("a%d: __typename ", 3400), "QUERY_TOO_MANY_ALIASES"},
	{"quota-aliases-1150", aliasQuery("a%d: quota { endpoint call minute { used remaining } } ", 1150), "QUERY_TOO_MANY_ALIASES"},
	{"list-32000", "{ machine(id: [" + strings.Repeat("1 ", 32000) + "]) { id } }", "QUERY_TOO_MANY_TOKENS"},
}

func aliasQuery(format string, n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		fmt.Fprintf(&b, format, i)
	}
	return b.String() + "}"
}

// BenchmarkHostileBody measures what a hostile body costs the service, next to an ordinary
// query on the same handler (one device's logon users from a warm cache, as
// BenchmarkQueryWarmCache): ns/op and B/op of each, in one run, so that their ratio can be
// quoted. at-limits is about the costliest query the default limits admit: 100 aliases of
// quota with all their fields (1,500 fields, one entry per endpoint family each), answered in
// full.
func BenchmarkHostileBody(b *testing.B) {
	s := newBenchApp(b)
	ordinary := postOf(`query($id: ID!) { machine(id: $id) { `+benchUsersFields+` } }`, true)(s)
	s.checkAnswer(b, s.serve(ordinary), []string{"machine"}, false)
	b.Run("ordinary", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if rec := s.serve(ordinary); rec.Code != http.StatusOK {
				b.Fatalf("HTTP %d: %s", rec.Code, rec.Body)
			}
		}
	})
	for _, h := range hostileBodies {
		body, _ := json.Marshal(map[string]string{"query": h.query})
		if h.code != "BAD_REQUEST" && len(body) > gqlhttp.MaxBodyBytes {
			b.Fatalf("%s: %d bytes, over the body bound", h.name, len(body))
		}
		req := postRequest(body)
		rec := s.serve(req)
		if !strings.Contains(rec.Body.String(), `"code":"`+h.code+`"`) {
			b.Fatalf("%s: HTTP %d %.300s, want %s", h.name, rec.Code, rec.Body, h.code)
		}
		b.Run(h.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				s.serve(req)
			}
		})
	}
	atLimits := postOf(aliasQuery("a%d: quota { endpoint call queued nextSlotAt pausedUntil minute { limit used remaining seconds } hour { limit used remaining seconds } } ", 100), false)(s)
	if rec := s.serve(atLimits); rec.Code != http.StatusOK || strings.Contains(rec.Body.String(), `"errors"`) {
		b.Fatalf("at-limits: HTTP %d %.300s", rec.Code, rec.Body)
	}
	b.Run("at-limits", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.serve(atLimits)
		}
	})
}
