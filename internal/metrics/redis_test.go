package metrics

import (
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRedisMetrics(t *testing.T) {
	t.Parallel()
	r := NewRedis(prometheus.NewRegistry())
	r.RoundTrip("cache.get", time.Millisecond, nil)
	r.RoundTrip("cache.get", time.Millisecond, errors.New("connection refused"))
	r.Degraded(true)
	r.Fallback("quota")
	r.Share("logonusers", "shared", 20*time.Millisecond)
	r.Share("logonusers", "cached", 0)
	for name, tt := range map[string]struct{ got, want float64 }{
		"round trips":            {float64(testutil.CollectAndCount(r.roundTrips)), 1},
		"errors":                 {testutil.ToFloat64(r.errors.WithLabelValues("cache.get")), 1},
		"degraded":               {testutil.ToFloat64(r.degraded), 1},
		"fallbacks":              {testutil.ToFloat64(r.fallbacks.WithLabelValues("quota")), 1},
		"shared":                 {testutil.ToFloat64(r.shares.WithLabelValues("logonusers", "shared")), 1},
		"waits (not for cached)": {float64(testutil.CollectAndCount(r.shareWait)), 1},
	} {
		if tt.got != tt.want {
			t.Errorf("%s: got %v, want %v", name, tt.got, tt.want)
		}
	}
	r.Degraded(false)
	if got := testutil.ToFloat64(r.degraded); got != 0 {
		t.Errorf("degraded after recovery: %v, want 0", got)
	}
}
