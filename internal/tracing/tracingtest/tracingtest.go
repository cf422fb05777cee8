// Package tracingtest helps tests read the service's spans: an in-memory provider whose spans
// form a tree to walk and print, and an OTLP/HTTP receiver on loopback that decodes what an
// exporter sends it.
package tracingtest

import (
	"compress/gzip"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// NewProvider returns an SDK TracerProvider that samples every span and keeps each one in the
// returned exporter as soon as it ends; it is shut down when the test ends.
func NewProvider(t testing.TB) (*sdktrace.TracerProvider, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	return tp, exp
}

// Tree is a set of ended spans, walked by their parent links.
type Tree struct {
	Spans []tracetest.SpanStub // in the order they ended
	byID  map[trace.SpanID]int
}

// NewTree returns the tree of spans.
func NewTree(spans tracetest.SpanStubs) *Tree {
	t := &Tree{Spans: spans, byID: make(map[trace.SpanID]int, len(spans))}
	for i, s := range spans {
		t.byID[s.SpanContext.SpanID()] = i
	}
	return t
}

// Roots returns the spans whose parent is not in the tree, in the order they started.
func (t *Tree) Roots() []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range t.Spans {
		if _, ok := t.byID[s.Parent.SpanID()]; !ok {
			out = append(out, s)
		}
	}
	return byStart(out)
}

// Children returns the spans whose parent is s, in the order they started.
func (t *Tree) Children(s tracetest.SpanStub) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, c := range t.Spans {
		if c.Parent.SpanID() == s.SpanContext.SpanID() && c.Parent.IsValid() {
			out = append(out, c)
		}
	}
	return byStart(out)
}

// Parent returns s's parent, if it is in the tree.
func (t *Tree) Parent(s tracetest.SpanStub) (tracetest.SpanStub, bool) {
	i, ok := t.byID[s.Parent.SpanID()]
	if !ok || !s.Parent.IsValid() {
		return tracetest.SpanStub{}, false
	}
	return t.Spans[i], true
}

// Named returns the spans called name, in the order they started.
func (t *Tree) Named(name string) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range t.Spans {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return byStart(out)
}

// String draws the tree, one span a line, indented under its parent: its name, kind, status
// and attributes.
func (t *Tree) String() string {
	var b strings.Builder
	var draw func(s tracetest.SpanStub, depth int)
	draw = func(s tracetest.SpanStub, depth int) {
		fmt.Fprintf(&b, "%s%s [%s", strings.Repeat("  ", depth), s.Name, s.SpanKind)
		if s.Status.Code != 0 {
			fmt.Fprintf(&b, ", %s", s.Status.Code)
			if s.Status.Description != "" {
				fmt.Fprintf(&b, " %q", s.Status.Description)
			}
		}
		b.WriteString("]")
		for _, kv := range s.Attributes {
			fmt.Fprintf(&b, " %s=%s", kv.Key, kv.Value.Emit())
		}
		for _, e := range s.Events {
			fmt.Fprintf(&b, " event(%s)", e.Name)
		}
		b.WriteString("\n")
		for _, c := range t.Children(s) {
			draw(c, depth+1)
		}
	}
	for _, r := range t.Roots() {
		draw(r, 0)
	}
	return b.String()
}

