package quota

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mdegraph/mdegraph/internal/principal"
)

func TestSet(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s := NewSet(30*time.Second, Window{1, time.Minute})
		type call struct {
			caller, family string
			waited         time.Duration
			err            error
		}
		var mu sync.Mutex
		var calls []call
		s.OnWait = func(ctx context.Context, family string, waited time.Duration, err error) {
			mu.Lock()
			defer mu.Unlock()
			p, _ := principal.FromContext(ctx)
			calls = append(calls, call{p.ID(), family, waited, err})
		}
		start := time.Now()
		ctx := as(context.Background(), "frontend")
		for _, f := range []string{"machines", "alerts"} {
			if err := s.Wait(ctx, f); err != nil {
				t.Fatalf("first Wait(%q) = %v, want nil: families are independent", f, err)
			}
		}
		err := s.Wait(ctx, "machines")
		var ee *ExceededError
		if !errors.As(err, &ee) || ee.RetryAfter != time.Minute || !strings.HasPrefix(err.Error(), "quota machines: ") {
			t.Errorf("second Wait(machines) = %v, want a *ExceededError for 1m naming the family", err)
		}
		s.Pause("alerts", start.Add(90*time.Second))
		s.Pause("vulnerabilities", start.Add(90*time.Second)) // created by Pause
		if len(calls) != 3 || calls[0].family != "machines" || calls[2].err != err || calls[2].caller != "apikey:frontend" {
			t.Errorf("OnWait calls = %+v, want machines, alerts, then machines with the error, all by apikey:frontend", calls)
		}

		ws := func(used int) []WindowStatus { return []WindowStatus{{Window{1, time.Minute}, used, 1 - used}} }
		want := []FamilyStatus{
			{"alerts", Status{ws(1), start.Add(90 * time.Second), start.Add(90 * time.Second), 0}},
			{"machines", Status{ws(1), start.Add(time.Minute), time.Time{}, 0}},
			{"vulnerabilities", Status{ws(0), start.Add(90 * time.Second), start.Add(90 * time.Second), 0}},
		}
		if got := s.Status(); !reflect.DeepEqual(got, want) {
			t.Errorf("Status() =\n%+v, want\n%+v", got, want)
		}
		at := start.Add(time.Minute)
		want[1].Windows, want[1].NextSlot = ws(0), at
		want[0].Windows = ws(0)
		want[2].Windows = ws(0)
		if got := s.StatusAt(at); !reflect.DeepEqual(got, want) {
			t.Errorf("StatusAt(start+1m) =\n%+v, want\n%+v", got, want)
		}
	})
}

func TestSetConcurrent(t *testing.T) {
	t.Parallel()
	s := NewSet(0, Window{5, time.Hour})
	families := []string{"a", "b", "c"}
	var wg sync.WaitGroup
	var mu sync.Mutex
	granted := map[string]int{}
	for g := range 30 {
		wg.Go(func() {
			f := families[g%len(families)]
			for range 10 {
				if s.Wait(context.Background(), f) == nil {
					mu.Lock()
					granted[f]++
					mu.Unlock()
				}
				s.Status()
			}
		})
	}
	wg.Wait()
	for _, f := range families {
		if granted[f] != 5 {
			t.Errorf("family %s: %d granted, want 5", f, granted[f])
		}
	}
}

func TestNewLimiterPanics(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		windows []Window
	}{
		{"none", nil},
		{"zero limit", []Window{{0, time.Minute}}},
		{"negative per", []Window{{100, time.Minute}, {1, -time.Second}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for name, f := range map[string]func(){
				"NewLimiter": func() { NewLimiter(tt.windows...) },
				"NewSet":     func() { NewSet(time.Second, tt.windows...) },
			} {
				func() {
					defer func() {
						if recover() == nil {
							t.Errorf("%s(%v) did not panic", name, tt.windows)
						}
					}()
					f()
				}()
			}
		})
	}
}

func BenchmarkSetWait(b *testing.B) {
	s := NewSet(0, Window{100, time.Nanosecond}, Window{1500, time.Nanosecond})
	ctx := context.Background()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.Wait(ctx, "machines"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
