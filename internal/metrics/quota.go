package metrics

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mdegraph/mdegraph/internal/quota"
)

// QuotaStatus reports every endpoint family's quota (quota.Set does).
type QuotaStatus interface {
	Status() []quota.FamilyStatus
}

// QuotaCollector turns quota status into gauges at scrape time.
type QuotaCollector struct {
	q         QuotaStatus
	used      *prometheus.Desc
	remaining *prometheus.Desc
	queued    *prometheus.Desc
	paused    *prometheus.Desc
}

var _ prometheus.Collector = (*QuotaCollector)(nil)

// NewQuotaCollector returns a collector for q; register it with the registry.
func NewQuotaCollector(q QuotaStatus) *QuotaCollector {
	return &QuotaCollector{
		q: q,
		used: prometheus.NewDesc("mdegraph_quota_used",
			"Upstream calls made in the sliding window ending now, by endpoint family and window (minute, hour).", []string{"endpoint", "window"}, nil),
		remaining: prometheus.NewDesc("mdegraph_quota_remaining",
			"Upstream calls still allowed in the sliding window ending now, by endpoint family and window (minute, hour).", []string{"endpoint", "window"}, nil),
		queued: prometheus.NewDesc("mdegraph_quota_queue_length",
			"Calls waiting in line for quota, by endpoint family.", []string{"endpoint"}, nil),
		paused: prometheus.NewDesc("mdegraph_quota_paused_seconds",
			"Seconds left of a pause Defender asked for with 429 + Retry-After, by endpoint family (0 when none).", []string{"endpoint"}, nil),
	}
}

// Describe sends the descriptors.
func (c *QuotaCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.used
	ch <- c.remaining
	ch <- c.queued
	ch <- c.paused
}

// Collect sends the current values.
func (c *QuotaCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	for _, s := range c.q.Status() {
		for _, w := range s.Windows {
			win := windowLabel(w.Per)
			ch <- prometheus.MustNewConstMetric(c.used, prometheus.GaugeValue, float64(w.Used), s.Family, win)
			ch <- prometheus.MustNewConstMetric(c.remaining, prometheus.GaugeValue, float64(w.Remaining), s.Family, win)
		}
		ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, float64(s.Queued), s.Family)
		paused := 0.0
		if s.PausedUntil.After(now) {
			paused = s.PausedUntil.Sub(now).Seconds()
		}
		ch <- prometheus.MustNewConstMetric(c.paused, prometheus.GaugeValue, paused, s.Family)
	}
}

// windowLabel names a quota window for the window label: "minute" and "hour" for Defender's
// windows, whatever margin the limiter adds to them (61 s, 3601 s), and its length in seconds
// for any other.
func windowLabel(per time.Duration) string {
	switch {
	case per.Truncate(time.Minute) == time.Minute:
		return "minute"
	case per.Truncate(time.Hour) == time.Hour:
		return "hour"
	}
	return strconv.Itoa(int(per / time.Second))
}
