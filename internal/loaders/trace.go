package loaders

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/mdegraph/mdegraph/internal/defender"
	"github.com/mdegraph/mdegraph/internal/tracing"
)

// tracerName is this package's OpenTelemetry tracer (instrumentation scope).
const tracerName = "github.com/mdegraph/mdegraph/internal/loaders"

// Attributes of a load span ("load machines.logonusers"): one dataloader batch of a request,
// answered from the cache, by calls in flight for other requests, or by calls it starts, whose
// spans are its children. It also carries defender.endpoint (defender.AttrEndpoint).
const (
	// AttrKeys counts the distinct keys asked for.
	AttrKeys = attribute.Key("mdegraph.loader.keys")
	// AttrCacheHits counts the keys answered fresh from the cache.
	AttrCacheHits = attribute.Key("mdegraph.loader.cache_hits")
	// AttrShared counts the keys answered by calls already in flight for other requests (their
	// spans are in the trace of the request that started them).
	AttrShared = attribute.Key("mdegraph.loader.shared")
	// AttrCalls counts the upstream calls the load started.
	AttrCalls = attribute.Key("mdegraph.loader.calls")
	// AttrErrors counts the keys answered with an error (a 404 included).
	AttrErrors = attribute.Key("mdegraph.loader.errors")
	// AttrStale counts the keys answered stale (see Stale).
	AttrStale = attribute.Key("mdegraph.loader.stale")
)

// startLoad starts the span of a load of endpoint's answers, when ctx's span records.
func startLoad(ctx context.Context, endpoint defender.Endpoint) (context.Context, trace.Span) {
	return tracing.StartEndpoint(ctx, tracerName, "load", string(endpoint))
}

// traceJoined records on the load's span what newBatch found: the keys, those the cache
// answered and those calls in flight will.
func (b *batch[V]) traceJoined(shared int) {
	if !b.span.IsRecording() {
		return
	}
	b.span.SetAttributes(AttrKeys.Int(len(b.keyOf)), AttrCacheHits.Int(len(b.byKey)), AttrShared.Int(shared))
}

// endSpan records the calls started and the answers, and ends the load's span.
func (b *batch[V]) endSpan() {
	if !b.span.IsRecording() {
		return
	}
	var errs, stale int
	for _, r := range b.byKey {
		switch {
		case r.Err != nil:
			errs++
		case r.Stale != nil:
			stale++
		}
	}
	b.span.SetAttributes(AttrCalls.Int(b.calls), AttrErrors.Int(errs), AttrStale.Int(stale))
	b.span.End()
}
