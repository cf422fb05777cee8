package loaders

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mdegraph/mdegraph/internal/defender"
)

// cacheOnly is a Cache that cannot say when its entries expire.
type cacheOnly[V any] struct{ Cache[V] }

// TestCachedAnswers: what the cost estimate learns of the cache is an answer that lasts until
// the request's deadline, for the request's identity; peeking counts nothing as saved.
func TestCachedAnswers(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		src := newFakeSource(2)
		saved := &savings{}
		f := NewFetcher(Options{Source: src, CacheTTL: 60 * time.Second, NotFoundTTL: 10 * time.Second, Observer: saved})
		ctx := appCtx()
		id, name := deviceID(0), "host-0.contoso.local"
		unknown := fmt.Sprintf("%040x", 999)
		f.Machines(ctx, []string{name, unknown})
		f.LogonUsers(ctx, []string{id})
		start := time.Now()

		l := New(f)
		until := func(d time.Duration) context.Context {
			c, cancel := context.WithDeadline(ctx, start.Add(d))
			t.Cleanup(cancel)
			return c
		}
		tests := []struct {
			name      string
			ctx       context.Context
			ref       string
			wantOK    bool
			wantID    string // "" for a cached 404
			wantUsers bool
		}{
			{"by name, resolved to its id (logon users are kept by id)", until(30 * time.Second), name, true, id, false},
			{"by id, cached by the call by name", until(30 * time.Second), id, true, id, true},
			{"a 404", until(5 * time.Second), unknown, true, "", false},
			{"a 404 that expires before the deadline", until(10 * time.Second), unknown, false, "", false},
			{"an answer that expires at the deadline", until(60 * time.Second), id, false, "", false},
			{"no deadline", ctx, id, false, "", false},
			{"another identity", WithIdentity(until(time.Second), "user:t/o"), id, false, "", false},
			{"never asked", until(time.Second), deviceID(1), false, "", false},
		}
		for _, tt := range tests {
			m, ok := l.CachedMachine(tt.ctx, defender.MachineRef(tt.ref))
			if ok != tt.wantOK || ok && (m == nil) != (tt.wantID == "") || m != nil && m.ID != tt.wantID {
				t.Errorf("%s: CachedMachine = %v, %v; want ok %v, id %q", tt.name, m, ok, tt.wantOK, tt.wantID)
			}
			if _, got := l.CachedLogonUsers(tt.ctx, tt.ref); got != tt.wantUsers {
				t.Errorf("%s: CachedLogonUsers = %v, want %v", tt.name, got, tt.wantUsers)
			}
		}
		if n := saved.get(defender.EndpointMachine, SavedByCache) + saved.get(defender.EndpointLogonUsers, SavedByCache); n != 0 {
			t.Errorf("peeking counted %d calls saved by the cache, want 0", n)
		}

		opaque := New(NewFetcher(Options{Source: src, CacheTTL: time.Minute,
			Machines: cacheOnly[*defender.Machine]{NewMemoryCache[*defender.Machine](10)}}))
		opaque.fetcher.Machines(ctx, []string{id})
		if _, ok := opaque.CachedMachine(until(time.Second), defender.MachineRef(id)); ok {
			t.Error("a cache that cannot say when an entry expires reported it cached")
		}
		var none *Loaders
		_, users := none.CachedLogonUsers(until(time.Second), id)
		if _, ok := none.CachedMachine(until(time.Second), defender.MachineRef(id)); ok || users || none.CachedAlerts(until(time.Second), id) {
			t.Error("nil Loaders reported something cached")
		}
	})
}
