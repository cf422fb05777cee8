package loaders

import (
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mdegraph/mdegraph/internal/defender"
)

func TestNumEndpoints(t *testing.T) {
	t.Parallel()
	if numEndpoints != len(defender.Endpoints) {
		t.Errorf("numEndpoints = %d, want len(defender.Endpoints) = %d", numEndpoints, len(defender.Endpoints))
	}
}

// TestReuse: a request may be reused whole only when every answer it read came fresh from the
// cache, until the first of them stops being fresh; a call, a remembered 404 or nothing read
// at all rule it out.
func TestReuse(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		src := newFakeSource(3)
		saved := &savings{}
		f := NewFetcher(Options{Source: src, CacheTTL: time.Minute, NotFoundTTL: time.Minute, Observer: saved})
		ctx := appCtx()
		at := func(ep defender.Endpoint) int { return slices.Index(defender.Endpoints, ep) }

		first := New(f) // fetches the users of device 0, then, 10 s later, device 1's details
		if _, _, err := first.LogonUsers(ctx, deviceID(0)); err != nil {
			t.Fatal(err)
		}
		usersFresh := time.Now().Add(time.Minute)
		time.Sleep(10 * time.Second)
		if _, _, err := first.Machine(ctx, defender.MachineRef(deviceID(1))); err != nil {
			t.Fatal(err)
		}
		if r := first.Reuse(); r.OK {
			t.Errorf("a request that called the upstream: Reuse %+v, want not OK", r)
		}

		second := New(f) // the same, from the cache
		second.LogonUsers(ctx, deviceID(0))
		second.Machine(ctx, defender.MachineRef(deviceID(1)))
		second.LogonUsers(ctx, deviceID(0))
		r := second.Reuse()
		if !r.OK || !r.FreshUntil.Equal(usersFresh) {
			t.Errorf("a request answered from the cache: Reuse OK %v until %v, want OK until %v (the users' freshness, the first to end)",
				r.OK, r.FreshUntil, usersFresh)
		}
		if r.Saved[at(defender.EndpointLogonUsers)] != 2 || r.Saved[at(defender.EndpointMachine)] != 1 {
			t.Errorf("Saved = %v, want 2 logonusers and 1 machine call", r.Saved)
		}

		before := saved.get(defender.EndpointLogonUsers, SavedByCache)
		New(f).Reused(r)
		if got := saved.get(defender.EndpointLogonUsers, SavedByCache) - before; got != 2 {
			t.Errorf("Reused counted %d logonusers calls saved by the cache, want 2", got)
		}

		unknown := deviceID(9)
		New(f).LogonUsers(ctx, unknown) // the 404 is remembered
		third := New(f)
		third.LogonUsers(ctx, deviceID(0))
		if _, _, err := third.LogonUsers(ctx, unknown); !defender.IsNotFound(err) {
			t.Fatalf("the unknown device: %v, want its 404 from the cache", err)
		}
		if r := third.Reuse(); r.OK {
			t.Errorf("a request given a remembered 404: Reuse %+v, want not OK", r)
		}

		if r := New(f).Reuse(); r.OK {
			t.Errorf("a request that read nothing: Reuse %+v, want not OK", r)
		}
		var none *Loaders
		if r := none.Reuse(); r.OK {
			t.Errorf("no loaders: Reuse %+v, want not OK", r)
		}

		time.Sleep(time.Minute)
		late := New(f) // the users are no longer fresh: fetched again
		late.LogonUsers(ctx, deviceID(0))
		if r := late.Reuse(); r.OK {
			t.Errorf("after the freshness ended: Reuse %+v, want not OK", r)
		}
	})
}
