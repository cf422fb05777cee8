package metrics_test

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mdegraph/mdegraph/internal/defender"
	"github.com/mdegraph/mdegraph/internal/loaders"
	"github.com/mdegraph/mdegraph/internal/metrics"
)

var _ loaders.Observer = (*metrics.Metrics)(nil)

func TestStaleAnswers(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	m.Stale(defender.EndpointLogonUsers, loaders.ReasonRateLimited)
	m.Stale(defender.EndpointLogonUsers, loaders.ReasonRateLimited)
	m.Stale(defender.EndpointMachine, loaders.ReasonUnavailable)
	(*metrics.Metrics)(nil).Stale(defender.EndpointMachine, loaders.ReasonUnavailable) // does nothing

	want := `
# HELP mdegraph_stale_answers_total Answers served stale (younger than STALE_TTL) because a fresh one could not be had, by endpoint family and reason: RATE_LIMITED, UPSTREAM_UNAVAILABLE.
# TYPE mdegraph_stale_answers_total counter
mdegraph_stale_answers_total{endpoint="machines.get",reason="UPSTREAM_UNAVAILABLE"} 1
mdegraph_stale_answers_total{endpoint="machines.logonusers",reason="RATE_LIMITED"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "mdegraph_stale_answers_total"); err != nil {
		t.Error(err)
	}
}
