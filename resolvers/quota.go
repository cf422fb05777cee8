package resolvers

import (
	"encoding/json"
	"math"
	"strconv"
	"sync"
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

// QuotaReading is the quota of every endpoint family read at one moment: what Query.quota
// lists (Models) and extensions.quota carries (AppendJSON), in the same shape. The first
// window of each family is the minute and the second the hour, as internal/app builds the
// limiter.
type QuotaReading struct {
	statuses []quota.FamilyStatus
	at       time.Time // after Status: a slot free at its reading is free at this time
}

// ReadQuota reads every endpoint family's quota from q now (none when q is nil).
func ReadQuota(q QuotaReporter) QuotaReading {
	if q == nil {
		return QuotaReading{}
	}
	statuses := q.Status()
	return QuotaReading{statuses: statuses, at: time.Now()}
}

// Models is the reading as Query.quota lists it, one EndpointQuota per family.
func (r QuotaReading) Models() []*model.EndpointQuota {
	out := make([]*model.EndpointQuota, 0, len(r.statuses))
	for _, s := range r.statuses {
		q := &model.EndpointQuota{
			Endpoint:        s.Family,
			Call:            calls[s.Family],
			NextSlotAt:      s.NextSlot.UTC(),
			NextSlotSeconds: r.nextSlotSeconds(s),
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

func (r QuotaReading) nextSlotSeconds(s quota.FamilyStatus) int {
	return max(int(math.Ceil(s.NextSlot.Sub(r.at).Seconds())), 0)
}

func quotaWindow(w quota.WindowStatus) *model.QuotaWindow {
	return &model.QuotaWindow{Limit: w.Limit, Used: w.Used, Remaining: w.Remaining, Seconds: int(w.Per / time.Second)}
}

// AppendJSON appends the reading as extensions.quota: a JSON object of Models keyed by family,
// byte for byte what encoding/json writes for a map[string]*model.EndpointQuota, without its
// reflection: every answer carries it.
func (r QuotaReading) AppendJSON(b []byte) []byte {
	b = append(b, '{')
	for i, s := range r.statuses {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, familyPrefix(s.Family)...)
		var minute, hour quota.WindowStatus
		if len(s.Windows) > 0 {
			minute = s.Windows[0]
		}
		if len(s.Windows) > 1 {
			hour = s.Windows[1]
		}
		b = appendWindow(append(b, `"minute":`...), minute)
		b = appendWindow(append(b, `,"hour":`...), hour)
		b = appendTime(append(b, `,"nextSlotAt":`...), s.NextSlot.UTC())
		b = strconv.AppendInt(append(b, `,"nextSlotSeconds":`...), int64(r.nextSlotSeconds(s)), 10)
		b = append(b, `,"pausedUntil":`...)
		if s.PausedUntil.IsZero() {
			b = append(b, "null"...)
		} else {
			b = appendTime(b, s.PausedUntil.UTC())
		}
		b = strconv.AppendInt(append(b, `,"queued":`...), int64(s.Queued), 10)
		b = append(b, '}')
	}
	return append(b, '}')
}

// prefixes holds each family's familyPrefix, made once.
var prefixes sync.Map // family → []byte

// familyPrefix is `"<family>":{"endpoint":"<family>","call":"<call>",`, quoted as encoding/json
// quotes strings.
func familyPrefix(family string) []byte {
	if p, ok := prefixes.Load(family); ok {
		return p.([]byte)
	}
	name, _ := json.Marshal(family) // a string always marshals
	call, _ := json.Marshal(calls[family])
	var p []byte
	p = append(append(p, name...), `:{"endpoint":`...)
	p = append(append(p, name...), `,"call":`...)
	p = append(append(p, call...), ',')
	prefixes.Store(family, p)
	return p
}

// appendWindow appends a QuotaWindow's JSON; a zero WindowStatus is a window of zeros, as
// Models gives for a family without that window.
func appendWindow(b []byte, w quota.WindowStatus) []byte {
	b = strconv.AppendInt(append(b, `{"limit":`...), int64(w.Limit), 10)
	b = strconv.AppendInt(append(b, `,"used":`...), int64(w.Used), 10)
	b = strconv.AppendInt(append(b, `,"remaining":`...), int64(w.Remaining), 10)
	b = strconv.AppendInt(append(b, `,"seconds":`...), int64(w.Per/time.Second), 10)
	return append(b, '}')
}

// appendTime appends t as time.Time.MarshalJSON writes it (RFC 3339 with nanoseconds).
func appendTime(b []byte, t time.Time) []byte {
	return append(t.AppendFormat(append(b, '"'), time.RFC3339Nano), '"')
}
