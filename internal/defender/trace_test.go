package defender

import (
	"context"
	"net/http"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/mdegraph/mdegraph/internal/tracing/tracingtest"
)

func TestPathTemplate(t *testing.T) {
	t.Parallel()
	tests := []struct{ path, want string }{
		{"/api/machines", "/api/machines"},
		{"/api/machines/51a1800b847fee65bbce59a29bc8f50bff9f84f8", "/api/machines/{id}"},
		{"/api/machines/lap-ad79c3.contoso.local/logonusers", "/api/machines/{id}/logonusers"},
		{"/api/users/jdoe/machines", "/api/users/{id}/machines"},
		{"/api/machines/abc/alerts", "/api/machines/{id}/alerts"},
		{"/prefix/api/machines/abc", "/prefix/api/machines/{id}"},
		{"/api/machines/", "/api/machines/"},
		{"/oauth2/v2.0/token", "/oauth2/v2.0/token"},
	}
	for _, tt := range tests {
		if got := pathTemplate(tt.path); got != tt.want {
			t.Errorf("pathTemplate(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
}

// TestAttemptSpans: under a recording span, each attempt is an HTTP client span whose trace
// context the request carries; without one, the request goes out as before, with no
// traceparent header and no span.
func TestAttemptSpans(t *testing.T) {
	t.Parallel()
	const id = "51a1800b847fee65bbce59a29bc8f50bff9f84f8"
	tp, exp := tracingtest.NewProvider(t)
	for _, traced := range []bool{false, true} {
		ft := &fakeTransport{fn: sequence(status(http.StatusOK, `{"value":[]}`))}
		c, err := New(Options{BaseURL: "https://api.example", HTTPClient: &http.Client{Transport: ft}})
		if err != nil {
			t.Fatal(err)
		}
		exp.Reset()
		ctx := context.Background()
		var root trace.Span
		if traced {
			ctx, root = tp.Tracer("test").Start(ctx, "root")
		}
		if _, _, err := c.Machines.LogonUsers(ctx, id); err != nil {
			t.Fatal(err)
		}
		if root != nil {
			root.End()
		}
		tree := tracingtest.NewTree(exp.GetSpans())
		traceparent := ft.reqs[0].Header.Get("Traceparent")
		if !traced {
			if len(tree.Spans) != 0 || traceparent != "" {
				t.Errorf("untraced call: %d spans, traceparent %q; want none", len(tree.Spans), traceparent)
			}
			continue
		}
		spans := tree.Named("GET /api/machines/{id}/logonusers")
		if len(spans) != 1 {
			t.Fatalf("want one attempt span:\n%s", tree)
		}
		s := spans[0]
		if p, _ := tree.Parent(s); p.Name != "defender machines.logonusers" {
			t.Errorf("attempt span under %q, want the call's", p.Name)
		}
		want := "00-" + s.SpanContext.TraceID().String() + "-" + s.SpanContext.SpanID().String() + "-01"
		assertEqual(t, "traceparent", traceparent, want)
		assertEqual(t, "url.full", tracingtest.Attr(s, "url.full"), "https://api.example/api/machines/{id}/logonusers")
		assertEqual(t, "server.address", tracingtest.Attr(s, "server.address"), "api.example")
		assertEqual(t, "defender.attempt", tracingtest.Attr(s, AttrAttempt), "1")
	}
}
