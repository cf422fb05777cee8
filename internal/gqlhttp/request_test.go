package gqlhttp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
)

func sha(q string) string {
	sum := sha256.Sum256([]byte(q))
	return hex.EncodeToString(sum[:])
}

// TestReadBody: the mistakes gqlgen would report by English text are found first, by Go
// error type and value, with a status and a message in the client's terms.
func TestReadBody(t *testing.T) {
	t.Parallel()
	const q = `{ quota { endpoint } }`
	apq := func(pq string) string { return `{"query":"` + q + `","extensions":{"persistedQuery":` + pq + `}}` }
	tests := []struct {
		name       string
		body       string
		wantStatus int    // 0: accepted
		wantMsg    string // the message contains it
	}{
		{"a query", `{"query":"` + q + `"}`, 0, ""},
		{"with variables and an operation name", `{"query":"` + q + `","operationName":"Q","variables":{"id":"x","n":1.5}}`, 0, ""},
		{"trailing data is ignored, as gqlgen does", `{"query":"` + q + `"} junk`, 0, ""},
		{"empty", ``, 400, "the body is empty or cut short (EOF)"},
		{"cut short", `{"query":`, 400, "the body is empty or cut short (unexpected EOF)"},
		{"not JSON", `query=1`, 400, "the body is not valid JSON: invalid character 'q' looking for beginning of value (at byte 1)"},
		{"a batch", `[{"query":"` + q + `"}]`, 400, "batched operations are not supported"},
		{"a string", `"x"`, 400, "the body must be one JSON object"},
		{"null query is fine", `{"query":null}`, 0, ""},
		{"query a number", `{"query":1}`, 400, "query must be a string, not number"},
		{"operationName an object", `{"query":"` + q + `","operationName":{}}`, 400, "operationName must be a string, not object"},
		{"variables an array", `{"query":"` + q + `","variables":[]}`, 400, "variables must be a JSON object, not array"},
		{"extensions a string", `{"query":"` + q + `","extensions":"x"}`, 400, "extensions must be a JSON object, not string"},
		{"APQ well-formed", apq(`{"version":1,"sha256Hash":"` + sha(q) + `"}`), 0, ""},
		{"APQ null", apq(`null`), 0, ""},
		{"APQ hash only, unknown: gqlgen's PERSISTED_QUERY_NOT_FOUND", `{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"` + sha("x") + `"}}}`, 0, ""},
		{"APQ not an object", apq(`"x"`), 400, "extensions.persistedQuery must be an object"},
		{"APQ hash not a string", apq(`{"version":1,"sha256Hash":5}`), 400, "extensions.persistedQuery must be an object"},
		{"APQ version 2", apq(`{"version":2,"sha256Hash":"` + sha(q) + `"}`), 400, "version must be 1"},
		{"APQ version missing", apq(`{"sha256Hash":"` + sha(q) + `"}`), 400, "version must be 1"},
		{"APQ version 1.0", apq(`{"version":1.0,"sha256Hash":"` + sha(q) + `"}`), 400, "version must be 1"},
		{"APQ version a string", apq(`{"version":"1","sha256Hash":"` + sha(q) + `"}`), 400, "version must be 1"},
		{"APQ hash of another query", apq(`{"version":1,"sha256Hash":"` + sha("x") + `"}`), 400, "sha256Hash does not match the query"},
		{"APQ hash missing with a query", apq(`{"version":1}`), 400, "sha256Hash does not match the query"},
		{"too large", `{"query":"` + strings.Repeat(" ", MaxBodyBytes) + `"}`, 413, fmt.Sprintf("larger than %d bytes", MaxBodyBytes)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, declared := range []bool{true, false} {
				r := httptest.NewRequest(http.MethodPost, "/query", strings.NewReader(tt.body))
				if !declared {
					r.ContentLength = -1 // chunked
				}
				params, problem := readBody(httptest.NewRecorder(), r, MaxBodyBytes)
				if (params == nil) == (problem == nil) {
					t.Fatalf("declared %v: params %v and problem %v: want exactly one", declared, params, problem)
				}
				switch {
				case tt.wantStatus == 0 && problem != nil:
					t.Fatalf("declared %v: refused %d %q, want it accepted", declared, problem.status, problem.msg)
				case tt.wantStatus == 0:
				case problem == nil:
					t.Fatalf("declared %v: accepted, want %d %q", declared, tt.wantStatus, tt.wantMsg)
				case problem.status != tt.wantStatus || !strings.Contains(problem.msg, tt.wantMsg):
					t.Errorf("declared %v: %d %q, want %d and a message containing %q", declared, problem.status, problem.msg, tt.wantStatus, tt.wantMsg)
				}
				if problem != nil && strings.Contains(problem.msg, "RawParams") {
					t.Errorf("message %q names a Go type", problem.msg)
				}
			}
		})
	}
}

// FuzzReadBody: whatever readBody lets through, gqlgen's POST transport would decode to the
// same parameters, and its persisted-query extension accepts (or answers with its own coded
// PERSISTED_QUERY_NOT_FOUND): no code-less request error can reach the error presenter.
func FuzzReadBody(f *testing.F) {
	const q = `{ quota { endpoint } }`
	for _, s := range []string{
		``, `{}`, `[]`, `"x"`, `1`, `null`, `{"query":1}`, `{"query":"` + q + `"}`, `{"variables":[]}`, `{"extensions":{"persistedQuery":"x"}}`,
		`{"query":"` + q + `","extensions":{"persistedQuery":{"version":1,"sha256Hash":"` + sha(q) + `"}}}`,
		`{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"abc"}}}`, `{"extensions":{"persistedQuery":{"version":1e0}}}`,
		`{"query":"x"} {`, "{\"query\":\"\xff\"}",
	} {
		f.Add(s)
	}
	apq := extension.AutomaticPersistedQuery{Cache: lru.New[string](10)}
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest(http.MethodPost, "/query", strings.NewReader(body))
		got, problem := readBody(httptest.NewRecorder(), r, MaxBodyBytes)
		if problem != nil {
			if problem.msg == "" || problem.status == 0 {
				t.Fatalf("problem %+v without a status or message", problem)
			}
			return
		}
		var params graphql.RawParams
		dec := json.NewDecoder(strings.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&params); err != nil {
			t.Fatalf("accepted, but gqlgen's decoding fails: %v", err)
		}
		if !reflect.DeepEqual(*got, params) {
			t.Fatalf("readBody's parameters %+v, gqlgen's %+v", *got, params)
		}
		ctx := graphql.WithOperationContext(context.Background(), &graphql.OperationContext{})
		if err := apq.MutateOperationParameters(ctx, &params); err != nil && fmt.Sprint(err.Extensions["code"]) != "PERSISTED_QUERY_NOT_FOUND" {
			t.Fatalf("accepted, but gqlgen's APQ extension answers %q without a code", err.Message)
		}
	})
}
