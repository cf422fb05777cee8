package gqlhttp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdegraph/mdegraph/internal/defender"
	"github.com/mdegraph/mdegraph/internal/gqlhttp"
	"github.com/mdegraph/mdegraph/internal/loaders"
	"github.com/mdegraph/mdegraph/resolvers"
)

// recordingSource is an upstream of one known device that records the argument of every call.
type recordingSource struct {
	mu   sync.Mutex
	args []string
}

const fuzzDevice = "51a1800b847fee65bbce59a29bc8f50bff9f84f8"

func (s *recordingSource) record(args ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.args = append(s.args, args...)
}

func (s *recordingSource) taken() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.args
	s.args = nil
	return out
}

func (s *recordingSource) machine(ref string) (*defender.Machine, error) {
	if ref == fuzzDevice || ref == "desk-1.contoso.local" {
		return &defender.Machine{ID: fuzzDevice, ComputerDNSName: "desk-1.contoso.local"}, nil
	}
	return nil, &defender.ErrorResponse{StatusCode: http.StatusNotFound, Message: "Machine " + ref + " was not found"}
}

func (s *recordingSource) GetMachine(_ context.Context, ref string) (*defender.Machine, error) {
	s.record(ref)
	return s.machine(ref)
}

func (s *recordingSource) GetMachines(_ context.Context, ids []string) ([]defender.Machine, error) {
	s.record(ids...)
	var out []defender.Machine
	for _, id := range ids {
		if m, err := s.machine(id); err == nil {
			out = append(out, *m)
		}
	}
	return out, nil
}

func (s *recordingSource) LogonUsers(_ context.Context, id string) ([]defender.User, error) {
	s.record(id)
	if _, err := s.machine(id); err != nil {
		return nil, err
	}
	return []defender.User{{ID: `contoso\jdoe`, AccountName: "jdoe", AccountDomain: "contoso"}}, nil
}

