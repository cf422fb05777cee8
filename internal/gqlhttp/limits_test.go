package gqlhttp_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mdegraph/mdegraph/internal/gqlhttp"
	"github.com/mdegraph/mdegraph/internal/logtest"
	"github.com/mdegraph/mdegraph/internal/principal"
	"github.com/mdegraph/mdegraph/internal/querylimit"
	"github.com/mdegraph/mdegraph/resolvers"
)

var testLimits = querylimit.Limits{Tokens: 10000, Aliases: 200, Depth: 20, Fields: 2000, Directives: 50}

// aliasBody is a POST body of n aliases of field, as in the reports.
func aliasBody(n int, field string) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		fmt.Fprintf(&b, "a%d: %s ", i, field)
	}
	b.WriteString("}")
	body, _ := json.Marshal(map[string]string{"query": b.String()})
	return string(body)
}

// TestLimitsRefuseBeforeParsing: each limit refuses with its own code, a message naming the
// limit, its value and the query's, counts in the metrics under its code, and is logged once
// a minute per code and caller at WARN (the repeats at DEBUG). The body bound is raised to the
// 1 MiB of the reports, which the default bound refuses unread.
func TestLimitsRefuseBeforeParsing(t *testing.T) {
	t.Parallel()
	deep := "{" + strings.Repeat("quota {", 20) + "endpoint" + strings.Repeat("}", 21)
	tests := []struct {
		name      string
		body      string
		code      string
		msg       string
		limit     float64
		count     float64
		bodyBytes int // at least
	}{
		{"55,000 aliases of __typename (the issue's 1 MiB body)", aliasBody(55000, "__typename"), resolvers.CodeTooManyAliases,
			"the query has 201 aliases (fragments expanded), more than the limit of 200 (MAX_QUERY_ALIASES)", 200, 201, 1_000_000},
		{"20,000 aliases of quota", aliasBody(20000, "quota { endpoint remaining: queued }"), resolvers.CodeTooManyAliases,
			"more than the limit of 200 (MAX_QUERY_ALIASES)", 200, 201, 0},
		{"tokens", `{"query":"{ machine(id: [` + strings.Repeat("1 ", 20000) + `]) { id } }"}`, resolvers.CodeTooManyTokens,
			"the query has more than 10000 tokens, the limit (MAX_QUERY_TOKENS)", 10000, 10001, 0},
		{"depth", `{"query":"query Deep ` + deep + `"}`, resolvers.CodeTooDeep,
			"operation Deep nests selections 21 deep, more than the limit of 20 (MAX_QUERY_DEPTH)", 20, 21, 0},
		{"fields", `{"query":"{` + strings.Repeat("__typename ", 2001) + `}"}`, resolvers.CodeTooManyFields,
			"the query has 2001 fields (fragments expanded), more than the limit of 2000 (MAX_QUERY_FIELDS)", 2000, 2001, 0},
		{"directives", `{"query":"{` + strings.Repeat("__typename @skip(if: false) ", 51) + `}"}`, resolvers.CodeTooManyDirectives,
			"the query has 51 directives (fragments expanded), more than the limit of 50 (MAX_QUERY_DIRECTIVES)", 50, 51, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if len(tt.body) < tt.bodyBytes || len(tt.body) > 1<<20 {
				t.Fatalf("body of %d bytes, want %d to %d", len(tt.body), tt.bodyBytes, 1<<20)
			}
			var logs logtest.Buffer
			rec := &codeRecorder{}
			h := gqlhttp.New(gqlhttp.Options{Resolver: &resolvers.Resolver{Quota: fakeQuota{}}, Limits: testLimits, MaxBodyBytes: 1 << 20,
				Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), ObserveOperation: rec.observe})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				h.ServeHTTP(w, r.WithContext(principal.NewContext(r.Context(), principal.Principal{Kind: principal.KindAPIKey, Name: "soc"})))
			}))
			t.Cleanup(srv.Close)
			for range 2 {
				r := post(t, srv.URL, tt.body, nil)
				if errorCode(r) != tt.code || !strings.Contains(errorMessage(r), tt.msg) {
					t.Fatalf("code %q, message %q; want %s, containing %q", errorCode(r), errorMessage(r), tt.code, tt.msg)
				}
				ext := r.body["errors"].([]any)[0].(map[string]any)["extensions"].(map[string]any)
				if ext["limit"] != tt.limit || ext["count"] != tt.count {
					t.Errorf("extensions %v, want limit %v and count %v", ext, tt.limit, tt.count)
				}
			}
			if got, want := rec.all(), [][]string{{tt.code}, {tt.code}}; !slices.EqualFunc(got, want, slices.Equal) {
				t.Errorf("ObserveOperation got codes %v, want %v", got, want)
			}
			lines := logs.String()
			warn := grepLines(lines, "level=WARN")
			if len(warn) != 1 || !strings.Contains(warn[0], `msg="query refused" code=`+tt.code) || !strings.Contains(warn[0], "caller=apikey:soc") ||
				!strings.Contains(warn[0], tt.msg) {
				t.Errorf("want one WARN line refusing with %s, its reason and caller apikey:soc; log:\n%s", tt.code, lines)
			}
			if got := grepLines(lines, `level=DEBUG msg="query refused"`); len(got) != 1 {
				t.Errorf("the repeat: %d DEBUG lines, want 1; log:\n%s", len(got), lines)
			}
		})
	}
}

