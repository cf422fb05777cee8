// Package tracing sets up OpenTelemetry tracing for the service and gives the other packages
// one way to start their spans.
//
// Tracing is off unless the standard OpenTelemetry variables ask for it
// (https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/ and
// https://opentelemetry.io/docs/specs/otel/protocol/exporter/): OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT set, or OTEL_TRACES_EXPORTER=otlp, and neither
// OTEL_TRACES_EXPORTER=none nor OTEL_SDK_DISABLED=true. Then FromEnvironment builds the SDK's
// TracerProvider: spans batched and exported over OTLP, by default OTLP/HTTP with protobuf
// (OTEL_EXPORTER_OTLP_PROTOCOL=grpc for gRPC; the exporter reads its own
// OTEL_EXPORTER_OTLP_* variables: headers, timeout, compression, certificates), the sampler of
// OTEL_TRACES_SAMPLER (parent-based always-on by default), and a resource naming the service
// (service.name "mdegraph" unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES say otherwise,
// service.version from the build, host.name). Off, nothing is built: no exporter, no goroutine.
//
// Spans are made only under a recording span (Start): the HTTP server span that Handler
// starts for each request is the root of a request's spans, and its provider makes all of
// them. So with tracing off, Handler adds nothing and Start costs one context look-up.
package tracing

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/mdegraph/mdegraph/internal/quietlog"
)

// ServiceName is the service.name of the service's spans unless OTEL_SERVICE_NAME (or
// service.name in OTEL_RESOURCE_ATTRIBUTES) names it otherwise.
const ServiceName = "mdegraph"

// ShutdownTimeout bounds how long Close waits for the last spans to be exported.
const ShutdownTimeout = 5 * time.Second

// Propagator is how trace context travels in HTTP headers, incoming and outgoing: W3C Trace
// Context (traceparent, tracestate).
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

// Provider is the service's tracing: the TracerProvider that makes its spans, or none when
// tracing is off. A nil *Provider is off. It is safe for concurrent use.
type Provider struct {
	tp       trace.TracerProvider // nil when off
	shutdown func(context.Context) error
	logger   *slog.Logger
	target   target
}

// FromEnvironment returns the Provider the OTEL_* variables of the process environment
// describe (see the package doc): off without them. A variable this service cannot honour (an
// unknown exporter or protocol, an endpoint that is not an http(s) URL, an unknown sampler) is
// an error naming it. logger receives export failures (one warning a minute for
// a repeated one) and a line saying where spans go.
func FromEnvironment(ctx context.Context, logger *slog.Logger) (*Provider, error) {
	return fromEnvironment(ctx, os.Getenv, logger)
}

// fromEnvironment is FromEnvironment reading the variables with getenv. The exporter, the
// sampler and the resource read the process environment themselves, so getenv is os.Getenv
// except in the tests of the checks.
func fromEnvironment(ctx context.Context, getenv func(string) string, logger *slog.Logger) (*Provider, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	target, on, err := exportTarget(getenv)
	if err != nil || !on {
		return nil, err
	}
	res, err := resource.New(ctx,
		resource.WithTelemetrySDK(),
		resource.WithHost(),
		resource.WithAttributes(serviceAttributes()...),
		resource.WithFromEnv(), // last: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
	)
	if err != nil {
		return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	var exporter sdktrace.SpanExporter
	if target.protocol == "grpc" {
		exporter, err = otlptracegrpc.New(ctx)
	} else {
		exporter, err = otlptracehttp.New(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter), sdktrace.WithResource(res))
	return &Provider{tp: tp, shutdown: tp.Shutdown, logger: logger, target: target}, nil
}

// Using returns a Provider whose spans tp makes, for tests (an SDK provider with an in-memory
// exporter). Close leaves tp to its owner.
func Using(tp trace.TracerProvider) *Provider {
	return &Provider{tp: tp, logger: slog.New(slog.DiscardHandler)}
}

// Enabled reports whether spans are made.
func (p *Provider) Enabled() bool { return p != nil && p.tp != nil }

// TracerProvider returns the provider that makes the spans: a no-op one when off.
func (p *Provider) TracerProvider() trace.TracerProvider {
	if !p.Enabled() {
		return noop.NewTracerProvider()
	}
	return p.tp
}

// SetGlobal makes p the process's TracerProvider and W3C Trace Context its propagator
// (otel.SetTracerProvider, otel.SetTextMapPropagator), for code that asks the global ones
// (otel.Tracer), and sends the SDK's own errors (a failed export) to p's logger, one warning
// a minute for a repeated one. It does nothing when p is off, leaving the globals as they are.
func (p *Provider) SetGlobal() {
	if !p.Enabled() {
		return
	}
	otel.SetTracerProvider(p.tp)
	otel.SetTextMapPropagator(Propagator)
	repeats := quietlog.New(time.Minute) // a collector that is down fails every batch
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		level, lowered := repeats.Level(err.Error(), slog.LevelWarn)
		p.logger.LogAttrs(context.Background(), level, "tracing: the OpenTelemetry SDK failed (spans may be lost)",
			slog.String("error", err.Error()), slog.Int("repeats_since_last_warning", lowered))
	}))
	p.logger.Info("tracing on: spans exported over OTLP (OTEL_EXPORTER_OTLP_* variables)",
		"protocol", p.target.protocol, "endpoint", p.target.endpoint)
}