// Attr returns the value of s's attribute key ("" if absent), as attribute.Value.Emit writes it.
func Attr(s tracetest.SpanStub, key attribute.Key) string {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

// Strings returns every string a span carries, for tests that look for what must never be
// there (a secret, a token): names, status descriptions, attribute values, events and their
// attributes, links' attributes, and the resource's attributes.
func Strings(s tracetest.SpanStub) []string {
	out := []string{s.Name, s.Status.Description}
	kvs := slices.Clone(s.Attributes)
	for _, e := range s.Events {
		out = append(out, e.Name)
		kvs = append(kvs, e.Attributes...)
	}
	for _, l := range s.Links {
		kvs = append(kvs, l.Attributes...)
	}
	if s.Resource != nil {
		kvs = append(kvs, s.Resource.Attributes()...)
	}
	for _, kv := range kvs {
		out = append(out, string(kv.Key), kv.Value.Emit())
	}
	return out
}

func byStart(spans []tracetest.SpanStub) []tracetest.SpanStub {
	slices.SortStableFunc(spans, func(a, b tracetest.SpanStub) int { return a.StartTime.Compare(b.StartTime) })
	return spans
}

// Receiver is an OTLP/HTTP traces receiver on a loopback httptest server: it accepts export
// requests on any path, in protobuf or JSON, gzipped or not, and keeps what they carried.
type Receiver struct {
	// URL is the server's base URL, for OTEL_EXPORTER_OTLP_ENDPOINT.
	URL string

	mu       sync.Mutex
	requests []Request
}

// Request is one export request the Receiver got.
type Request struct {
	Path, ContentType string
	Spans             []ReceivedSpan
}

// ReceivedSpan is one span of an export request, with its resource and instrumentation scope.
type ReceivedSpan struct {
	Resource     map[string]string // the resource's attributes
	Scope, Name  string
	TraceID      string // hex
	SpanID       string // hex
	ParentSpanID string // hex, "" for a root
	Attributes   map[string]string
}

// NewReceiver starts a Receiver, closed when the test ends.
func NewReceiver(t testing.TB) *Receiver {
	t.Helper()
	r := &Receiver{}
	srv := httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

// Requests returns the export requests received so far.
func (r *Receiver) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.requests)
}

// Spans returns the spans of every request received so far.
func (r *Receiver) Spans() []ReceivedSpan {
	var out []ReceivedSpan
	for _, req := range r.Requests() {
		out = append(out, req.Spans...)
	}
	return out
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		gz, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = gz
	}
	b, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var msg collectortrace.ExportTraceServiceRequest
	ct := req.Header.Get("Content-Type")
	switch ct {
	case "application/x-protobuf":
		err = proto.Unmarshal(b, &msg)
	case "application/json":
		if b, err = hexIDsToBase64(b); err == nil {
			err = protojson.Unmarshal(b, &msg)
		}
	default:
		err = fmt.Errorf("unsupported Content-Type %q", ct)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	got := Request{Path: req.URL.Path, ContentType: ct, Spans: decodeSpans(&msg)}
	r.mu.Lock()
	r.requests = append(r.requests, got)
	r.mu.Unlock()
	out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", ct)
	_, _ = w.Write(out)
}

// hexIDsToBase64 rewrites the trace and span ids of an OTLP/JSON body, which OTLP writes in
// hex, in the base64 that protojson reads for bytes.
func hexIDsToBase64(b []byte) ([]byte, error) {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if s, ok := e.(string); ok && (k == "traceId" || k == "spanId" || k == "parentSpanId") {
					if id, err := hex.DecodeString(s); err == nil {
						x[k] = base64.StdEncoding.EncodeToString(id)
					}
					continue
				}
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	return json.Marshal(v)
}

func decodeSpans(msg *collectortrace.ExportTraceServiceRequest) []ReceivedSpan {
	var out []ReceivedSpan
	for _, rs := range msg.GetResourceSpans() {
		resource := attributes(rs.GetResource().GetAttributes())
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				out = append(out, ReceivedSpan{
					Resource: resource, Scope: ss.GetScope().GetName(), Name: s.GetName(),
					TraceID: hex.EncodeToString(s.GetTraceId()), SpanID: hex.EncodeToString(s.GetSpanId()),
					ParentSpanID: hex.EncodeToString(s.GetParentSpanId()), Attributes: attributes(s.GetAttributes()),
				})
			}
		}
	}
	return out
}

// attributes returns kvs' values as strings (a string as is, other scalars as fmt prints them).
func attributes(kvs []*commonpb.KeyValue) map[string]string {
	out := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		switch v := kv.GetValue().GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			out[kv.GetKey()] = v.StringValue
		case *commonpb.AnyValue_IntValue:
			out[kv.GetKey()] = fmt.Sprint(v.IntValue)
		case *commonpb.AnyValue_BoolValue:
			out[kv.GetKey()] = fmt.Sprint(v.BoolValue)
		case *commonpb.AnyValue_DoubleValue:
			out[kv.GetKey()] = fmt.Sprint(v.DoubleValue)
		default:
			out[kv.GetKey()] = kv.GetValue().String()
		}
	}
	return out
}
