package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/mdegraph/mdegraph/internal/config"
	"github.com/mdegraph/mdegraph/internal/defender"
	"github.com/mdegraph/mdegraph/internal/loaders"
	"github.com/mdegraph/mdegraph/internal/quota"
	"github.com/mdegraph/mdegraph/internal/redisstore"
)

// Quota is the upstream limiter the App assembles: in process (*quota.Set), or shared by the
// replicas through Redis (*redisstore.Limiter) when REDIS_URL is set.
type Quota interface {
	defender.Limiter
	Status() []quota.FamilyStatus
}

var (
	_ Quota = (*quota.Set)(nil)
	_ Quota = (*redisstore.Limiter)(nil)
)

// shared is what the replicas share through Redis: the quota and its pauses, the answers'
// caches and the calls in flight.
type shared struct {
	store   *redisstore.Store
	limiter *redisstore.Limiter
	windows []quota.Window
}

// openShared connects to cfg's Redis. Unreachable, it fails, unless REDIS_FALLBACK=local.
func openShared(ctx context.Context, cfg config.Config, windows []quota.Window, logger *slog.Logger, obs redisstore.Observer) (*shared, error) {
	store, err := redisstore.Open(ctx, redisstore.Options{URL: cfg.Redis.URL.Reveal(), Prefix: cfg.Redis.Prefix,
		Timeout: cfg.Redis.Timeout, StartDegraded: cfg.Redis.FallbackLocal, Logger: logger, Observer: obs})
	if err != nil {
		return nil, err
	}
	l := redisstore.NewLimiter(store, redisstore.LimiterOptions{Windows: windows, MaxWait: cfg.QuotaMaxWait,
		Replicas: cfg.Redis.Replicas, Families: families()})
	logger.Info("quota, 429 pauses, cache and calls in flight are shared through Redis", "redis", store.Where(),
		"prefix", cfg.Redis.Prefix, "replicas", cfg.Redis.Replicas, "local_budget", localBudget(windows, cfg.Redis.Replicas))
	return &shared{store: store, limiter: l, windows: windows}, nil
}

// families names every endpoint family the client calls (defender.Endpoints), for the limiter
// to know from the start, so that Query.quota and the gauges list each one before its first call.
func families() []string {
	out := make([]string, len(defender.Endpoints))
	for i, e := range defender.Endpoints {
		out[i] = string(e)
	}
	return out
}

// loaders points every kind of answer of o at Redis. A new kind is one more line.
func (s *shared) loaders(o *loaders.Options) {
	o.Machines, o.MachineCalls = redisstore.NewKind[*defender.Machine](s.store, "machines", o.CallTimeout)
	o.LogonUsers, o.LogonUserCalls = redisstore.NewKind[[]defender.User](s.store, "logonusers", o.CallTimeout)
	o.Alerts, o.AlertCalls = redisstore.NewKind[[]defender.Alert](s.store, "alerts", o.CallTimeout)
	o.UserMachines, o.UserMachineCalls = redisstore.NewKind[[]defender.Machine](s.store, "usermachines", o.CallTimeout)
	o.MachinePages, o.PageCalls = redisstore.NewKind[[]defender.Machine](s.store, "machinepages", o.CallTimeout)
}

// readyNote is what /readyz adds while Redis is unreachable ("" otherwise): the service stays
// ready (a whole fleet marked not ready is an outage), and says it is degraded.
func (s *shared) readyNote(replicas int) func() string {
	return func() string {
		degraded, since := s.store.Degraded()
		if !degraded {
			return ""
		}
		return fmt.Sprintf(" (degraded: Redis unreachable for %v, local budget %s)",
			time.Since(since).Round(time.Second), localBudget(s.windows, replicas))
	}
}

// localBudget describes one replica's budget while Redis is unreachable: "33/min, 500/h".
func localBudget(windows []quota.Window, replicas int) string {
	out := ""
	for i, w := range windows {
		if i > 0 {
			out += ", "
		}
		per := w.Per.Truncate(time.Second).String()
		switch w.Per.Truncate(time.Minute) {
		case time.Minute:
			per = "min"
		case time.Hour:
			per = "h"
		}
		out += fmt.Sprintf("%d/%s", redisstore.LocalLimit(w.Limit, replicas), per)
	}
	return out
}