// Handler returns h wrapped in an OpenTelemetry HTTP server span (otelhttp): the trace
// context of the request's traceparent header is continued, the span carries the HTTP
// semantic conventions' attributes (http.request.method, url.path, http.route,
// http.response.status_code, ...; never a header or the query string) and is the parent of
// every span the request makes. Off, it returns h itself.
func (p *Provider) Handler(h http.Handler) http.Handler {
	if !p.Enabled() {
		return h
	}
	return otelhttp.NewHandler(h, "", otelhttp.WithTracerProvider(p.tp), otelhttp.WithPropagators(Propagator))
}

// Close exports the spans not yet exported, waiting at most ShutdownTimeout, and stops the
// exporter; it logs a failure. It does nothing when off or for a Provider made by Using.
func (p *Provider) Close() {
	if !p.Enabled() || p.shutdown == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	if err := p.shutdown(ctx); err != nil {
		p.logger.Warn("tracing: the last spans could not be exported at shutdown", "error", err.Error(), "endpoint", p.target.endpoint)
	}
}

// Recording reports whether ctx's span is recording: only then does Start make a span.
func Recording(ctx context.Context) bool {
	return trace.SpanFromContext(ctx).IsRecording()
}

// Start starts a span called name as a child of ctx's span, with the tracer called scope (the
// calling package's import path) of the provider that made ctx's span, and returns ctx
// carrying it. When ctx's span is not recording (tracing off, a request not sampled, no span
// at all), it returns ctx and a span that records nothing, without allocating: callers compute
// attributes only when span.IsRecording().
func Start(ctx context.Context, scope, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	parent := trace.SpanFromContext(ctx)
	if !parent.IsRecording() {
		return ctx, noopSpan
	}
	return parent.TracerProvider().Tracer(scope).Start(ctx, name, opts...)
}

// AttrEndpoint is the Defender endpoint family a span is about (machines.logonusers, ...): the
// unit Defender's rate limits count. StartEndpoint sets it.
const AttrEndpoint = attribute.Key("defender.endpoint")

// StartEndpoint is Start for a span about one endpoint family: called "{op} {endpoint}" ("load
// machines.logonusers") and carrying AttrEndpoint. The name and the attribute are made only
// when ctx's span records, so that otherwise it allocates nothing, as Start.
func StartEndpoint(ctx context.Context, scope, op, endpoint string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if !Recording(ctx) {
		return ctx, noopSpan
	}
	opts = append(opts, trace.WithAttributes(AttrEndpoint.String(endpoint)))
	return Start(ctx, scope, op+" "+endpoint, opts...)
}

// noopSpan is the span Start returns when nothing is recorded.
var noopSpan = trace.SpanFromContext(context.Background())

// target is where spans go: the OTLP protocol and the endpoint (for the startup line).
type target struct {
	protocol string // grpc, http/protobuf or http/json
	endpoint string
}

