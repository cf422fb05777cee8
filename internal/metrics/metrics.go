// Package metrics exposes the service's Prometheus metrics: upstream calls and their latency,
// calls saved (by batching, in-flight sharing and the cache, counted apart), answers served
// stale, quota waits and queues, and GraphQL operations by outcome.
package metrics

import (
	"errors"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/oauth2"

	"github.com/mdegraph/mdegraph/internal/defender"
	"github.com/mdegraph/mdegraph/internal/quota"
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
			Help: "Requests to Entra ID's token endpoint, by outcome: issued, refused (the credentials or the app registration), error (no usable answer).",
		}, []string{"outcome"}),
	}
	reg.MustRegister(m.upstreamCalls, m.upstreamDuration, m.saved, m.stale, m.quotaWait, m.operations, m.fieldErrors, m.opDuration, m.tokenRequests)
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

// ObserveWait records one wait for quota (quota.Set.OnWait).
func (m *Metrics) ObserveWait(family string, waited time.Duration, err error) {
	if m == nil {
		return
	}
	outcome := "granted"
	var exceeded *quota.ExceededError
	switch {
	case errors.As(err, &exceeded):
		outcome = "exceeded"
	case err != nil:
		outcome = "cancelled"
	}
	m.quotaWait.WithLabelValues(family, outcome).Observe(waited.Seconds())
}

// ObserveOperation records one GraphQL operation: codes are its errors' extensions.code values.
func (m *Metrics) ObserveOperation(codes []string, d time.Duration) {
	if m == nil {
		return
	}
	outcome := "ok"
	if len(codes) > 0 {
		outcome = codes[0]
	}
	m.operations.WithLabelValues(outcome).Inc()
	for _, c := range codes {
		m.fieldErrors.WithLabelValues(c).Inc()
	}
	m.opDuration.Observe(d.Seconds())
}

// ObserveTokenRequest records one request to the token endpoint (upstreamauth.Source.Observe): err is
// nil when a token was issued, an *oauth2.RetrieveError when Entra ID refused.
func (m *Metrics) ObserveTokenRequest(err error) {
	if m == nil {
		return
	}
	var re *oauth2.RetrieveError
	switch {
	case err == nil:
		m.tokenRequests.WithLabelValues("issued").Inc()
	case errors.As(err, &re):
		m.tokenRequests.WithLabelValues("refused").Inc()
	default:
		m.tokenRequests.WithLabelValues("error").Inc()
	}
}
