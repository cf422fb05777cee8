package tracing

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime/debug"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/mdegraph/mdegraph/internal/logtest"
	"github.com/mdegraph/mdegraph/internal/tracing/tracingtest"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestExportTarget(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		env      map[string]string
		on       bool
		protocol string
		endpoint string
		wantErr  string // the variable the error names
	}{
		{name: "nothing set: off", env: nil},
		{name: "base endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"},
			on: true, protocol: "http/protobuf", endpoint: "http://collector:4318/v1/traces"},
		{name: "base endpoint with a path", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://otel.example/prefix/"},
			on: true, protocol: "http/protobuf", endpoint: "https://otel.example/prefix/v1/traces"},
		{name: "traces endpoint used as is, and wins", env: map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://tempo:4318/custom"},
			on: true, protocol: "http/protobuf", endpoint: "http://tempo:4318/custom"},
		{name: "credentials and query left out of the log line", env: map[string]string{
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://user:pass@otel.example/v1/traces?key=s3cret"},
			on: true, protocol: "http/protobuf", endpoint: "https://otel.example/v1/traces"},
		{name: "otlp exporter named: the default endpoint", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"},
			on: true, protocol: "http/protobuf", endpoint: "http://localhost:4318/v1/traces"},
		{name: "exporter none wins over an endpoint", env: map[string]string{
			"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}},
		{name: "SDK disabled wins over an endpoint", env: map[string]string{
			"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}},
		{name: "SDK not disabled", env: map[string]string{
			"OTEL_SDK_DISABLED": "false", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"},
			on: true, protocol: "http/protobuf", endpoint: "http://collector:4318/v1/traces"},
		{name: "grpc", env: map[string]string{
			"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"},
			on: true, protocol: "grpc", endpoint: "collector:4317"},
		{name: "traces protocol wins", env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
			"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"},
			on: true, protocol: "http/json", endpoint: "http://collector:4318/v1/traces"},
		{name: "grpc default endpoint", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
			on: true, protocol: "grpc", endpoint: "localhost:4317"},
		{name: "bad SDK_DISABLED", env: map[string]string{"OTEL_SDK_DISABLED": "yes please"}, wantErr: "OTEL_SDK_DISABLED"},
		{name: "another exporter", env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, wantErr: "OTEL_TRACES_EXPORTER"},
		{name: "a list of exporters", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp,console"}, wantErr: "OTEL_TRACES_EXPORTER"},
		{name: "unknown protocol", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "thrift",
			"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, wantErr: "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"},
		{name: "endpoint without a scheme", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"},
			wantErr: "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{name: "traces endpoint not a URL", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://[::1"},
			wantErr: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"},
		{name: "unknown sampler", env: map[string]string{"OTEL_TRACES_SAMPLER": "sometimes",
			"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, wantErr: "OTEL_TRACES_SAMPLER"},
		{name: "ratio out of range", env: map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
			"OTEL_TRACES_SAMPLER_ARG": "1.5", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, wantErr: "OTEL_TRACES_SAMPLER_ARG"},
		{name: "ratio", env: map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25",
			"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, on: true, protocol: "http/protobuf", endpoint: "http://collector:4318/v1/traces"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, on, err := exportTarget(envOf(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr+" ") {
					t.Fatalf("error %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if on != tt.on {
				t.Fatalf("on = %v, want %v", on, tt.on)
			}
			if on && (got.protocol != tt.protocol || got.endpoint != tt.endpoint) {
				t.Errorf("got %+v, want protocol %s, endpoint %s", got, tt.protocol, tt.endpoint)
			}
		})
	}
}

// TestOffByDefault: without the variables there is no provider, the handler is left as it is,
// and starting a span allocates nothing.
func TestOffByDefault(t *testing.T) {
	// Not parallel: testing.AllocsPerRun.
	p, err := fromEnvironment(t.Context(), envOf(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Enabled() {
		t.Fatal("tracing on with no OTEL_* variable")
	}
	h := http.NotFoundHandler()
	if got := p.Handler(h); fmt.Sprintf("%p", got) != fmt.Sprintf("%p", h) {
		t.Error("Handler wrapped the handler with tracing off")
	}
	if _, span := p.TracerProvider().Tracer("x").Start(t.Context(), "x"); span.IsRecording() {
		t.Error("the provider of an off Provider records")
	}
	p.Close() // nothing to flush, nothing to fail
	p.SetGlobal()

	ctx := t.Context()
	allocs := testing.AllocsPerRun(100, func() {
		c, span := Start(ctx, "scope", "name")
		span.End()
		if Recording(c) {
			t.Fatal("a span recorded without a recording parent")
		}
	})
	if allocs != 0 {
		t.Errorf("Start without a recording span: %v allocations, want 0", allocs)
	}
}

// TestStartFollowsTheParent: spans are made by the provider of the request's span, so a
// test's provider sees them without being the global one.
func TestStartFollowsTheParent(t *testing.T) {
	t.Parallel()
	tp, exp := tracingtest.NewProvider(t)
	p := Using(tp)
	if !p.Enabled() {
		t.Fatal("Using(tp) is off")
	}
	h := p.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, span := Start(r.Context(), "github.com/mdegraph/mdegraph/internal/tracing", "child")
		span.End()
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/query", nil))
	p.Close() // leaves tp to its owner
	tree := tracingtest.NewTree(exp.GetSpans())
	roots := tree.Roots()
	if len(roots) != 1 || roots[0].SpanKind != trace.SpanKindServer {
		t.Fatalf("want one server span at the root:\n%s", tree)
	}
	children := tree.Children(roots[0])
	if len(children) != 1 || children[0].Name != "child" ||
		children[0].InstrumentationScope.Name != "github.com/mdegraph/mdegraph/internal/tracing" {
		t.Fatalf("want the child span under the server span, by the package's tracer:\n%s", tree)
	}
}

// TestStartEndpoint: the span of an endpoint family is named after it and carries it, under a
// recording span; without one, nothing is allocated.
func TestStartEndpoint(t *testing.T) {
	// Not parallel: testing.AllocsPerRun.
	ctx := t.Context()
	allocs := testing.AllocsPerRun(100, func() {
		c, span := StartEndpoint(ctx, "scope", "load", "machines.logonusers")
		span.End()
		if Recording(c) {
			t.Fatal("a span recorded without a recording parent")
		}
	})
	if allocs != 0 {
		t.Errorf("StartEndpoint without a recording span: %v allocations, want 0", allocs)
	}

	tp, exp := tracingtest.NewProvider(t)
	ctx, parent := tp.Tracer("test").Start(ctx, "parent")
	_, span := StartEndpoint(ctx, "github.com/mdegraph/mdegraph/internal/tracing", "load", "machines.logonusers")
	span.End()
	parent.End()
	tree := tracingtest.NewTree(exp.GetSpans())
	got := tree.Named("load machines.logonusers")
	if len(got) != 1 || tracingtest.Attr(got[0], AttrEndpoint) != "machines.logonusers" {
		t.Fatalf("want one span \"load machines.logonusers\" with %s=machines.logonusers:\n%s", AttrEndpoint, tree)
	}
	if p, ok := tree.Parent(got[0]); !ok || p.Name != "parent" {
		t.Errorf("the span is not under its parent:\n%s", tree)
	}
}

// TestExportsOverOTLP points the exporter at a loopback OTLP/HTTP receiver through the
// standard variables: the spans arrive there, in the trace the request's traceparent names,
// with the service's resource.
func TestExportsOverOTLP(t *testing.T) {
	// Not parallel: the exporter and the resource read the process environment (t.Setenv).
	tests := []struct {
		name        string
		env         func(receiver string) map[string]string
		path        string // where the receiver is asked
		contentType string
		service     string
	}{
		{name: "base endpoint", env: func(u string) map[string]string { return map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": u} },
			path: "/v1/traces", contentType: "application/x-protobuf", service: "mdegraph"},
		{name: "traces endpoint, service name, gzip", env: func(u string) map[string]string {
			return map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": u + "/otlp/traces", "OTEL_SERVICE_NAME": "mdegraph-eu",
				"OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"}
		}, path: "/otlp/traces", contentType: "application/x-protobuf", service: "mdegraph-eu"},
		{name: "http/json", env: func(u string) map[string]string {
			return map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": u, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}
		}, path: "/v1/traces", contentType: "application/json", service: "mdegraph"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			receiver := tracingtest.NewReceiver(t)
			for _, k := range []string{"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
				"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
				"OTEL_EXPORTER_OTLP_COMPRESSION", "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES",
				"OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG"} {
				t.Setenv(k, "")
			}
			for k, v := range tt.env(receiver.URL) {
				t.Setenv(k, v)
			}
			logs := &logtest.Buffer{}
			p, err := FromEnvironment(t.Context(), slog.New(slog.NewTextHandler(logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			if !p.Enabled() {
				t.Fatal("tracing off with an OTLP endpoint set")
			}
			h := p.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, span := Start(r.Context(), "github.com/mdegraph/mdegraph/internal/tracing", "child")
				span.End()
			}))
			const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
			req := httptest.NewRequest(http.MethodPost, "/query", nil)
			req.Header.Set("traceparent", "00-"+traceID+"-"+parentID+"-01")
			h.ServeHTTP(httptest.NewRecorder(), req)
			p.Close() // flushes

			reqs := receiver.Requests()
			if len(reqs) == 0 {
				t.Fatalf("nothing exported; log:\n%s", logs)
			}
			for _, r := range reqs {
				if r.Path != tt.path || r.ContentType != tt.contentType {
					t.Errorf("export to %s as %s, want %s as %s", r.Path, r.ContentType, tt.path, tt.contentType)
				}
			}
			spans := receiver.Spans()
			if len(spans) != 2 {
				t.Fatalf("%d spans exported, want 2 (server, child): %+v", len(spans), spans)
			}
			server, child := spans[1], spans[0] // the child ends first
			if server.ParentSpanID != parentID || server.TraceID != traceID {
				t.Errorf("server span in trace %s under %s, want the request's traceparent (%s, %s)",
					server.TraceID, server.ParentSpanID, traceID, parentID)
			}
			if child.Name != "child" || child.ParentSpanID != server.SpanID || child.TraceID != traceID {
				t.Errorf("child span %+v is not under the server span %s", child, server.SpanID)
			}
			if server.Attributes["http.request.method"] != "POST" || server.Attributes["url.path"] != "/query" {
				t.Errorf("server span attributes %v lack the HTTP semantic conventions'", server.Attributes)
			}
			if got := child.Resource["service.name"]; got != tt.service {
				t.Errorf("service.name %q, want %q", got, tt.service)
			}
			if child.Resource["telemetry.sdk.language"] != "go" || child.Resource["host.name"] == "" {
				t.Errorf("resource %v lacks telemetry.sdk.* or host.name", child.Resource)
			}
		})
	}
}

// TestGRPCExporterBuilds: with the grpc protocol the gRPC exporter is built; nothing is sent
// until a span ends, so closing it with none sends nothing and fails nothing.
func TestGRPCExporterBuilds(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	logs := &logtest.Buffer{}
	p, err := FromEnvironment(t.Context(), slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Enabled() || p.target.protocol != "grpc" {
		t.Fatalf("got %+v, want gRPC tracing on", p)
	}
	p.Close()
	if strings.Contains(logs.String(), "could not be exported") {
		t.Errorf("closing with nothing to export failed:\n%s", logs)
	}
}

func TestBuildVersion(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		info *debug.BuildInfo
		want string
	}{
		{"module version", &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}}, "v1.2.3"},
		{"checkout", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "4cb4561"}, {Key: "vcs.modified", Value: "false"}}}, "4cb4561"},
		{"modified checkout", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "4cb4561"}, {Key: "vcs.modified", Value: "true"}}}, "4cb4561+dirty"},
		{"no VCS information", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "(devel)"},
		{"no build information", nil, ""},
	}
	for _, tt := range tests {
		if got := buildVersion(tt.info, tt.info != nil); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}
