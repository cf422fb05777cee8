// Package metrics exposes the service's Prometheus metrics: upstream calls and their latency,
// calls saved (by batching, in-flight sharing and the cache, counted apart), answers served
// stale, quota waits and queues, GraphQL operations by outcome, and operations and quota waits
// per caller (the busiest callers by name, the others together).
package metrics

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mdegraph/mdegraph/internal/callerlimit"
	"github.com/mdegraph/mdegraph/internal/defender"
	"github.com/mdegraph/mdegraph/internal/quota"
	"github.com/mdegraph/mdegraph/internal/upstreamauth"
)

// Metrics holds the collectors. Its methods are safe for concurrent use, and safe on a nil
// *Metrics (they do nothing), so tests can leave it out.
type Metrics struct {
	upstreamCalls    *prometheus.CounterVec
	upstreamDuration *prometheus.HistogramVec
	saved            *prometheus.CounterVec
	stale            *prometheus.CounterVec
	quotaWait        *prometheus.HistogramVec
	operations       *prometheus.CounterVec
	fieldErrors      *prometheus.CounterVec
	opDuration       prometheus.Histogram
	tokenRequests    *prometheus.CounterVec
	responseCache    *prometheus.CounterVec

	callers           *callerLabels
	callerOperations  *prometheus.CounterVec
	callerRefusals    *prometheus.CounterVec
	callerQuotaWaits  *prometheus.CounterVec
	callerQuotaWaited *prometheus.CounterVec
}

// New registers the collectors with reg.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		upstreamCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mdegraph_upstream_calls_total",
			Help: "HTTP calls made to the Defender API, by endpoint family and status (\"error\" when no answer came).",
		}, []string{"endpoint", "status"}),
		upstreamDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mdegraph_upstream_call_duration_seconds",
			Help:    "Latency of HTTP calls to the Defender API, by endpoint family.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}, []string{"endpoint"}),
		saved: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mdegraph_upstream_calls_saved_total",
			Help: "Upstream calls avoided, by endpoint family and reason: batching (within a request), sharing (a call in flight for another request), cache.",
		}, []string{"endpoint", "reason"}),
		stale: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mdegraph_stale_answers_total",
			Help: "Answers served stale (younger than STALE_TTL) because a fresh one could not be had, by endpoint family and reason: RATE_LIMITED, UPSTREAM_UNAVAILABLE.",
		}, []string{"endpoint", "reason"}),
		quotaWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mdegraph_quota_wait_seconds",
			Help:    "Time calls waited in line for quota, by endpoint family and outcome (granted, exceeded, cancelled).",
			Buckets: []float64{0.001, 0.01, 0.1, 0.5, 1, 2, 5, 10, 30, 60},
		}, []string{"endpoint", "outcome"}),
		operations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mdegraph_graphql_operations_total",
			Help: "GraphQL operations, by outcome: ok, or the extensions.code of the first error.",
		}, []string{"outcome"}),
		fieldErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mdegraph_graphql_errors_total",
			Help: "Errors in GraphQL responses, by extensions.code.",
		}, []string{"code"}),
		opDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mdegraph_graphql_operation_duration_seconds",
			Help:    "Time to answer a GraphQL operation.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}),
		tokenRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mdegraph_token_requests_total",
			Help: "Requests to Entra ID's token endpoint, by outcome: issued, refused (the credentials or the app registration), throttled (429), error (the endpoint failed or gave no usable answer).",
		}, []string{"outcome"}),
		responseCache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mdegraph_response_cache_lookups_total",
			Help: "Operations looked up in the response cache (RESPONSE_CACHE_BYTES), by outcome: hit (answered from it, nothing run), miss.",
		}, []string{"outcome"}),
		callerOperations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mdegraph_caller_operations_total",
			Help: "GraphQL operations per caller (the " + strconv.Itoa(TopCallers) + " busiest by principal, the rest as \"other\"), by outcome: ok, or the extensions.code of the first error.",
		}, []string{"caller", "outcome"}),
		callerRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mdegraph_caller_limit_refusals_total",
			Help: "Operations refused because their caller was over CALLER_LIMIT_PER_MINUTE, per caller.",
		}, []string{"caller"}),
		callerQuotaWaits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mdegraph_caller_quota_waits_total",
			Help: "Upstream calls that asked for quota, per caller (whose request started the call), by outcome (granted, exceeded, cancelled).",
		}, []string{"caller", "outcome"}),
		callerQuotaWaited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mdegraph_caller_quota_wait_seconds_total",
			Help: "Time upstream calls waited in line for quota, per caller, in seconds.",
		}, []string{"caller"}),
	}
	m.callers = newCallerLabels(TopCallers, m.callerOperations.MetricVec, m.callerRefusals.MetricVec,
		m.callerQuotaWaits.MetricVec, m.callerQuotaWaited.MetricVec)
	reg.MustRegister(m.upstreamCalls, m.upstreamDuration, m.saved, m.stale, m.quotaWait, m.operations, m.fieldErrors, m.opDuration, m.tokenRequests, m.responseCache,
		m.callerOperations, m.callerRefusals, m.callerQuotaWaits, m.callerQuotaWaited)
	return m
}