// exportTarget reads which traces exporter the variables ask for: on, and where spans go, or
// off; or an error naming a variable this service cannot honour.
func exportTarget(getenv func(string) string) (t target, on bool, err error) {
	if v := strings.TrimSpace(getenv("OTEL_SDK_DISABLED")); v != "" {
		disabled, err := strconv.ParseBool(v)
		if err != nil {
			return t, false, fmt.Errorf("OTEL_SDK_DISABLED %q: want true or false", v)
		}
		if disabled {
			return t, false, nil
		}
	}
	explicit := false
	switch v := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER"))); v {
	case "":
	case "none":
		return t, false, nil
	case "otlp":
		explicit = true
	default:
		return t, false, fmt.Errorf("OTEL_TRACES_EXPORTER %q: this service exports traces only over OTLP: use otlp, or none", v)
	}
	t.protocol = "http/protobuf" // the specification's default; the traces variable wins over the general one
	for _, name := range []string{"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"} {
		switch v := strings.TrimSpace(getenv(name)); v {
		case "":
		case "grpc", "http/protobuf", "http/json":
			t.protocol = v
		default:
			return t, false, fmt.Errorf("%s %q: want http/protobuf, http/json or grpc", name, v)
		}
	}
	if err := checkSampler(getenv); err != nil {
		return t, false, err
	}
	t.endpoint = "http://localhost:4318/v1/traces" // the exporters' defaults
	if t.protocol == "grpc" {
		t.endpoint = "localhost:4317"
	}
	set := false
	for _, name := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"} { // the second wins
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			continue
		}
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return t, false, fmt.Errorf("%s %q: want an http(s) URL, e.g. http://collector:4318", name, v)
		}
		u.User, u.RawQuery, u.Fragment = nil, "", ""
		switch {
		case t.protocol == "grpc":
			t.endpoint = u.Host
		case name == "OTEL_EXPORTER_OTLP_ENDPOINT": // a base URL; the signal's path is added
			t.endpoint = u.JoinPath("v1/traces").String()
		default: // the URL itself
			t.endpoint = u.String()
		}
		set = true
	}
	return t, set || explicit, nil
}

// samplers are the values of OTEL_TRACES_SAMPLER the SDK knows, and whether they take a ratio
// in OTEL_TRACES_SAMPLER_ARG.
var samplers = map[string]bool{
	"always_on": false, "always_off": false, "parentbased_always_on": false, "parentbased_always_off": false,
	"traceidratio": true, "parentbased_traceidratio": true,
}

// checkSampler fails on an OTEL_TRACES_SAMPLER the SDK would ignore (it would fall back to its
// default and say so only in its error handler) or a ratio out of [0, 1].
func checkSampler(getenv func(string) string) error {
	v := strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER"))
	if v == "" {
		return nil
	}
	ratio, ok := samplers[v]
	if !ok {
		return fmt.Errorf("OTEL_TRACES_SAMPLER %q: want always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio", v)
	}
	if arg := strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER_ARG")); ratio && arg != "" {
		if r, err := strconv.ParseFloat(arg, 64); err != nil || r < 0 || r > 1 {
			return fmt.Errorf("OTEL_TRACES_SAMPLER_ARG %q: want a ratio between 0 and 1", arg)
		}
	}
	return nil
}

// serviceAttributes are service.name and, when the build says, service.version: the module's
// version, or the VCS revision of a build from a checkout.
func serviceAttributes() []attribute.KeyValue {
	attrs := []attribute.KeyValue{semconv.ServiceName(ServiceName)}
	if v := buildVersion(debug.ReadBuildInfo()); v != "" {
		attrs = append(attrs, semconv.ServiceVersion(v))
	}
	return attrs
}

// buildVersion is the main module's version from info, or the VCS revision (with "+dirty"
// for a modified checkout) when the version is "(devel)"; "" when neither is known.
func buildVersion(info *debug.BuildInfo, ok bool) string {
	if !ok || info == nil {
		return ""
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev == "" {
		return info.Main.Version
	}
	return rev + dirty
}
