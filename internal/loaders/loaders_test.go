package loaders

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mdegraph/mdegraph/internal/defender"
)

// savings is an Observer that adds up the calls saved, by endpoint and reason, and the stale
// answers served (reason "stale/<Stale.Reason>").
type savings struct {
	mu sync.Mutex
	n  map[string]int
}

func (s *savings) Stale(ep defender.Endpoint, reason string) { s.Saved(ep, "stale/"+reason, 1) }

func (s *savings) Saved(ep defender.Endpoint, reason string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == nil {
		s.n = map[string]int{}
	}
	s.n[string(ep)+"/"+reason] += n
}

func (s *savings) get(ep defender.Endpoint, reason string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n[string(ep)+"/"+reason]
}

// TestLoadersBatchOneRequest asks what the resolvers of one request would ask, concurrently:
// repeated keys are answered once and device ids are fetched together in one list call.
//
// It runs in real time, not in a synctest bubble: the dataloader's thunks for a repeated key
// wait on a sync.RWMutex, which synctest does not count as durably blocked, so the bubble's
// clock would never reach the end of the batch window. Nothing here depends on timing.
func TestLoadersBatchOneRequest(t *testing.T) {
	t.Parallel()
	src := newFakeSource(3)
	saved := &savings{}
	// A long window, so that a busy machine cannot start a goroutine after it closes and split
	// the batch (the dataloader's window is real time here; see above).
	f := NewFetcher(Options{Source: src, CacheTTL: time.Minute, Observer: saved, BatchWait: 200 * time.Millisecond})
	l := New(f)
	ctx := appCtx()

	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 9 {
		id := deviceID(i % 3)
		wg.Go(func() {
			if _, _, err := l.LogonUsers(ctx, id); err != nil {
				errs <- err
			}
		})
		wg.Go(func() {
			m, _, err := l.Machine(ctx, defender.MachineRef(id))
			if err != nil {
				errs <- err
			} else if m.ID != id {
				errs <- fmt.Errorf("Machine(%s) answered %s", id, m.ID)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	get, list, users := src.calls()
	if get != 0 || list != 1 || users != 3 {
		t.Errorf("calls: %d get, %d list, %d logonusers; want 0, 1 (all three ids), 3", get, list, users)
	}
	// 6 repeats of logonusers keys and 6 of machine keys are answered by the dataloader;
	// the list call answers 3 ids with 1 call.
	if got := saved.get(defender.EndpointLogonUsers, SavedByBatching); got != 6 {
		t.Errorf("logonusers saved by batching = %d, want 6", got)
	}
	if got := saved.get(defender.EndpointMachine, SavedByBatching) + saved.get(defender.EndpointMachines, SavedByBatching); got != 6+2 {
		t.Errorf("machine calls saved by batching = %d, want 8", got)
	}
}

// TestLoadersCachedAnswerSkipsBatchWait checks that a cached answer is returned at once, while
// an answer that needs the upstream waits DefaultBatchWait for the other keys of the request. In a
// synctest bubble time moves only while every goroutine waits, so "at once" is exact.
func TestLoadersCachedAnswerSkipsBatchWait(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		src := newFakeSource(2)
		saved := &savings{}
		f := NewFetcher(Options{Source: src, CacheTTL: time.Minute, NotFoundTTL: time.Minute, Observer: saved})
		ctx := appCtx()
		unknown := fmt.Sprintf("%040x", 999)

		cold := New(f)
		start := time.Now()
		if _, _, err := cold.LogonUsers(ctx, deviceID(0)); err != nil {
			t.Fatal(err)
		}
		if _, _, err := cold.LogonUsers(ctx, unknown); !defender.IsNotFound(err) {
			t.Fatalf("unknown device: err = %v, want a 404", err)
		}
		if _, _, err := cold.Machine(ctx, defender.MachineRef(deviceID(1))); err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(start); waited < 3*DefaultBatchWait {
			t.Errorf("three cold loads took %v, want each to wait DefaultBatchWait (%v)", waited, DefaultBatchWait)
		}

		warm := New(f)
		start = time.Now()
		users, _, err := warm.LogonUsers(ctx, deviceID(0))
		if err != nil || len(users) != 1 || users[0].AccountName != "user0" {
			t.Errorf("cached users = %v, %v; want user0", users, err)
		}
		if _, _, err := warm.LogonUsers(ctx, unknown); !defender.IsNotFound(err) {
			t.Errorf("cached 404: err = %v, want a 404", err)
		}
		if m, _, err := warm.Machine(ctx, defender.MachineRef(deviceID(1))); err != nil || m.ID != deviceID(1) {
			t.Errorf("cached machine = %v, %v", m, err)
		}
		if waited := time.Since(start); waited != 0 {
			t.Errorf("cached answers took %v, want no wait at all", waited)
		}
		if _, _, n := src.calls(); n != 2 {
			t.Errorf("logonusers calls = %d, want 2 (the warm loads used the cache)", n)
		}
		if got := saved.get(defender.EndpointLogonUsers, SavedByCache); got != 2 {
			t.Errorf("logonusers saved by cache = %d, want 2", got)
		}
		if got := saved.get(defender.EndpointLogonUsers, SavedByBatching); got != 0 {
			t.Errorf("logonusers saved by batching = %d, want 0 (cache hits are not batching)", got)
		}
	})
}

// TestLoadersWithoutMiddleware reports a wiring mistake instead of panicking.
func TestLoadersWithoutMiddleware(t *testing.T) {
	t.Parallel()
	l := For(context.Background())
	if _, _, err := l.LogonUsers(context.Background(), deviceID(0)); err != errNoLoaders {
		t.Errorf("LogonUsers without middleware: err = %v, want errNoLoaders", err)
	}
	if _, _, err := l.Machine(context.Background(), defender.MachineRef(deviceID(0))); err != errNoLoaders {
		t.Errorf("Machine without middleware: err = %v, want errNoLoaders", err)
	}
}

// TestLoadersKnown: a device is known when a fresh machine answer showed it, in the request or
// in the cache, or a fresh answer about it in the request (its logon users: Defender answers
// 404 for an unknown device); a stale answer and a 404 prove nothing.
func TestLoadersKnown(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		src := newFakeSource(3)
		f := NewFetcher(Options{Source: src, CacheTTL: time.Minute, NotFoundTTL: time.Minute, StaleTTL: time.Hour})
		ctx := appCtx()
		unknown := fmt.Sprintf("%040x", 999)

		l := New(f)
		if _, _, err := l.Machine(ctx, defender.MachineRef(deviceID(0))); err != nil {
			t.Fatal(err)
		}
		l.Machine(ctx, defender.MachineRef(unknown))
		l.LogonUsers(ctx, deviceID(1))
		l.LogonUsers(ctx, unknown)
		for id, want := range map[string]bool{deviceID(0): true, unknown: false, deviceID(1): true, deviceID(2): false} {
			if got := l.Known(ctx, id); got != want {
				t.Errorf("same request: Known(%s) = %v, want %v", id, got, want)
			}
		}
		if !New(f).Known(ctx, deviceID(0)) {
			t.Error("next request: the fresh cached answer does not make the device known")
		}
		if New(f).Known(ctx, deviceID(1)) {
			t.Error("next request: a logon-users answer of another request makes the device known")
		}
		if New(f).Known(WithIdentity(ctx, "user:bob"), deviceID(0)) {
			t.Error("another identity knows the device from this one's answer")
		}

		time.Sleep(2 * time.Minute)
		src.failWith = err503
		later := New(f)
		if _, stale, err := later.Machine(ctx, defender.MachineRef(deviceID(0))); err != nil || stale == nil {
			t.Fatalf("want a stale answer, got %v %v", stale, err)
		}
		if later.Known(ctx, deviceID(0)) {
			t.Error("a stale answer made the device known")
		}
	})
}
