package resolvers

import (
	"math"
	"time"

	"github.com/mdegraph/mdegraph/graph/model"
	"github.com/mdegraph/mdegraph/internal/defender"
	"github.com/mdegraph/mdegraph/internal/quota"
)

// calls names the upstream call each endpoint family counts.
var calls = map[string]string{
	string(defender.EndpointMachine):      "GET /api/machines/{id}",
	string(defender.EndpointMachines):     "GET /api/machines",
	string(defender.EndpointLogonUsers):   "GET /api/machines/{id}/logonusers",
	string(defender.EndpointAlerts):       "GET /api/machines/{id}/alerts",
	string(defender.EndpointUserMachines): "GET /api/users/{accountName}/machines",
}

// quotaStatus reports every endpoint family's quota as q has it now (none when q is nil); the
// first window is the minute and the second the hour, as internal/app builds the limiter.
func quotaStatus(q QuotaReporter) []*model.EndpointQuota {
	if q == nil {
		return []*model.EndpointQuota{}
	}
	statuses := q.Status()
	now := time.Now() // after Status: a slot free at its reading is free now
	out := make([]*model.EndpointQuota, 0, len(statuses))
	for _, s := range statuses {
		q := &model.EndpointQuota{
			Endpoint:        s.Family,
			Call:            calls[s.Family],
			NextSlotAt:      s.NextSlot.UTC(),
			NextSlotSeconds: max(int(math.Ceil(s.NextSlot.Sub(now).Seconds())), 0),
			Queued:          s.Queued,
			Minute:          &model.QuotaWindow{},
			Hour:            &model.QuotaWindow{},
		}
		if len(s.Windows) > 0 {
			q.Minute = quotaWindow(s.Windows[0])
		}
		if len(s.Windows) > 1 {
			q.Hour = quotaWindow(s.Windows[1])
		}
		if !s.PausedUntil.IsZero() {
			t := s.PausedUntil.UTC()
			q.PausedUntil = &t
		}
		out = append(out, q)
	}
	return out
}

func quotaWindow(w quota.WindowStatus) *model.QuotaWindow {
	return &model.QuotaWindow{Limit: w.Limit, Used: w.Used, Remaining: w.Remaining, Seconds: int(w.Per / time.Second)}
}
