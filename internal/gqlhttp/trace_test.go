package gqlhttp_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/codes"

	"github.com/mdegraph/mdegraph/internal/gqlhttp"
	"github.com/mdegraph/mdegraph/internal/querylimit"
	"github.com/mdegraph/mdegraph/internal/tracing"
	"github.com/mdegraph/mdegraph/internal/tracing/tracingtest"
	"github.com/mdegraph/mdegraph/resolvers"
)

// TestOperationSpan: the operation span is named after the operation when it executes, keeps
// "GraphQL Operation" for a request refused before execution, records the answer's error
// codes, and does not exist for an OPTIONS request or without a recording span around it.
func TestOperationSpan(t *testing.T) {
	t.Parallel()
	tp, exp := tracingtest.NewProvider(t)
	plain := gqlhttp.New(gqlhttp.Options{Resolver: &resolvers.Resolver{Quota: fakeQuota{}},
		Limits: querylimit.Limits{Aliases: 2}})
	traced := tracing.Using(tp).Handler(plain)
	tests := []struct {
		name      string
		handler   http.Handler
		method    string
		body      string
		wantName  string // "" for no operation span
		wantCodes string
		wantType  string
	}{
		{"named query", traced, http.MethodPost, `{"query":"query Q { quota { endpoint } }"}`, "query Q", "", "query"},
		{"anonymous query", traced, http.MethodPost, `{"query":"{ quota { endpoint } }"}`, "query", "", "query"},
		{"refused before parsing", traced, http.MethodPost, `{"query":"{ a: __typename b: __typename c: __typename }"}`,
			"GraphQL Operation", `["QUERY_TOO_MANY_ALIASES"]`, ""},
		{"does not validate", traced, http.MethodPost, `{"query":"query V { nope }"}`,
			"GraphQL Operation", `["GRAPHQL_VALIDATION_FAILED"]`, ""},
		{"OPTIONS", traced, http.MethodOptions, "", "", "", ""},
		{"no recording span", plain, http.MethodPost, `{"query":"query Q { quota { endpoint } }"}`, "", "", ""},
	}
	for _, tt := range tests {
		// Sequential: they share the exporter.
		exp.Reset()
		req := httptest.NewRequest(tt.method, "/query", strings.NewReader(tt.body))
		req.Header.Set("Content-Type", "application/json")
		tt.handler.ServeHTTP(httptest.NewRecorder(), req)
		tree := tracingtest.NewTree(exp.GetSpans())
		var ops []string
		for _, s := range tree.Spans {
			if s.InstrumentationScope.Name == "github.com/mdegraph/mdegraph/internal/gqlhttp" {
				ops = append(ops, s.Name)
			}
		}
		if tt.wantName == "" {
			if len(ops) != 0 {
				t.Errorf("%s: operation spans %v, want none", tt.name, ops)
			}
			continue
		}
		spans := tree.Named(tt.wantName)
		if len(ops) != 1 || len(spans) != 1 {
			t.Errorf("%s: operation spans %v, want one called %q:\n%s", tt.name, ops, tt.wantName, tree)
			continue
		}
		op := spans[0]
		if got := tracingtest.Attr(op, gqlhttp.AttrErrorCodes); got != tt.wantCodes {
			t.Errorf("%s: error codes %q, want %q", tt.name, got, tt.wantCodes)
		}
		if wantErr := tt.wantCodes != ""; (op.Status.Code == codes.Error) != wantErr {
			t.Errorf("%s: status %v, want an error: %v", tt.name, op.Status.Code, wantErr)
		}
		if got := tracingtest.Attr(op, "graphql.operation.type"); got != tt.wantType {
			t.Errorf("%s: graphql.operation.type %q, want %q", tt.name, got, tt.wantType)
		}
	}
}
