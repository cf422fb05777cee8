package app_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/mdegraph/mdegraph/internal/app"
	"github.com/mdegraph/mdegraph/internal/config"
	"github.com/mdegraph/mdegraph/internal/defender"
	"github.com/mdegraph/mdegraph/internal/gqlhttp"
	"github.com/mdegraph/mdegraph/internal/loaders"
	"github.com/mdegraph/mdegraph/internal/quota"
	"github.com/mdegraph/mdegraph/internal/simulator"
	"github.com/mdegraph/mdegraph/internal/tracing/tracingtest"
)

// readmeQuery is the README's example query.
const readmeQuery = `query DeviceLogonUsers($id: ID!) {
  machine(id: $id) {
    computerDnsName
    osPlatform
    healthStatus
    logonUsers { id isDomainAdmin logonTypes lastSeen }
  }
}`

// tracedService is the service whose spans an in-memory exporter keeps.
type tracedService struct {
	*service
	exp *tracetest.InMemoryExporter
}

func newTracedService(t *testing.T, env map[string]string, opts app.Options) *tracedService {
	t.Helper()
	tp, exp := tracingtest.NewProvider(t)
	opts.TracerProvider = tp
	if opts.Client == nil {
		opts.Client = func(o *defender.Options) { o.RetryBaseDelay, o.RetryMaxDelay = time.Millisecond, 2*time.Millisecond }
	}
	cfg, err := config.Load(nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	a, err := app.New(t.Context(), cfg, slog.New(slog.DiscardHandler), opts)
	if err != nil {
		t.Fatalf("app: %v", err)
	}
	t.Cleanup(a.Close)
	return &tracedService{service: &service{app: a, sim: a.Simulator}, exp: exp}
}

// traced runs q through the service's GraphQL handler, in-process, and returns the answer and
// the spans it made: every span has ended when ServeHTTP returns, the upstream calls' too.
func (s *tracedService) traced(t *testing.T, q string, vars map[string]any, header http.Header) (response, *tracingtest.Tree) {
	t.Helper()
	s.exp.Reset()
	out, _ := s.serveAs(t, "192.0.2.1:1234", q, vars, header)
	tree := tracingtest.NewTree(s.exp.GetSpans())
	t.Logf("spans:\n%s", tree)
	return out, tree
}

// only returns the one span called name, under a span called parent ("" for a root).
func only(t *testing.T, tree *tracingtest.Tree, name, parent string) tracetest.SpanStub {
	t.Helper()
	spans := tree.Named(name)
	if len(spans) != 1 {
		t.Fatalf("%d spans called %q, want 1", len(spans), name)
	}
	s := spans[0]
	p, ok := tree.Parent(s)
	if parent == "" && ok || parent != "" && (!ok || p.Name != parent) {
		t.Fatalf("span %q is under %q, want %q", name, p.Name, parent)
	}
	return s
}

// wantAttrs fails unless s has each attribute with the value given.
func wantAttrs(t *testing.T, s tracetest.SpanStub, want map[attribute.Key]string) {
	t.Helper()
	for k, v := range want {
		if got := tracingtest.Attr(s, k); got != v {
			t.Errorf("%s: %s = %q, want %q", s.Name, k, got, v)
		}
	}
}

func wantStatus(t *testing.T, s tracetest.SpanStub, code otelcodes.Code) {
	t.Helper()
	if s.Status.Code != code {
		t.Errorf("%s: status %v %q, want %v", s.Name, s.Status.Code, s.Status.Description, code)
	}
}

// TestTraceOfAQuery runs the README's example and checks the span tree: the HTTP server span,
// the GraphQL operation under it, a load per endpoint family under that, each load's upstream
// call, and each call's HTTP client span, with their attributes. A second run, answered from
// the cache, makes no load span.
func TestTraceOfAQuery(t *testing.T) {
	t.Parallel()
	s := newTracedService(t, nil, app.Options{})
	id := s.app.Simulator.ExampleMachineID()
	const frontendTrace, frontendSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	r, tree := s.traced(t, readmeQuery, map[string]any{"id": id},
		http.Header{"Traceparent": {"00-" + frontendTrace + "-" + frontendSpan + "-01"}})
	if len(r.Errors) > 0 {
		t.Fatalf("errors: %+v", r.Errors)
	}

	server := only(t, tree, "POST", "")
	if server.SpanKind != trace.SpanKindServer || server.Parent.SpanID().String() != frontendSpan ||
		server.SpanContext.TraceID().String() != frontendTrace {
		t.Errorf("server span %v under %v, want a server span continuing the request's traceparent", server.SpanContext, server.Parent)
	}
	wantAttrs(t, server, map[attribute.Key]string{"http.request.method": "POST", "http.response.status_code": "200"})

	op := only(t, tree, "query DeviceLogonUsers", "POST")
	wantAttrs(t, op, map[attribute.Key]string{"graphql.operation.type": "query", "graphql.operation.name": "DeviceLogonUsers"})
	wantStatus(t, op, otelcodes.Unset)
	if op.InstrumentationScope.Name != "github.com/mdegraph/mdegraph/internal/gqlhttp" {
		t.Errorf("operation span made by %q, want the gqlhttp package's tracer", op.InstrumentationScope.Name)
	}

	for _, c := range []struct {
		endpoint defender.Endpoint
		path     string
	}{
		{defender.EndpointMachine, "/api/machines/{id}"},
		{defender.EndpointLogonUsers, "/api/machines/{id}/logonusers"},
	} {
		load := only(t, tree, "load "+string(c.endpoint), "query DeviceLogonUsers")
		wantAttrs(t, load, map[attribute.Key]string{defender.AttrEndpoint: string(c.endpoint), loaders.AttrKeys: "1",
			loaders.AttrCacheHits: "0", loaders.AttrShared: "0", loaders.AttrCalls: "1", loaders.AttrErrors: "0"})
		call := only(t, tree, "defender "+string(c.endpoint), load.Name)
		wantAttrs(t, call, map[attribute.Key]string{defender.AttrEndpoint: string(c.endpoint), defender.AttrAttempts: "1",
			"http.response.status_code": "200"})
		wantStatus(t, call, otelcodes.Unset)
		client := only(t, tree, "GET "+c.path, call.Name)
		if client.SpanKind != trace.SpanKindClient || client.InstrumentationScope.Name != "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp" {
			t.Errorf("%s: kind %v by %q, want an otelhttp client span", client.Name, client.SpanKind, client.InstrumentationScope.Name)
		}
		wantAttrs(t, client, map[attribute.Key]string{"http.request.method": "GET", "http.response.status_code": "200",
			"server.address": "127.0.0.1", "url.template": c.path, defender.AttrEndpoint: string(c.endpoint), defender.AttrAttempt: "1",
			"url.full": strings.TrimSuffix(s.app.UpstreamURL, "/") + c.path})
		if client.SpanContext.TraceID().String() != frontendTrace {
			t.Errorf("%s is in another trace", client.Name)
		}
	}
	if n := len(tree.Named("quota wait " + string(defender.EndpointLogonUsers))); n != 0 {
		t.Errorf("%d quota wait spans for calls granted at once, want none", n)
	}
	for _, sp := range tree.Spans {
		for _, str := range tracingtest.Strings(sp) {
			if strings.Contains(str, id) {
				t.Errorf("span %q carries the device id: %q", sp.Name, str)
			}
		}
	}

	// Again: the cache answers, so the operation has nothing under it.
	r, tree = s.traced(t, readmeQuery, map[string]any{"id": id}, nil)
	if len(r.Errors) > 0 {
		t.Fatalf("errors: %+v", r.Errors)
	}
	op = only(t, tree, "query DeviceLogonUsers", "POST")
	if got := tree.Children(op); len(got) != 0 {
		t.Errorf("a query answered from the cache made %d spans under the operation, want 0", len(got))
	}
}

// TestTraceOfFailures: a failed call is recorded where it failed (the HTTP span of a 404, the
// upstream call with Defender's code and correlation id, the operation with its error codes),
// a retried attempt is one more HTTP span, and a call that had to wait for quota, or was
// refused it, has a quota wait span.
func TestTraceOfFailures(t *testing.T) {
	t.Parallel()
	logonUsersOnly := `{ machine(id: "$ID") { logonUsers { id } } }`
	tests := []struct {
		name    string
		query   string
		prepare func(*app.App)
		check   func(t *testing.T, tree *tracingtest.Tree, r response)
	}{
		{name: "unknown device", query: `query Details { machine(id: "` + unknownID() + `") { computerDnsName logonUsers { id } } }`,
			check: func(t *testing.T, tree *tracingtest.Tree, r response) {
				op := only(t, tree, "query Details", "POST")
				wantStatus(t, op, otelcodes.Error)
				wantAttrs(t, op, map[attribute.Key]string{gqlhttp.AttrErrorCodes: `["NOT_FOUND"]`})
				load := only(t, tree, "load machines.get", op.Name)
				wantAttrs(t, load, map[attribute.Key]string{loaders.AttrErrors: "1"})
				call := only(t, tree, "defender machines.get", load.Name)
				wantStatus(t, call, otelcodes.Error)
				wantAttrs(t, call, map[attribute.Key]string{"error.type": "ResourceNotFound", "http.response.status_code": "404",
					defender.AttrCorrelationID: r.Errors[0].Extensions["correlationId"].(string)})
				if len(call.Events) != 2 || call.Events[0].Name != "attempt failed" || call.Events[1].Name != "exception" {
					t.Errorf("call events %+v, want the failed attempt and the exception", call.Events)
				}
				client := only(t, tree, "GET /api/machines/{id}", call.Name)
				wantStatus(t, client, otelcodes.Error)
				wantAttrs(t, client, map[attribute.Key]string{"http.response.status_code": "404", "error.type": "404"})
			}},
		{name: "a 500 retried", query: logonUsersOnly,
			prepare: func(a *app.App) { a.Simulator.Inject(simulator.EndpointLogonUsers, http.StatusInternalServerError, 1) },
			check: func(t *testing.T, tree *tracingtest.Tree, r response) {
				if len(r.Errors) > 0 {
					t.Fatalf("errors: %+v", r.Errors)
				}
				call := only(t, tree, "defender machines.logonusers", "load machines.logonusers")
				wantStatus(t, call, otelcodes.Unset)
				wantAttrs(t, call, map[attribute.Key]string{defender.AttrAttempts: "2", "http.response.status_code": "200"})
				attempts := tree.Children(call)
				if len(attempts) != 2 {
					t.Fatalf("%d spans under the call, want 2 attempts", len(attempts))
				}
				wantAttrs(t, attempts[0], map[attribute.Key]string{defender.AttrAttempt: "1", "http.response.status_code": "500"})
				wantStatus(t, attempts[0], otelcodes.Error)
				wantAttrs(t, attempts[1], map[attribute.Key]string{defender.AttrAttempt: "2", "http.response.status_code": "200"})
				if len(call.Events) != 1 || call.Events[0].Name != "attempt failed" {
					t.Errorf("call events %+v, want the failed attempt", call.Events)
				}
			}},
		{name: "quota refused", query: logonUsersOnly,
			prepare: func(a *app.App) { a.Quota.Pause(string(defender.EndpointLogonUsers), time.Now().Add(time.Hour)) },
			check: func(t *testing.T, tree *tracingtest.Tree, r response) {
				if got := codes(r); len(got) != 1 || got[0] != "RATE_LIMITED" {
					t.Fatalf("codes %v, want RATE_LIMITED", got)
				}
				call := only(t, tree, "defender machines.logonusers", "load machines.logonusers")
				wantStatus(t, call, otelcodes.Error)
				wantAttrs(t, call, map[attribute.Key]string{"error.type": "quota_exceeded", defender.AttrAttempts: "0"})
				wait := only(t, tree, "quota wait machines.logonusers", call.Name)
				wantStatus(t, wait, otelcodes.Error)
				wantAttrs(t, wait, map[attribute.Key]string{quota.AttrFamily: "machines.logonusers", quota.AttrOutcome: "exceeded"})
				if tracingtest.Attr(wait, quota.AttrRetryAfter) == "" {
					t.Error("the refusal does not say when to retry")
				}
				if len(tree.Children(call)) != 1 {
					t.Errorf("spans under the refused call: %v, want the wait alone", tree.Children(call))
				}
			}},
		{name: "quota waited for", query: logonUsersOnly,
			// A pause longer than any stall between it and the call, shorter than QUOTA_MAX_WAIT.
			prepare: func(a *app.App) { a.Quota.Pause(string(defender.EndpointLogonUsers), time.Now().Add(time.Second)) },
			check: func(t *testing.T, tree *tracingtest.Tree, r response) {
				if len(r.Errors) > 0 {
					t.Fatalf("errors: %+v", r.Errors)
				}
				call := only(t, tree, "defender machines.logonusers", "load machines.logonusers")
				wait := only(t, tree, "quota wait machines.logonusers", call.Name)
				wantStatus(t, wait, otelcodes.Unset)
				wantAttrs(t, wait, map[attribute.Key]string{quota.AttrOutcome: "granted"})
				client := only(t, tree, "GET /api/machines/{id}/logonusers", call.Name)
				if client.StartTime.Before(wait.EndTime) {
					t.Error("the HTTP call started before the wait ended")
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newTracedService(t, nil, app.Options{})
			if tt.prepare != nil {
				tt.prepare(s.app)
			}
			r, tree := s.traced(t, strings.ReplaceAll(tt.query, "$ID", s.app.Simulator.ExampleMachineID()), nil, nil)
			tt.check(t, tree, r)
		})
	}
}

// recordingUpstream serves a simulator and remembers the Authorization and traceparent headers
// of its API calls.
type recordingUpstream struct {
	sim *simulator.Simulator

	mu           sync.Mutex
	tokens       []string
	traceparents []string
}

func (u *recordingUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/api/") {
		u.mu.Lock()
		u.tokens = append(u.tokens, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
		u.traceparents = append(u.traceparents, r.Header.Get("Traceparent"))
		u.mu.Unlock()
	}
	u.sim.ServeHTTP(w, r)
}

// TestTraceHasNoSecrets: configured as for a real tenant, the spans carry neither the client
// secret nor any bearer token Defender was sent, whether the sign-in works or not; and each
// API call carries the trace context of its HTTP span to Defender.
func TestTraceHasNoSecrets(t *testing.T) {
	t.Parallel()
	up := &recordingUpstream{sim: simulator.New(simulator.Options{TenantID: "contoso.onmicrosoft.com", ClientID: "app-1", ClientSecret: "right-secret"})}
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	for _, secret := range []string{"right-secret", "wrong-secret"} {
		t.Run(secret, func(t *testing.T) {
			s := newTracedService(t, realModeEnv(srv.URL, secret), app.Options{})
			r, tree := s.traced(t, readmeQuery, map[string]any{"id": up.sim.ExampleMachineID()}, nil)
			if secret == "wrong-secret" && (len(r.Errors) == 0 || codes(r)[0] != "UPSTREAM_UNAUTHORIZED") {
				t.Fatalf("codes %v, want UPSTREAM_UNAUTHORIZED", codes(r))
			}
			up.mu.Lock()
			tokens, traceparents := append([]string(nil), up.tokens...), append([]string(nil), up.traceparents...)
			up.mu.Unlock()
			if secret == "right-secret" && len(tokens) == 0 {
				t.Fatal("no API call reached the upstream")
			}
			for _, sp := range tree.Spans {
				for _, str := range tracingtest.Strings(sp) {
					if strings.Contains(str, secret) || strings.Contains(str, "Bearer") {
						t.Errorf("span %q carries a secret: %q", sp.Name, str)
					}
					for _, tok := range tokens {
						if tok != "" && strings.Contains(str, tok) {
							t.Errorf("span %q carries a bearer token: %q", sp.Name, str)
						}
					}
				}
			}
			clients := map[string]bool{}
			for _, sp := range tree.Spans {
				if sp.SpanKind == trace.SpanKindClient {
					clients["00-"+sp.SpanContext.TraceID().String()+"-"+sp.SpanContext.SpanID().String()+"-01"] = true
				}
			}
			for _, tp := range traceparents[len(traceparents)-len(clients):] {
				if !clients[tp] {
					t.Errorf("the upstream got traceparent %q, which names no HTTP client span of the trace", tp)
				}
			}
		})
	}
}

// TestTracingFromEnvironment runs the service as an operator would, with
// OTEL_EXPORTER_OTLP_ENDPOINT pointing at an OTLP/HTTP receiver: the README example's spans
// arrive there, in one trace, when the service stops.
func TestTracingFromEnvironment(t *testing.T) {
	// Not parallel: the OTEL_* variables are the process environment (t.Setenv), and the App
	// sets the global provider.
	receiver := tracingtest.NewReceiver(t)
	for _, k := range []string{"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
		"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES",
		"OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG"} {
		t.Setenv(k, "")
	}
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.URL)
	s := newService(t, nil, app.Options{})
	if r := s.query(t, readmeQuery, map[string]any{"id": s.sim.ExampleMachineID()}); len(r.Errors) > 0 {
		t.Fatalf("errors: %+v", r.Errors)
	}
	s.app.Close() // as server.go does when it stops: the spans are flushed

	spans := receiver.Spans()
	names := map[string]bool{}
	for _, sp := range spans {
		names[sp.Name] = true
		if sp.TraceID != spans[0].TraceID || sp.Resource["service.name"] != "mdegraph" {
			t.Errorf("span %q: trace %s, service %q; want one trace of service mdegraph", sp.Name, sp.TraceID, sp.Resource["service.name"])
		}
	}
	for _, want := range []string{"POST", "query DeviceLogonUsers", "load machines.get", "defender machines.get",
		"GET /api/machines/{id}", "load machines.logonusers", "defender machines.logonusers", "GET /api/machines/{id}/logonusers"} {
		if !names[want] {
			t.Errorf("no span %q among those received: %v", want, names)
		}
	}
}

// BenchmarkQueryWarmCacheTraced is BenchmarkQueryWarmCache with tracing on, every request
// sampled and its spans batched to an exporter that drops them: what tracing adds to a warm
// query (the server and operation spans; a warm query makes no other).
func BenchmarkQueryWarmCacheTraced(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	benchWarmOn(b, newBenchAppWith(b, app.Options{TracerProvider: tp}),
		postOf(`query($id: ID!) { machine(id: $id) { `+benchUsersFields+` } }`, true), []string{"machine"}, false)
}
