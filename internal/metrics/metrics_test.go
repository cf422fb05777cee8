package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mdegraph/mdegraph/internal/defender"
	"github.com/mdegraph/mdegraph/internal/metrics"
	"github.com/mdegraph/mdegraph/internal/principal"
	"github.com/mdegraph/mdegraph/internal/quota"
	"github.com/mdegraph/mdegraph/internal/upstreamauth"
)

func TestMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	m.ObserveCall(defender.Call{Endpoint: defender.EndpointLogonUsers, Status: 200, Duration: 20 * time.Millisecond})
	m.ObserveCall(defender.Call{Endpoint: defender.EndpointLogonUsers, Status: 429})
	m.ObserveCall(defender.Call{Endpoint: defender.EndpointMachine, Err: errors.New("refused")})
	m.Saved(defender.EndpointLogonUsers, "cache", 3)
	frontend := principal.NewContext(context.Background(), principal.Principal{Kind: principal.KindAPIKey, Name: "frontend"})
	laptop := principal.NewContext(context.Background(), principal.Anonymous("192.0.2.7:50123"))
	m.ObserveWait(frontend, "machines.logonusers", time.Second, nil)
	m.ObserveWait(frontend, "machines.logonusers", 0, fmt.Errorf("quota: %w", &quota.ExceededError{RetryAfter: time.Second}))
	m.ObserveWait(laptop, "machines.logonusers", 500*time.Millisecond, context.Canceled)
	m.ObserveOperation(frontend, nil, time.Millisecond)
	m.ObserveOperation(laptop, []string{"NOT_FOUND", "RATE_LIMITED"}, time.Millisecond)
	m.ObserveCallerLimit(laptop)
	m.ObserveTokenRequest(nil)
	m.ObserveTokenRequest(fmt.Errorf("fetch: %w", &upstreamauth.Error{Kind: upstreamauth.Refused, Code: "invalid_client"}))
	m.ObserveTokenRequest(&upstreamauth.Error{Kind: upstreamauth.Refused, Code: "invalid_client"})
	m.ObserveTokenRequest(&upstreamauth.Error{Kind: upstreamauth.Throttled, StatusCode: 429})
	m.ObserveTokenRequest(&upstreamauth.Error{Kind: upstreamauth.Unavailable, StatusCode: 503})
	m.ObserveTokenRequest(errors.New("dial tcp: connection refused"))

	want := `
# HELP mdegraph_upstream_calls_total HTTP calls made to the Defender API, by endpoint family and status ("error" when no answer came).
# TYPE mdegraph_upstream_calls_total counter
mdegraph_upstream_calls_total{endpoint="machines.get",status="error"} 1
mdegraph_upstream_calls_total{endpoint="machines.logonusers",status="200"} 1
mdegraph_upstream_calls_total{endpoint="machines.logonusers",status="429"} 1
# HELP mdegraph_upstream_calls_saved_total Upstream calls avoided, by endpoint family and reason: batching (within a request), sharing (a call in flight for another request), cache.
# TYPE mdegraph_upstream_calls_saved_total counter
mdegraph_upstream_calls_saved_total{endpoint="machines.logonusers",reason="cache"} 3
# HELP mdegraph_graphql_operations_total GraphQL operations, by outcome: ok, or the extensions.code of the first error.
# TYPE mdegraph_graphql_operations_total counter
mdegraph_graphql_operations_total{outcome="NOT_FOUND"} 1
mdegraph_graphql_operations_total{outcome="RATE_LIMITED"} 1
mdegraph_graphql_operations_total{outcome="ok"} 1
# HELP mdegraph_graphql_errors_total Errors in GraphQL responses, by extensions.code.
# TYPE mdegraph_graphql_errors_total counter
mdegraph_graphql_errors_total{code="NOT_FOUND"} 1
mdegraph_graphql_errors_total{code="RATE_LIMITED"} 2
# HELP mdegraph_caller_operations_total GraphQL operations per caller (the 20 busiest by principal, the rest as "other"), by outcome: ok, or the extensions.code of the first error.
# TYPE mdegraph_caller_operations_total counter
mdegraph_caller_operations_total{caller="addr:192.0.2.7",outcome="NOT_FOUND"} 1
mdegraph_caller_operations_total{caller="addr:192.0.2.7",outcome="RATE_LIMITED"} 1
mdegraph_caller_operations_total{caller="apikey:frontend",outcome="ok"} 1
# HELP mdegraph_caller_limit_refusals_total Operations refused because their caller was over CALLER_LIMIT_PER_MINUTE, per caller.
# TYPE mdegraph_caller_limit_refusals_total counter
mdegraph_caller_limit_refusals_total{caller="addr:192.0.2.7"} 1
# HELP mdegraph_caller_quota_waits_total Upstream calls that asked for quota, per caller (whose request started the call), by outcome (granted, exceeded, cancelled).
# TYPE mdegraph_caller_quota_waits_total counter
mdegraph_caller_quota_waits_total{caller="addr:192.0.2.7",outcome="cancelled"} 1
mdegraph_caller_quota_waits_total{caller="apikey:frontend",outcome="exceeded"} 1
mdegraph_caller_quota_waits_total{caller="apikey:frontend",outcome="granted"} 1
# HELP mdegraph_caller_quota_wait_seconds_total Time upstream calls waited in line for quota, per caller, in seconds.
# TYPE mdegraph_caller_quota_wait_seconds_total counter
mdegraph_caller_quota_wait_seconds_total{caller="addr:192.0.2.7"} 0.5
mdegraph_caller_quota_wait_seconds_total{caller="apikey:frontend"} 1
# HELP mdegraph_token_requests_total Requests to Entra ID's token endpoint, by outcome: issued, refused (the credentials or the app registration), throttled (429), error (the endpoint failed or gave no usable answer).
# TYPE mdegraph_token_requests_total counter
mdegraph_token_requests_total{outcome="error"} 2
mdegraph_token_requests_total{outcome="issued"} 1
mdegraph_token_requests_total{outcome="refused"} 2
mdegraph_token_requests_total{outcome="throttled"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "mdegraph_upstream_calls_total",
		"mdegraph_upstream_calls_saved_total", "mdegraph_graphql_operations_total", "mdegraph_graphql_errors_total",
		"mdegraph_token_requests_total", "mdegraph_caller_operations_total", "mdegraph_caller_limit_refusals_total",
		"mdegraph_caller_quota_waits_total", "mdegraph_caller_quota_wait_seconds_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(reg, "mdegraph_quota_wait_seconds"); n != 3 {
		t.Errorf("quota wait series = %d, want 3 (granted, exceeded, cancelled)", n)
	}
}

type fixedQuota []quota.FamilyStatus

func (f fixedQuota) Status() []quota.FamilyStatus { return f }

func TestQuotaCollector(t *testing.T) {
	t.Parallel()
	q := fixedQuota{{Family: "machines.logonusers", Status: quota.Status{
		Windows: []quota.WindowStatus{
			{Window: quota.Window{Limit: 100, Per: 61 * time.Second}, Used: 40, Remaining: 60},
			{Window: quota.Window{Limit: 1500, Per: 3601 * time.Second}, Used: 40, Remaining: 1460},
			{Window: quota.Window{Limit: 10, Per: 10 * time.Second}, Used: 1, Remaining: 9},
		},
		Queued:      7,
		PausedUntil: time.Now().Add(time.Hour),
	}}}
	c := metrics.NewQuotaCollector(q)
	want := `
# HELP mdegraph_quota_queue_length Calls waiting in line for quota, by endpoint family.
# TYPE mdegraph_quota_queue_length gauge
mdegraph_quota_queue_length{endpoint="machines.logonusers"} 7
# HELP mdegraph_quota_remaining Upstream calls still allowed in the sliding window ending now, by endpoint family and window (minute, hour).
# TYPE mdegraph_quota_remaining gauge
mdegraph_quota_remaining{endpoint="machines.logonusers",window="10"} 9
mdegraph_quota_remaining{endpoint="machines.logonusers",window="hour"} 1460
mdegraph_quota_remaining{endpoint="machines.logonusers",window="minute"} 60
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "mdegraph_quota_queue_length", "mdegraph_quota_remaining"); err != nil {
		t.Error(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "mdegraph_quota_paused_seconds" {
			if v := f.GetMetric()[0].GetGauge().GetValue(); v < 3500 || v > 3600 {
				t.Errorf("paused seconds = %v, want about an hour", v)
			}
			return
		}
	}
	t.Error("no mdegraph_quota_paused_seconds")
}
