package quota

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/mdegraph/mdegraph/internal/tracing"
)

// tracerName is this package's OpenTelemetry tracer (instrumentation scope).
const tracerName = "github.com/mdegraph/mdegraph/internal/quota"

// Attributes of a wait span ("quota wait machines.logonusers"): a call that could not be granted
// at once, queued in its turn or refused. A call granted at once makes no span.
const (
	// AttrFamily is the endpoint family: the same attribute as the Defender client's spans.
	AttrFamily = tracing.AttrEndpoint
	// AttrOutcome is granted, exceeded (refused: its turn would come after QUOTA_MAX_WAIT or
	// the deadline, at once or when a pause or another caller's turn pushed it back) or
	// cancelled, as in the quota wait metric.
	AttrOutcome = attribute.Key("mdegraph.quota.outcome")
	// AttrWaited is the time the call spent in Take, in seconds (the span's duration).
	AttrWaited = attribute.Key("mdegraph.quota.waited")
	// AttrRetryAfter is, for an exceeded call, the time until its turn, in seconds.
	AttrRetryAfter = attribute.Key("mdegraph.quota.retry_after")
)

// traceWait records, when ctx's span records, the span of a Take of family that began at
// start and could not be granted at once, ending now with err.
func traceWait(ctx context.Context, family string, start time.Time, err error) {
	if !tracing.Recording(ctx) {
		return
	}
	_, span := tracing.StartEndpoint(ctx, tracerName, "quota wait", family, trace.WithTimestamp(start))
	end := time.Now()
	if exceeded, ok := errors.AsType[*ExceededError](err); ok {
		span.SetAttributes(AttrRetryAfter.Float64(exceeded.RetryAfter.Seconds()))
	}
	span.SetAttributes(AttrOutcome.String(WaitOutcome(err)), AttrWaited.Float64(end.Sub(start).Seconds()))
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End(trace.WithTimestamp(end))
}

// WaitOutcome names how a Take (or Set.Wait) that ended with err went, for the quota wait span
// and metric: granted (err is nil), exceeded (an *ExceededError, wrapped or not) or cancelled
// (any other error: the caller's context ended).
func WaitOutcome(err error) string {
	if err == nil {
		return "granted"
	}
	if _, ok := errors.AsType[*ExceededError](err); ok {
		return "exceeded"
	}
	return "cancelled"
}
