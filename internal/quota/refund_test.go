package quota

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// TestRefund checks that a refunded slot is usable again at once, that waiters in line move up
// when a slot comes back, and that a refund never makes a window less strict than the real
// calls require.
func TestRefund(t *testing.T) {
	t.Parallel()

	t.Run("a refunded slot is free again", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			l := NewLimiter(Window{Limit: 2, Per: time.Minute})
			ctx := context.Background()
			first, err := l.Take(ctx, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := l.Take(ctx, 0); err != nil {
				t.Fatal(err)
			}
			var exceeded *ExceededError
			if _, err := l.Take(ctx, 0); !errors.As(err, &exceeded) {
				t.Fatalf("third Take: %v, want *ExceededError (2 per minute)", err)
			}
			l.Refund(first)
			if _, err := l.Take(ctx, 0); err != nil {
				t.Errorf("Take after a refund: %v, want the refunded slot", err)
			}
			if _, err := l.Take(ctx, 0); !errors.As(err, &exceeded) {
				t.Errorf("one more: %v, want *ExceededError: only one slot came back", err)
			}
		})
	})

	t.Run("a waiter in line gets the refunded slot", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			l := NewLimiter(Window{Limit: 1, Per: time.Minute})
			ctx := context.Background()
			start := time.Now()
			granted, err := l.Take(ctx, 0)
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(10 * time.Second) // the fake clock of the bubble
			var waited time.Time
			done := make(chan error)
			go func() {
				var err error
				waited, err = l.Take(ctx, time.Minute)
				done <- err
			}()
			synctest.Wait() // queued until start+1m
			l.Refund(granted)
			synctest.Wait()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			default:
				t.Fatal("the waiter is still in line after the slot came back")
			}
			if got := waited.Sub(start); got != 10*time.Second {
				t.Errorf("waiter granted at +%v, want +10s (when the slot came back)", got)
			}
			if l.Status().Queued != 0 || armed(l) {
				t.Error("queue or timer left behind")
			}
		})
	})

	t.Run("refunding an unknown or zero time changes nothing", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			l := NewLimiter(Window{Limit: 1, Per: time.Minute})
			if _, err := l.Take(context.Background(), 0); err != nil {
				t.Fatal(err)
			}
			l.Refund(time.Time{})
			l.Refund(time.Now().Add(-time.Hour)) // before every logged grant
			if l.Allow() {
				t.Error("a slot came free without a refund of a real grant")
			}
		})
	})
}

// TestGrantLogRemove checks the log itself: the most recent grant at or before the refunded
// time goes, and once the log has dropped old grants, the oldest kept time stands in for them.
func TestGrantLogRemove(t *testing.T) {
	t.Parallel()
	at := func(minutes ...int) []time.Time {
		out := make([]time.Time, len(minutes))
		for i, m := range minutes {
			out[i] = t0.Add(time.Duration(m) * time.Minute)
		}
		return out
	}
	contents := func(g *grantLog) []time.Time {
		out := make([]time.Time, 0, g.n)
		for k := g.n; k >= 1; k-- {
			out = append(out, g.back(k))
		}
		return out
	}
	tests := []struct {
		name   string
		size   int
		grants []time.Time
		remove time.Time
		want   []time.Time
		ok     bool
	}{
		{"exact time", 3, at(0, 1, 2), at(1)[0], at(0, 2), true},
		{"between grants: the latest before it", 3, at(0, 1, 2), at(1)[0].Add(30 * time.Second), at(0, 2), true},
		{"before every grant: nothing", 3, at(5, 6), at(1)[0], at(5, 6), false},
		{"full, nothing dropped yet", 3, at(0, 1, 2), at(2)[0], at(0, 1), true},
		{"dropped grants: the oldest kept time stands in", 3, at(0, 1, 2, 3), at(3)[0], at(1, 1, 2), true},
		{"empty log", 3, nil, at(0)[0], []time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := grantLog{times: make([]time.Time, tt.size)}
			for _, ts := range tt.grants {
				g.add(ts)
			}
			if ok := g.remove(tt.remove); ok != tt.ok {
				t.Errorf("remove = %v, want %v", ok, tt.ok)
			}
			got := contents(&g)
			if len(got) != len(tt.want) {
				t.Fatalf("log %v, want %v", got, tt.want)
			}
			for i := range got {
				if !got[i].Equal(tt.want[i]) {
					t.Fatalf("log %v, want %v", got, tt.want)
				}
			}
		})
	}
}