func grepLines(text, word string) []string {
	var out []string
	for line := range strings.Lines(text) {
		if strings.Contains(line, word) {
			out = append(out, line)
		}
	}
	return out
}

// TestRefusedQueryIsNotPersisted: a query over the limits sent with its persisted-query hash
// is refused before the persisted-query cache keeps it, so its hash alone is unknown later.
func TestRefusedQueryIsNotPersisted(t *testing.T) {
	t.Parallel()
	srv := newServer(t, gqlhttp.Options{Limits: querylimit.Limits{Aliases: 1}})
	q := `{ a: __typename b: __typename }`
	body, _ := json.Marshal(map[string]any{"query": q, "extensions": json.RawMessage(persistedExt(q))})
	if r := post(t, srv.URL, string(body), nil); errorCode(r) != resolvers.CodeTooManyAliases {
		t.Fatalf("code %q, want %s", errorCode(r), resolvers.CodeTooManyAliases)
	}
	if r := get(t, srv.URL, url.Values{"extensions": {persistedExt(q)}}, nil); errorCode(r) != "PERSISTED_QUERY_NOT_FOUND" {
		t.Errorf("hash only: code %q, want PERSISTED_QUERY_NOT_FOUND", errorCode(r))
	}
}

// TestIntrospectionSwitch: with introspection off, __schema and __type are refused with a code
// and a message that says why, field suggestions are gone, and __typename still answers.
func TestIntrospectionSwitch(t *testing.T) {
	t.Parallel()
	on := newServer(t, gqlhttp.Options{Introspection: true})
	off := newServer(t, gqlhttp.Options{})
	tests := []struct {
		name            string
		query           string
		wantOn, wantOff string // codes
	}{
		{"__schema", `{ __schema { queryType { name } } }`, "", resolvers.CodeIntrospectionDisabled},
		{"__type", `{ __type(name: "Machine") { name } }`, "", resolvers.CodeIntrospectionDisabled},
		{"__schema in a fragment", `{ ...F } fragment F on Query { __schema { types { name } } }`, "", resolvers.CodeIntrospectionDisabled},
		{"__schema skipped", `{ __typename __schema @skip(if: true) { types { name } } }`, "", ""},
		{"__typename", `{ __typename }`, "", ""},
	}
	for _, tt := range tests {
		body, _ := json.Marshal(map[string]string{"query": tt.query})
		if r := post(t, on.URL, string(body), nil); errorCode(r) != tt.wantOn {
			t.Errorf("%s, on: code %q, want %q", tt.name, errorCode(r), tt.wantOn)
		}
		r := post(t, off.URL, string(body), nil)
		if errorCode(r) != tt.wantOff {
			t.Errorf("%s, off: code %q, want %q", tt.name, errorCode(r), tt.wantOff)
		}
		if tt.wantOff != "" && !strings.Contains(errorMessage(r), "INTROSPECTION=true") {
			t.Errorf("%s, off: message %q does not say how to turn it on", tt.name, errorMessage(r))
		}
	}
	typo := `{"query":"{ quota { endpoin } }"}`
	if msg := errorMessage(post(t, on.URL, typo, nil)); !strings.Contains(msg, `Did you mean "endpoint"?`) {
		t.Errorf("on: %q, want a suggestion", msg)
	}
	if msg := errorMessage(post(t, off.URL, typo, nil)); strings.Contains(msg, "Did you mean") || !strings.Contains(msg, "endpoin") {
		t.Errorf("off: %q, want the error without a suggestion", msg)
	}
}

// TestSlowParseIsLogged: a document slower to parse and validate than SlowParse is logged at
// warn with both times and the caller, once a minute per caller.
func TestSlowParseIsLogged(t *testing.T) {
	t.Parallel()
	var logs logtest.Buffer
	srv := newServer(t, gqlhttp.Options{SlowParse: time.Nanosecond,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	post(t, srv.URL, `{"query":"{ quota { endpoint } }"}`, nil)
	post(t, srv.URL, `{"query":"{ quota { call } }"}`, nil)
	warn := grepLines(logs.String(), `level=WARN msg="slow to parse and validate`)
	debug := grepLines(logs.String(), `level=DEBUG msg="slow to parse and validate`)
	if len(warn) != 1 || !strings.Contains(warn[0], "parse=") || !strings.Contains(warn[0], "validation=") ||
		!strings.Contains(warn[0], "caller=anonymous") || len(debug) != 1 {
		t.Errorf("want one WARN line with parse, validation and caller, and one DEBUG repeat; log:\n%s", logs.String())
	}
}
