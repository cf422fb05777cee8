package resolvers_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/mdegraph/mdegraph/graph/model"
	"github.com/mdegraph/mdegraph/internal/quota"
	"github.com/mdegraph/mdegraph/resolvers"
)

// fixedQuota reports the same statuses every time.
type fixedQuota []quota.FamilyStatus

func (f fixedQuota) Status() []quota.FamilyStatus { return f }

// TestQuotaJSON: extensions.quota, written by hand, is byte for byte what encoding/json writes
// for Query.quota's models keyed by family, whatever the reading holds.
func TestQuotaJSON(t *testing.T) {
	t.Parallel()
	now := time.Now()
	minute := quota.Window{Limit: 100, Per: time.Minute + time.Second}
	hour := quota.Window{Limit: 1500, Per: time.Hour + time.Second}
	tests := []struct {
		name     string
		statuses fixedQuota
	}{
		{"none", nil},
		{"free", fixedQuota{
			{Family: "machines.get", Status: quota.Status{NextSlot: now,
				Windows: []quota.WindowStatus{{Window: minute, Used: 1, Remaining: 99}, {Window: hour, Used: 1, Remaining: 1499}}}},
			{Family: "machines.logonusers", Status: quota.Status{NextSlot: now,
				Windows: []quota.WindowStatus{{Window: minute, Remaining: 100}, {Window: hour, Remaining: 1500}}}},
		}},
		{"spent, paused and queued, in another time zone", fixedQuota{
			{Family: "machines.alerts", Status: quota.Status{NextSlot: now.Add(41500 * time.Millisecond).In(time.FixedZone("x", 3600)),
				PausedUntil: now.Add(30 * time.Second), Queued: 7,
				Windows: []quota.WindowStatus{{Window: minute, Used: 100}, {Window: hour, Used: 1200, Remaining: 300}}}},
		}},
		{"one window only, an unknown family", fixedQuota{
			{Family: `odd "family" <&>`, Status: quota.Status{NextSlot: now.Add(-time.Second),
				Windows: []quota.WindowStatus{{Window: minute, Used: 3, Remaining: 97}}}},
		}},
		{"no windows", fixedQuota{{Family: "users.machines", Status: quota.Status{NextSlot: now}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := resolvers.ReadQuota(tt.statuses)
			byFamily := map[string]*model.EndpointQuota{}
			for _, e := range r.Models() {
				byFamily[e.Endpoint] = e
			}
			want, err := json.Marshal(byFamily)
			if err != nil {
				t.Fatal(err)
			}
			if got := r.AppendJSON(nil); string(got) != string(want) {
				t.Errorf("AppendJSON:\n%s\nwant (encoding/json):\n%s", got, want)
			}
		})
	}
}

func BenchmarkQuotaJSON(b *testing.B) {
	now := time.Now()
	var statuses fixedQuota
	for _, f := range []string{"machines.get", "machines.list", "machines.logonusers", "machines.alerts", "users.machines"} {
		statuses = append(statuses, quota.FamilyStatus{Family: f, Status: quota.Status{NextSlot: now,
			Windows: []quota.WindowStatus{{Window: quota.Window{Limit: 100, Per: time.Minute}, Used: 1, Remaining: 99},
				{Window: quota.Window{Limit: 1500, Per: time.Hour}, Used: 1, Remaining: 1499}}}})
	}
	r := resolvers.ReadQuota(statuses)
	b.Run("AppendJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r.AppendJSON(make([]byte, 0, 1500))
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m := map[string]*model.EndpointQuota{}
			for _, e := range r.Models() {
				m[e.Endpoint] = e
			}
			if _, err := json.Marshal(m); err != nil {
				b.Fatal(err)
			}
		}
	})
}
