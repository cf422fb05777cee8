package gqlhttp_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/mdegraph/mdegraph/internal/gqlhttp"
	"github.com/mdegraph/mdegraph/internal/querylimit"
)

// TestStatusRules: the GraphQL over HTTP spec's status rules, for every kind of answer given
// before execution and both media types, by POST and by GET. Found by the public conformance
// audit (npm graphql-http, auditServer): gqlgen answered such failures 422 to
// application/json, and with a "data" entry.
func TestStatusRules(t *testing.T) {
	t.Parallel()
	srv := newServer(t, gqlhttp.Options{Limits: querylimit.Limits{Aliases: 2}, MaxUpstreamCalls: 1})
	const (
		jsonType = "application/json"
		gqrType  = "application/graphql-response+json"
	)
	tests := []struct {
		name     string
		body     string // the POST body; GET sends the same parameters
		code     string // extensions.code of the first error, "" for an executed operation
		wellForm bool   // a well-formed GraphQL-over-HTTP request: 200 for application/json
	}{
		{"executed", `{"query":"{ __typename }"}`, "", true},
		{"parse failure", `{"query":"{"}`, "GRAPHQL_PARSE_FAILED", true},
		{"validation failure", `{"query":"{ noSuchField }"}`, "GRAPHQL_VALIDATION_FAILED", true},
		{"variable coercion failure", `{"query":"query ($id: ID!) { machine(id: $id) { id } }","variables":{"id":null}}`, "GRAPHQL_VALIDATION_FAILED", true},
		{"operation not found", `{"query":"query A { __typename }","operationName":"B"}`, "GRAPHQL_VALIDATION_FAILED", true},
		{"a limit", `{"query":"{ a: __typename b: __typename c: __typename }"}`, "QUERY_TOO_MANY_ALIASES", true},
		{"the upstream-call estimate", `{"query":"{ a: machine(id: \"h1\") { osPlatform } b: machine(id: \"h2\") { osPlatform } }"}`, "QUERY_TOO_EXPENSIVE", true},
		{"introspection off", `{"query":"{ __schema { queryType { name } } }"}`, "INTROSPECTION_DISABLED", true},
		{"unknown persisted query", `{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"` + strings.Repeat("0", 64) + `"}}}`, "PERSISTED_QUERY_NOT_FOUND", true},
		{"no query", `{"qeury":"{ __typename }"}`, "BAD_REQUEST", false},
	}
	for _, tt := range tests {
		for _, accept := range []string{"", jsonType, gqrType, "application/graphql-response+json, application/json;q=0.9"} {
			for _, method := range []string{http.MethodPost, http.MethodGet} {
				t.Run(tt.name+"/"+method+"/"+accept, func(t *testing.T) {
					t.Parallel()
					header := http.Header{}
					if accept != "" {
						header.Set("Accept", accept)
					}
					var r result
					if method == http.MethodPost {
						r = post(t, srv.URL, tt.body, header)
					} else {
						r = get(t, srv.URL, getParams(t, tt.body), header)
					}
					media := jsonType
					if strings.HasPrefix(accept, gqrType) {
						media = gqrType
					}
					wantStatus := http.StatusOK
					switch {
					case !tt.wellForm:
						wantStatus = http.StatusBadRequest
					case tt.code != "" && media == gqrType:
						wantStatus = http.StatusBadRequest
					}
					if r.status != wantStatus {
						t.Errorf("status %d, want %d", r.status, wantStatus)
					}
					if got := errorCode(r); got != tt.code {
						t.Errorf("code %q, want %q (%v)", got, tt.code, r.body)
					}
					_, hasData := r.body["data"]
					if hasData != (tt.code == "") {
						t.Errorf("data entry present: %v, want %v (%v)", hasData, tt.code == "", r.body)
					}
					if got := r.header.Get("Content-Type"); got != media {
						t.Errorf("Content-Type %q, want %q", got, media)
					}
				})
			}
		}
	}
}

// getParams turns a POST body into GET parameters.
func getParams(t *testing.T, body string) url.Values {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatal(err)
	}
	v := url.Values{}
	for k, raw := range m {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			v.Set(k, s)
		} else {
			v.Set(k, string(raw))
		}
	}
	return v
}

// TestBadRequestsKeepTheirStatus: a request that is not a well-formed GraphQL-over-HTTP
// request keeps its 4xx whatever the client accepts, and has no "data" entry either.
func TestBadRequestsKeepTheirStatus(t *testing.T) {
	t.Parallel()
	srv := newServer(t, gqlhttp.Options{})
	for _, accept := range []string{"application/json", "application/graphql-response+json"} {
		header := http.Header{"Accept": {accept}}
		tests := []struct {
			name   string
			r      result
			status int
		}{
			{"malformed JSON", post(t, srv.URL, `{"query":`, header), http.StatusBadRequest},
			{"too large", post(t, srv.URL, `{"query":"`+strings.Repeat(" ", gqlhttp.MaxBodyBytes)+`{ __typename }"}`, header), http.StatusRequestEntityTooLarge},
			{"GET variables not JSON", get(t, srv.URL, url.Values{"query": {"{ __typename }"}, "variables": {"{"}}, header), http.StatusBadRequest},
			{"URL too long", get(t, srv.URL, url.Values{"query": {"{ __typename }" + strings.Repeat(" ", gqlhttp.MaxBodyBytes)}}, header), http.StatusRequestURITooLong},
		}
		for _, tt := range tests {
			if _, hasData := tt.r.body["data"]; tt.r.status != tt.status || hasData || errorCode(tt.r) != "BAD_REQUEST" {
				t.Errorf("%s, Accept %s: status %d, data present %v, code %q; want %d, no data, BAD_REQUEST",
					tt.name, accept, tt.r.status, hasData, errorCode(tt.r), tt.status)
			}
			if got := tt.r.header.Get("Content-Type"); got != accept {
				t.Errorf("%s: Content-Type %q, want %q", tt.name, got, accept)
			}
		}
	}
}
