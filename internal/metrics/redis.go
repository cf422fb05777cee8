package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mdegraph/mdegraph/internal/redisstore"
)

// Redis holds the metrics of the state replicas share through Redis (REDIS_URL). It
// implements redisstore.Observer; its methods are safe for concurrent use.
type Redis struct {
	roundTrips *prometheus.HistogramVec
	errors     *prometheus.CounterVec
	degraded   prometheus.Gauge
	fallbacks  *prometheus.CounterVec
	shares     *prometheus.CounterVec
	shareWait  *prometheus.HistogramVec
}

var _ redisstore.Observer = (*Redis)(nil)

// NewRedis registers the Redis metrics with reg.
func NewRedis(reg prometheus.Registerer) *Redis {
	r := &Redis{
		roundTrips: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mdegraph_redis_round_trip_seconds",
			Help:    "Round trips to Redis (a command, a script, or a pipeline of them), by operation (limiter.take, cache.get, share.lock, ...).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 3, 10),
		}, []string{"op"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mdegraph_redis_errors_total",
			Help: "Round trips to Redis that failed (unreachable, timed out, failing over), by operation.",
		}, []string{"op"}),
		degraded: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mdegraph_redis_degraded",
			Help: "1 while Redis is unreachable and this replica works on local state (a local quota budget, its own cache), 0 otherwise.",
		}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mdegraph_redis_fallbacks_total",
			Help: "Operations done on local state because Redis was unreachable, by what: quota, cache, sharing.",
		}, []string{"what"}),
		shares: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mdegraph_redis_shares_total",
			Help: "Keys another replica was fetching or had just fetched, by kind of answer and outcome: shared (its answer was used), cached (found in the cache at the last moment), took_over (it failed, died or timed out, so this replica called).",
		}, []string{"kind", "outcome"}),
		shareWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mdegraph_redis_share_wait_seconds",
			Help:    "Time spent waiting for another replica's call, by kind of answer.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 10),
		}, []string{"kind"}),
	}
	reg.MustRegister(r.roundTrips, r.errors, r.degraded, r.fallbacks, r.shares, r.shareWait)
	return r
}

// RoundTrip records one round trip to Redis.
func (r *Redis) RoundTrip(op string, d time.Duration, err error) {
	r.roundTrips.WithLabelValues(op).Observe(d.Seconds())
	if err != nil {
		r.errors.WithLabelValues(op).Inc()
	}
}

// Degraded records a change of Redis's reachability.
func (r *Redis) Degraded(degraded bool) {
	if degraded {
		r.degraded.Set(1)
	} else {
		r.degraded.Set(0)
	}
}

// Fallback counts one operation done locally.
func (r *Redis) Fallback(what string) { r.fallbacks.WithLabelValues(what).Inc() }

// Share records one key shared with another replica.
func (r *Redis) Share(kind, outcome string, waited time.Duration) {
	r.shares.WithLabelValues(kind, outcome).Inc()
	if outcome != "cached" {
		r.shareWait.WithLabelValues(kind).Observe(waited.Seconds())
	}
}
