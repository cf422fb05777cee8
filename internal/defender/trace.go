package defender

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/mdegraph/mdegraph/internal/tracing"
	"github.com/mdegraph/mdegraph/internal/upstreamauth"
)

// tracerName is this package's OpenTelemetry tracer (instrumentation scope).
const tracerName = "github.com/mdegraph/mdegraph/internal/defender"

// Attributes of the client's spans.
//
// Each client method call is one span, "defender machines.logonusers", a child of the caller's
// span: the token, every wait for quota and every attempt happen inside it. It carries
// AttrEndpoint, AttrAttempts, http.response.status_code (of the last attempt), and on failure
// error.type (Defender's error code, e.g. ResourceNotFound, or the kind of failure), the error
// as an exception event, and AttrCorrelationID when Defender's error answer had one. Each
// failed attempt, retried or not, adds an event "attempt failed" with its attempt, status,
// error.type and correlation id.
//
// Each attempt is an HTTP client span (otelhttp, "GET /api/machines/{id}/logonusers") inside
// the call's, with the HTTP semantic conventions' attributes (http.request.method,
// server.address, server.port, http.response.status_code, error.type) plus AttrEndpoint and
// AttrAttempt. Its url.full is the path template (url.template) on the API's host, never the
// URL sent: paths and OData filters name devices and people, and traces are kept longer, and
// by more people, than the service's own data. No header is recorded, so never the bearer
// token; the request carries the trace context (traceparent) to Defender.
const (
	// AttrEndpoint is the endpoint family (Endpoint), the unit Defender's rate limits count.
	AttrEndpoint = tracing.AttrEndpoint
	// AttrCorrelationID is Defender's correlation id of an error answer (its error.target).
	AttrCorrelationID = attribute.Key("defender.correlation_id")
	// AttrAttempt numbers an attempt within its call, from 1.
	AttrAttempt = attribute.Key("defender.attempt")
	// AttrAttempts counts the HTTP attempts of a call (retries included).
	AttrAttempts = attribute.Key("defender.attempts")
)

// startCall starts the span of a call to endpoint, when ctx's span records.
func startCall(ctx context.Context, endpoint Endpoint) (context.Context, trace.Span) {
	return tracing.StartEndpoint(ctx, tracerName, "defender", string(endpoint))
}

// endCall records the call's outcome on its span and ends it.
func endCall(span trace.Span, resp *Response, err error) {
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(AttrAttempts.Int(resp.Attempts))
	if resp.StatusCode != 0 {
		span.SetAttributes(semconv.HTTPResponseStatusCode(resp.StatusCode))
	}
	if err != nil {
		span.SetAttributes(errorType(err))
		if id := correlationID(err); id != "" {
			span.SetAttributes(AttrCorrelationID.String(id))
		}
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// traceFailedAttempt notes on the call's span (ctx's) that the attempt call failed.
func traceFailedAttempt(ctx context.Context, call Call) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() || call.Err == nil {
		return
	}
	attrs := []attribute.KeyValue{AttrAttempt.Int(call.Attempt), errorType(call.Err)}
	if call.Status != 0 {
		attrs = append(attrs, semconv.HTTPResponseStatusCode(call.Status))
	}
	if call.CorrelationID != "" {
		attrs = append(attrs, AttrCorrelationID.String(call.CorrelationID))
	}
	span.AddEvent("attempt failed", trace.WithAttributes(attrs...))
}

// errorType is the error.type of a failed call: Defender's error code when it answered one
// (ResourceNotFound, TooManyRequests, ...), quota_exceeded when the limiter refused the call,
// token when no token could be had, unavailable when no usable answer came, timeout or
// canceled when the context ended, otherwise the semantic conventions' default (the error's
// Go type).
func errorType(err error) attribute.KeyValue {
	var (
		er          *ErrorResponse
		quota       *QuotaError
		unavailable *UnavailableError
		token       *upstreamauth.Error
	)
	switch {
	case errors.As(err, &er) && er.Code != "":
		return semconv.ErrorTypeKey.String(er.Code)
	case errors.As(err, &quota):
		return semconv.ErrorTypeKey.String("quota_exceeded")
	case errors.As(err, &token):
		return semconv.ErrorTypeKey.String("token")
	case errors.As(err, &unavailable):
		return semconv.ErrorTypeKey.String("unavailable")
	case errors.Is(err, context.DeadlineExceeded):
		return semconv.ErrorTypeKey.String("timeout")
	case errors.Is(err, context.Canceled):
		return semconv.ErrorTypeKey.String("canceled")
	}
	return semconv.ErrorType(err)
}

// correlationID is the correlation id of Defender's error answer in err, or "".
func correlationID(err error) string {
	var er *ErrorResponse
	if errors.As(err, &er) {
		return er.Target
	}
	return ""
}

type attemptKey struct{}

// attemptContext returns ctx noting, for the attempt's HTTP span, which endpoint and attempt
// it is; ctx itself when nothing records.
func attemptContext(ctx context.Context, endpoint Endpoint, n int) context.Context {
	if !tracing.Recording(ctx) {
		return ctx
	}
	return context.WithValue(ctx, attemptKey{}, []attribute.KeyValue{AttrEndpoint.String(string(endpoint)), AttrAttempt.Int(n)})
}

// tracedTransport sends a request through otelhttp's transport, which makes its HTTP client
// span, when the request's context has a recording span, and straight to base otherwise.
type tracedTransport struct {
	base, traced http.RoundTripper
}

// newTracedTransport returns base (http.DefaultTransport if nil) with tracing.
func newTracedTransport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	inner := attemptAttributes{base}
	return tracedTransport{base: base, traced: otelhttp.NewTransport(inner,
		otelhttp.WithPropagators(tracing.Propagator),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " " + pathTemplate(r.URL.Path) }),
	)}
}

func (t tracedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if tracing.Recording(r.Context()) {
		return t.traced.RoundTrip(r)
	}
	return t.base.RoundTrip(r)
}

// attemptAttributes runs inside otelhttp's transport, where the request's span is the
// attempt's HTTP span: it adds the attempt's attributes and replaces url.full, which otelhttp
// set to the URL sent, with the path template.
type attemptAttributes struct{ base http.RoundTripper }

func (a attemptAttributes) RoundTrip(r *http.Request) (*http.Response, error) {
	if span := trace.SpanFromContext(r.Context()); span.IsRecording() {
		tmpl := pathTemplate(r.URL.Path)
		span.SetAttributes(semconv.URLFull(r.URL.Scheme+"://"+r.URL.Host+tmpl), semconv.URLTemplate(tmpl))
		if attrs, ok := r.Context().Value(attemptKey{}).([]attribute.KeyValue); ok {
			span.SetAttributes(attrs...)
		}
	}
	return a.base.RoundTrip(r)
}

// pathTemplate replaces the identifiers in an API path with {id}: after /api, Defender's paths
// alternate collections and identifiers (/api/machines/{id}/logonusers,
// /api/users/{id}/machines). A path elsewhere (a base URL with a path prefix) is templated
// from its /api on.
func pathTemplate(path string) string {
	prefix, rest, ok := strings.Cut(path, "/api/")
	if !ok {
		return path
	}
	segs := strings.Split(rest, "/")
	for i := 1; i < len(segs); i += 2 {
		if segs[i] != "" {
			segs[i] = "{id}"
		}
	}
	return prefix + "/api/" + strings.Join(segs, "/")
}