// ObserveCall records one upstream HTTP attempt (defender.Options.Observe).
func (m *Metrics) ObserveCall(c defender.Call) {
	if m == nil {
		return
	}
	status := "error"
	if c.Status != 0 {
		status = strconv.Itoa(c.Status)
	}
	m.upstreamCalls.WithLabelValues(string(c.Endpoint), status).Inc()
	m.upstreamDuration.WithLabelValues(string(c.Endpoint)).Observe(c.Duration.Seconds())
}

// Saved records upstream calls avoided (loaders.Observer).
func (m *Metrics) Saved(endpoint defender.Endpoint, reason string, n int) {
	if m == nil {
		return
	}
	m.saved.WithLabelValues(string(endpoint), reason).Add(float64(n))
}

// Stale records one answer served stale (loaders.Observer), with its loaders.Stale reason.
func (m *Metrics) Stale(endpoint defender.Endpoint, reason string) {
	if m == nil {
		return
	}
	m.stale.WithLabelValues(string(endpoint), reason).Inc()
}

// ObserveWait records one wait for quota (quota.Set.OnWait), also for the caller in ctx: the
// caller whose request started the upstream call, which others may share.
func (m *Metrics) ObserveWait(ctx context.Context, family string, waited time.Duration, err error) {
	if m == nil {
		return
	}
	outcome := quota.WaitOutcome(err)
	m.quotaWait.WithLabelValues(family, outcome).Observe(waited.Seconds())
	m.callers.observe(callerOf(ctx), func(caller string) {
		m.callerQuotaWaits.WithLabelValues(caller, outcome).Inc()
		m.callerQuotaWaited.WithLabelValues(caller).Add(waited.Seconds())
	})
}

// ObserveOperation records one GraphQL operation of the caller in ctx: codes are its errors'
// extensions.code values.
func (m *Metrics) ObserveOperation(ctx context.Context, codes []string, d time.Duration) {
	if m == nil {
		return
	}
	m.operation(ctx, codes, nil)
	m.opDuration.Observe(d.Seconds())
}

// ObserveResponseCache records one lookup in the response cache: a hit, or a miss.
func (m *Metrics) ObserveResponseCache(hit bool) {
	if m == nil {
		return
	}
	outcome := "miss"
	if hit {
		outcome = "hit"
	}
	m.responseCache.WithLabelValues(outcome).Inc()
}

// ObserveCallerLimit records an operation refused because its caller (in ctx) was over
// CALLER_LIMIT_PER_MINUTE (callerlimit.Options.OnRefuse): an operation answered RATE_LIMITED.
func (m *Metrics) ObserveCallerLimit(ctx context.Context) {
	if m == nil {
		return
	}
	m.operation(ctx, []string{callerlimit.CodeRateLimited}, m.callerRefusals)
}

// operation counts an operation by outcome, in total and for its caller; and in also, by
// caller alone, if not nil.
func (m *Metrics) operation(ctx context.Context, codes []string, also *prometheus.CounterVec) {
	outcome := "ok"
	if len(codes) > 0 {
		outcome = codes[0]
	}
	m.operations.WithLabelValues(outcome).Inc()
	for _, c := range codes {
		m.fieldErrors.WithLabelValues(c).Inc()
	}
	m.callers.observe(callerOf(ctx), func(caller string) {
		m.callerOperations.WithLabelValues(caller, outcome).Inc()
		if also != nil {
			also.WithLabelValues(caller).Inc()
		}
	})
}

// ObserveTokenRequest records one request to the token endpoint (upstreamauth.Source.Observe): err is
// nil when a token was issued, an *upstreamauth.Error otherwise.
func (m *Metrics) ObserveTokenRequest(err error) {
	if m == nil {
		return
	}
	var e *upstreamauth.Error
	switch {
	case err == nil:
		m.tokenRequests.WithLabelValues("issued").Inc()
	case errors.As(err, &e) && e.Kind == upstreamauth.Refused:
		m.tokenRequests.WithLabelValues("refused").Inc()
	case errors.As(err, &e) && e.Kind == upstreamauth.Throttled:
		m.tokenRequests.WithLabelValues("throttled").Inc()
	default:
		m.tokenRequests.WithLabelValues("error").Inc()
	}
}
