package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mdegraph/mdegraph/internal/principal"
	"github.com/mdegraph/mdegraph/internal/quota"
	"github.com/mdegraph/mdegraph/internal/redistest"
)

// openStore connects a Store (one "replica") to srv under prefix.
func openStore(t *testing.T, srv *redistest.Server, prefix string) *Store {
	t.Helper()
	s, err := Open(t.Context(), Options{URL: srv.URL(), Prefix: prefix, HealthInterval: 20 * time.Millisecond, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func callerCtx(ctx context.Context, name string) context.Context {
	return principal.NewContext(ctx, principal.Anonymous(name+":1"))
}

// checkWindows fails if any interval (t-Per, t] holds more than Limit of grants (sorted).
func checkWindows(t *testing.T, grants []time.Time, windows []quota.Window) {
	t.Helper()
	for _, w := range windows {
		for i := range grants {
			// grants[i-Limit] must be at least Per before grants[i].
			if j := i - w.Limit; j >= 0 && grants[i].Sub(grants[j]) < w.Per {
				t.Fatalf("window %v: grants %d and %d are %v apart: %d grants in (%v, %v]",
					w, j, i, grants[i].Sub(grants[j]), w.Limit+1, grants[j], grants[i])
			}
		}
	}
}

// TestLimiterExactAcrossReplicas is the property test: several replicas (each its own Store,
// connection and Limiter) take from one family at once; by Redis's clock no sliding window
// ever holds more than its limit, every call is either granted or refused with the wait, and
// the replicas together are granted what the windows allow.
func TestLimiterExactAcrossReplicas(t *testing.T) {
	t.Parallel()
	srv := redistest.New(t)
	windows := []quota.Window{{Limit: 5, Per: 200 * time.Millisecond}, {Limit: 12, Per: time.Second}}
	const replicas, callsEach = 4, 40
	var (
		mu      sync.Mutex
		grants  []time.Time
		refused int
		wg      sync.WaitGroup
	)
	for r := range replicas {
		l := NewLimiter(openStore(t, srv, "exact"), LimiterOptions{Windows: windows, MaxWait: 1500 * time.Millisecond, Replicas: replicas})
		for c := range callsEach {
			wg.Go(func() {
				ctx := callerCtx(t.Context(), fmt.Sprintf("caller%d", (r+c)%3))
				at, err := l.Take(ctx, "fam")
				mu.Lock()
				defer mu.Unlock()
				var exceeded *quota.ExceededError
				switch {
				case err == nil:
					grants = append(grants, at)
				case errors.As(err, &exceeded):
					refused++
				default:
					t.Errorf("Take: %v", err)
				}
			})
		}
	}
	wg.Wait()
	slices.SortFunc(grants, func(a, b time.Time) int { return a.Compare(b) })
	checkWindows(t, grants, windows)
	t.Logf("%d granted over %v, %d refused", len(grants), grants[len(grants)-1].Sub(grants[0]), refused)
	if len(grants)+refused != replicas*callsEach {
		t.Errorf("granted %d + refused %d, want %d calls", len(grants), refused, replicas*callsEach)
	}
	if len(grants) < windows[0].Limit {
		t.Errorf("granted %d, want at least the first window's %d", len(grants), windows[0].Limit)
	}
}

// TestLimiterFairAcrossReplicas: one caller floods the line from one replica; another caller's
// single call from another replica gets its turn after at most one of the flooder's calls
// (package quota's bound, 2(n-1) with n = 2), not behind the flood.
func TestLimiterFairAcrossReplicas(t *testing.T) {
	t.Parallel()
	srv := redistest.New(t)
	windows := []quota.Window{{Limit: 1, Per: 100 * time.Millisecond}}
	opts := LimiterOptions{Windows: windows, MaxWait: time.Minute, Replicas: 2, Families: []string{"fam"}}
	flooder, other := NewLimiter(openStore(t, srv, "fair"), opts), NewLimiter(openStore(t, srv, "fair"), opts)
	// A pause holds every grant while the flood queues, so that the line is full when the
	// other caller arrives.
	flooder.Pause("fam", time.Now().Add(2*time.Second))
	const flood = 8
	var (
		mu     sync.Mutex
		floods []time.Time
		wg     sync.WaitGroup
	)
	for range flood {
		wg.Go(func() {
			at, err := flooder.Take(callerCtx(t.Context(), "flooder"), "fam")
			if err != nil {
				t.Errorf("flooder: %v", err)
			}
			mu.Lock()
			floods = append(floods, at)
			mu.Unlock()
		})
	}
	waitFor(t, func() bool { return queued(other, "fam") == flood })
	at, err := other.Take(callerCtx(t.Context(), "other"), "fam")
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	ahead := 0
	for _, f := range floods {
		if f.Before(at) {
			ahead++
		}
	}
	if ahead > 2 {
		t.Errorf("%d of the flooder's calls were granted before the other caller's; want at most 2 (fair turns)", ahead)
	}
	all := append(slices.Clone(floods), at)
	slices.SortFunc(all, func(a, b time.Time) int { return a.Compare(b) })
	checkWindows(t, all, windows)
}

func queued(l *Limiter, family string) int {
	for _, s := range l.Status() {
		if s.Family == family {
			return s.Queued
		}
	}
	return 0
}

// waitFor polls cond until it holds (the test's own deadline bounds it).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-t.Context().Done():
			t.Fatal("condition never held")
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// TestLimiterPauseSharedAndLeave: a pause set by one replica holds the others' calls, with
// the wait in the refusal; a waiter whose caller goes away frees its place.
func TestLimiterPauseSharedAndLeave(t *testing.T) {
	t.Parallel()
	srv := redistest.New(t)
	opts := LimiterOptions{Windows: []quota.Window{{Limit: 100, Per: time.Minute}}, MaxWait: time.Second, Replicas: 2}
	a, b := NewLimiter(openStore(t, srv, "pause"), opts), NewLimiter(openStore(t, srv, "pause"), opts)
	a.Pause("fam", time.Now().Add(time.Hour))
	_, err := b.Take(t.Context(), "fam")
	var exceeded *quota.ExceededError
	if !errors.As(err, &exceeded) || exceeded.RetryAfter < 59*time.Minute {
		t.Fatalf("Take on the other replica during a pause = %v, want an ExceededError of about an hour", err)
	}
	st := b.Status()
	if len(st) != 1 || st[0].PausedUntil.Before(time.Now().Add(59*time.Minute)) {
		t.Errorf("Status = %+v, want the pause", st)
	}

	// A reservation given up is released: the line is empty again.
	c := NewLimiter(openStore(t, srv, "leave"), LimiterOptions{Windows: []quota.Window{{Limit: 1, Per: time.Hour}}, MaxWait: time.Hour, Families: []string{"fam"}})
	if _, err := c.Take(t.Context(), "fam"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { _, err := c.Take(ctx, "fam"); done <- err }()
	waitFor(t, func() bool { return queued(c, "fam") == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Take = %v, want context.Canceled", err)
	}
	if n := queued(c, "fam"); n != 0 {
		t.Errorf("after the caller left, %d queued, want 0", n)
	}
}

// TestLimiterRefund: a grant given back no longer counts, on any replica.
func TestLimiterRefund(t *testing.T) {
	t.Parallel()
	srv := redistest.New(t)
	opts := LimiterOptions{Windows: []quota.Window{{Limit: 1, Per: time.Hour}}}
	a, b := NewLimiter(openStore(t, srv, "refund"), opts), NewLimiter(openStore(t, srv, "refund"), opts)
	at, err := a.Take(t.Context(), "fam")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Take(t.Context(), "fam"); err == nil {
		t.Fatal("second Take granted beyond the limit")
	}
	a.Refund("fam", at)
	if _, err := b.Take(t.Context(), "fam"); err != nil {
		t.Fatalf("Take after the refund: %v", err)
	}
}