// FuzzGraphQLEndpoint sends random documents, variables, operation names and headers to the
// whole GraphQL endpoint (transports, limits, validation, the estimate, resolvers, loaders) by
// GET and POST: it never panics, never answers 500, answers JSON whose every error has a code,
// and never calls the upstream with an argument the validator refuses (or has not normalised).
//
//	go test -run '^$' -fuzz FuzzGraphQLEndpoint -fuzztime 5m ./internal/gqlhttp
func FuzzGraphQLEndpoint(f *testing.F) {
	seeds := []struct {
		method, query, vars, opName, accept, contentType string
	}{
		{"POST", `query($id: ID!) { machine(id: $id) { computerDnsName logonUsers { id } } }`, `{"id":"` + fuzzDevice + `"}`, "", "", "application/json"},
		{"POST", `{ a: machine(id: 1000) { osPlatform } b: machine(id: "DESK-1.contoso.local.") { logonUsers { id } } }`, ``, "", "application/graphql-response+json", "application/json"},
		{"GET", `{ machine(id: "../../api/machines") { id } }`, ``, "", "application/json", ""},
		{"POST", `query($id: ID!) { machine(id: $id) { id } }`, `{"id": 1e400}`, "", "", "application/json"},
		{"POST", `query($id: ID!) { machine(id: $id) { id } }`, `{"id": [" x "]}`, "", "*/*", "application/json"},
		{"POST", `query($id: ID!) { machine(id: $id) { id } }`, `{"id": " 51A1800B847FEE65BBCE59A29BC8F50BFF9F84F8 "}`, "", "", "application/json"},
		{"POST", "{" + strings.Repeat("a: __typename ", 300) + "}", ``, "", "", "application/json"},
		{"POST", "{ ...F } fragment F on Query { ...G ...G } fragment G on Query { ...H ...H } fragment H on Query { quota { endpoint } }", ``, "", "", "application/json"},
		{"POST", "{" + strings.Repeat("quota {", 30) + strings.Repeat("}", 31), ``, "", "", "application/json"},
		{"POST", `{ __schema { types { name } } __type(name: "Machine") { fields { name } } }`, ``, "", "", "application/json"},
		{"POST", `query A { __typename } query B { quota { endpoint } }`, ``, "B", "", "application/json"},
		{"POST", `mutation { x }`, ``, "", "", "application/json"},
		{"GET", `subscription { x }`, `{"a":1}`, "", "", ""},
		{"POST", `{ machine(id: "x") @skip(if: $s) { id } }`, `{"s": "yes"}`, "", "", "application/json; charset=utf-8"},
		{"PUT", `{ __typename }`, ``, "", "", "application/json"},
		{"HEAD", `{ __typename }`, ``, "", "", ""},
		{"POST", `{ __typename }`, ``, "", "", "text/plain"},
		{"POST", "\x00{\xff", `{`, "\x00", "\x00", "application/json"},
	}
	for _, s := range seeds {
		f.Add(s.method, s.query, s.vars, s.opName, s.accept, s.contentType)
	}

	src := &recordingSource{}
	fetcher := loaders.NewFetcher(loaders.Options{Source: src, CacheTTL: time.Minute, NotFoundTTL: time.Second, BatchWait: time.Millisecond})
	gql := gqlhttp.New(gqlhttp.Options{Resolver: &resolvers.Resolver{Quota: fakeQuota{}}, MaxUpstreamCalls: 5,
		Limits: testLimits, Logger: slog.New(slog.DiscardHandler)})
	h := loaders.Middleware(fetcher, func(*http.Request) string { return "app" }, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		gql.ServeHTTP(w, r.WithContext(ctx))
	}))
	var mu sync.Mutex // one request at a time, so that the recorded calls are this input's
	f.Fuzz(func(t *testing.T, method, query, vars, opName, accept, contentType string) {
		mu.Lock()
		defer mu.Unlock()
		params := map[string]any{"query": query, "operationName": opName}
		if vars != "" {
			params["variables"] = json.RawMessage(vars)
		}
		var req *http.Request
		switch method {
		case http.MethodGet, http.MethodHead, http.MethodDelete:
			q := url.Values{"query": {query}, "operationName": {opName}}
			if vars != "" {
				q.Set("variables", vars)
			}
			req = httptest.NewRequest(method, "/query?"+q.Encode(), nil)
		default:
			body, err := json.Marshal(params)
			if err != nil { // variables that are not JSON: send them as they are
				body = fmt.Appendf(nil, `{"query":%q,"variables":%s}`, query, vars)
			}
			if !isToken(method) {
				method = http.MethodPost
			}
			req = httptest.NewRequest(method, "/query", strings.NewReader(string(body)))
		}
		if accept != "" && validHeader(accept) {
			req.Header.Set("Accept", accept)
		}
		if contentType != "" && validHeader(contentType) {
			req.Header.Set("Content-Type", contentType)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		if rec.Code >= 500 {
			t.Errorf("status %d: %s", rec.Code, rec.Body)
		}
		if method != http.MethodHead && method != http.MethodOptions && rec.Body.Len() == 0 {
			t.Errorf("status %d with an empty body", rec.Code)
		}
		if method != http.MethodHead && rec.Body.Len() > 0 {
			var resp struct {
				Errors []struct {
					Extensions map[string]any `json:"extensions"`
				} `json:"errors"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
				t.Fatalf("status %d, not JSON (%v): %.300s", rec.Code, err, rec.Body)
			}
			for _, e := range resp.Errors {
				if code, _ := e.Extensions["code"].(string); code == "" || code == resolvers.CodeInternal {
					t.Errorf("an error with code %q: %.500s", code, rec.Body)
				}
			}
		}
		for _, arg := range src.taken() {
			if ref, err := defender.ParseMachineRef(arg); err != nil || ref.String() != arg {
				t.Errorf("upstream called with %q, which the validator refuses or changes (%v)", arg, err)
			}
		}
	})
}

// isToken reports whether s can be an HTTP method.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c <= ' ' || c >= 0x7f || strings.ContainsRune(`()<>@,;:\"/[]?={}`, c) {
			return false
		}
	}
	return true
}

// validHeader reports whether s can be a header value.
func validHeader(s string) bool {
	for _, c := range s {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
