package loaders

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mdegraph/mdegraph/internal/defender"
)

// graphSource is fakeSource that also serves the wider graph: each device i has one alert,
// account "user<i>" logged on to device i, account "shared" to every device; a page lists
// the devices in id order. It records the calls by kind and key.
type graphSource struct {
	*fakeSource

	mu     sync.Mutex
	byKind map[string][]string // "alerts", "users", "pages" → keys in call order
}

var _ GraphSource = (*graphSource)(nil)

func newGraphSource(n int) *graphSource {
	return &graphSource{fakeSource: newFakeSource(n), byKind: map[string][]string{}}
}

func (s *graphSource) record(kind, key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byKind[kind] = append(s.byKind[kind], key)
}

func (s *graphSource) taken(kind string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.byKind[kind])
}

func (s *graphSource) sorted() []defender.Machine {
	var ms []defender.Machine
	for _, m := range s.machines {
		ms = append(ms, m)
	}
	slices.SortFunc(ms, func(a, b defender.Machine) int { return strings.Compare(a.ID, b.ID) })
	return ms
}

func (s *graphSource) Alerts(ctx context.Context, id string) ([]defender.Alert, error) {
	s.record("alerts", id)
	if err := s.block(ctx); err != nil {
		return nil, err
	}
	if s.failWith != nil {
		return nil, s.failWith
	}
	if _, ok := s.machines[id]; !ok {
		return nil, s.notFound(id)
	}
	return []defender.Alert{{ID: "alert-" + id}}, nil
}

func (s *graphSource) UserMachines(ctx context.Context, name defender.AccountName) ([]defender.Machine, error) {
	s.record("users", name.String())
	if err := s.block(ctx); err != nil {
		return nil, err
	}
	if s.failWith != nil {
		return nil, s.failWith
	}
	if name == "shared" {
		return s.sorted(), nil
	}
	var i int
	if _, err := fmt.Sscanf(name.String(), "user%d", &i); err == nil {
		if m, ok := s.machines[deviceID(i)]; ok {
			return []defender.Machine{m}, nil
		}
	}
	return []defender.Machine{}, nil
}

func (s *graphSource) ListMachines(ctx context.Context, opts defender.ListOptions) ([]defender.Machine, error) {
	s.record("pages", fmt.Sprintf("%d+%d", opts.Skip, opts.Top))
	if err := s.block(ctx); err != nil {
		return nil, err
	}
	if s.failWith != nil {
		return nil, s.failWith
	}
	ms := s.sorted()
	start := min(opts.Skip, len(ms))
	return ms[start:min(start+opts.Top, len(ms))], nil
}

// TestOneCallPerDistinctKey: within one request, however many fields ask for the same
// account's machines or the same device's alerts, and across concurrent requests, there is
// one upstream call per distinct key; and never one shared across identities.
func TestOneCallPerDistinctKey(t *testing.T) {
	t.Parallel()
	names := []defender.AccountName{"shared", "user1", "user2", "shared", "user1", "shared"}
	t.Run("one request", func(t *testing.T) {
		t.Parallel()
		src := newGraphSource(5)
		f := NewFetcher(Options{Source: src, CacheTTL: time.Minute})
		l := New(f)
		var wg sync.WaitGroup
		for _, n := range names {
			wg.Go(func() {
				if _, _, err := l.UserMachines(appCtx(), n); err != nil {
					t.Errorf("UserMachines(%s): %v", n, err)
				}
			})
		}
		for i := range 6 {
			wg.Go(func() {
				if _, _, err := l.Alerts(appCtx(), deviceID(i%3)); err != nil {
					t.Errorf("Alerts: %v", err)
				}
			})
		}
		wg.Wait()
		users, alerts := src.taken("users"), src.taken("alerts")
		slices.Sort(users)
		slices.Sort(alerts)
		if want := []string{"shared", "user1", "user2"}; !slices.Equal(users, want) {
			t.Errorf("users' machines calls %v, want one per distinct name %v", users, want)
		}
		if want := []string{deviceID(0), deviceID(1), deviceID(2)}; !slices.Equal(alerts, want) {
			t.Errorf("alerts calls %v, want one per device %v", alerts, want)
		}

		// The answers fill the cache: asked again, and the machines' details, cost nothing.
		l2 := New(f)
		l2.UserMachines(appCtx(), "shared")
		l2.Alerts(appCtx(), deviceID(0))
		for i := range 5 {
			if _, _, err := l2.Machine(appCtx(), defender.MachineRef(deviceID(i))); err != nil {
				t.Errorf("device %d: %v", i, err)
			}
			if !l2.Known(appCtx(), deviceID(i)) {
				t.Errorf("device %d, listed by a fresh answer, is not known", i)
			}
		}
		if get, list, _ := src.calls(); get+list != 0 || len(src.taken("users")) != 3 || len(src.taken("alerts")) != 3 {
			t.Errorf("after the cache was filled: %d get, %d list, %d users, %d alerts calls; want no new call",
				get, list, len(src.taken("users")), len(src.taken("alerts")))
		}
	})
	t.Run("concurrent requests", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			src := newGraphSource(5)
			src.gate = make(chan struct{})
			f := NewFetcher(Options{Source: src, CacheTTL: time.Minute})
			bob := WithIdentity(context.Background(), "user:tenant/bob")
			var wg sync.WaitGroup
			for _, ctx := range []context.Context{appCtx(), appCtx(), bob, appCtx(), bob} {
				wg.Go(func() { f.UserMachines(ctx, names) })
				wg.Go(func() { f.Alerts(ctx, []string{deviceID(0), deviceID(1), deviceID(0)}) })
				synctest.Wait() // the first of each identity is in the upstream, the others wait for it
			}
			close(src.gate)
			wg.Wait()
			users, alerts := src.taken("users"), src.taken("alerts")
			slices.Sort(users)
			slices.Sort(alerts)
			if want := []string{"shared", "shared", "user1", "user1", "user2", "user2"}; !slices.Equal(users, want) {
				t.Errorf("users' machines calls %v, want one per distinct name and identity %v", users, want)
			}
			if want := []string{deviceID(0), deviceID(0), deviceID(1), deviceID(1)}; !slices.Equal(alerts, want) {
				t.Errorf("alerts calls %v, want one per device and identity %v", alerts, want)
			}
		})
	})
}

// TestMachinePage: a page is one call, shared and cached per (identity, filter, top, skip);
// its machines fill the machine cache.
func TestMachinePage(t *testing.T) {
	t.Parallel()
	src := newGraphSource(10)
	f := NewFetcher(Options{Source: src, CacheTTL: time.Minute})
	ctx := appCtx()
	q := PageQuery{Filter: "healthStatus eq 'Active'", Top: 4, Skip: 3}
	l := New(f)
	ms, _, err := l.MachinePage(ctx, q)
	if err != nil || len(ms) != 4 || ms[0].ID != deviceID(3) {
		t.Fatalf("page = %v, %v; want devices 3 to 6", ms, err)
	}
	l.MachinePage(ctx, q)
	New(f).MachinePage(ctx, q)
	if got, ok := l.CachedMachinePage(context.Background(), q); ok || got != nil {
		t.Error("a context without a deadline counted the page as cached for the rest of the request")
	}
	dctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if got, ok := l.CachedMachinePage(dctx, q); !ok || len(got) != 4 {
		t.Errorf("CachedMachinePage = %d machines, %v; want the page", len(got), ok)
	}
	New(f).MachinePage(ctx, PageQuery{Filter: q.Filter, Top: 4, Skip: 7})
	New(f).MachinePage(WithIdentity(ctx, "user:tenant/bob"), q)
	if got := src.taken("pages"); !slices.Equal(got, []string{"3+4", "7+4", "3+4"}) {
		t.Errorf("page calls %v, want one per distinct page and identity", got)
	}
	for _, m := range ms {
		if _, _, err := l.Machine(ctx, defender.MachineRef(m.ID)); err != nil {
			t.Error(err)
		}
	}
	if get, list, _ := src.calls(); get+list != 0 {
		t.Errorf("details of listed machines made %d get and %d list calls, want none", get, list)
	}
	if k := (PageQuery{Filter: "a, b,c", Top: 3, Skip: 2}); parsePageKey(k.key()) != k {
		t.Errorf("parsePageKey(%q) = %+v, want %+v", k.key(), parsePageKey(k.key()), k)
	}
}

// TestCallBudget: a request with a budget starts no more upstream calls than it allows, the
// ones past it failing with a *BudgetError; calls the cache or another request's call answers
// cost nothing; and details of many ids count as the list calls that fetch them.
func TestCallBudget(t *testing.T) {
	t.Parallel()
	t.Run("refused past the budget", func(t *testing.T) {
		t.Parallel()
		src := newGraphSource(30)
		f := NewFetcher(Options{Source: src, CacheTTL: time.Minute})
		ctx := appCtx()
		l := New(f)
		l.LimitCalls(3)
		var budgetErrs int
		rs := f.UserMachines(l.withBudget(ctx), []defender.AccountName{"user0", "user1", "user2", "user3", "user4"})
		for _, r := range rs {
			var be *BudgetError
			if errors.As(r.Err, &be) {
				budgetErrs++
				if be.Max != 3 || be.Endpoint != defender.EndpointUserMachines {
					t.Errorf("budget error %+v", be)
				}
			}
		}
		if n := len(src.taken("users")); n != 3 || budgetErrs != 2 || l.CallsStarted() != 3 {
			t.Errorf("%d calls, %d refused, %d counted; want 3, 2 and 3", n, budgetErrs, l.CallsStarted())
		}
		// The answers now cached cost nothing; a list call of 30 ids is 2 list calls, more
		// than the budget left (0): every id is refused, none is fetched.
		if r := f.UserMachines(l.withBudget(ctx), []defender.AccountName{"user0"})[0]; r.Err != nil {
			t.Errorf("a cached answer past the budget: %v", r.Err)
		}
		l.LimitCalls(2)
		for _, r := range f.Machines(l.withBudget(ctx), ids(30)) {
			if r.Err != nil {
				t.Errorf("30 ids with a budget of 2: %v", r.Err)
			}
		}
		if _, list, _ := src.calls(); list != 2 {
			t.Errorf("30 ids: %d list calls, want 2", list)
		}
		// A budget of one list call: the first 25 ids of 30 more are fetched, the last 5 refused.
		l.LimitCalls(1)
		refused := 0
		for _, r := range f.Machines(l.withBudget(ctx), ids(60)[30:]) {
			var be *BudgetError
			if errors.As(r.Err, &be) {
				refused++
			}
		}
		if _, list, _ := src.calls(); list != 3 || refused != 5 {
			t.Errorf("30 more ids with a budget of 1: %d list calls in all, %d refused; want 3 and 5", list, refused)
		}
	})
	t.Run("a call joined costs nothing", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			src := newGraphSource(3)
			src.gate = make(chan struct{})
			f := NewFetcher(Options{Source: src, CacheTTL: time.Minute})
			var wg sync.WaitGroup
			wg.Go(func() { f.Alerts(appCtx(), []string{deviceID(0)}) }) // another request's call
			synctest.Wait()
			l := New(f)
			l.LimitCalls(1)
			wg.Go(func() {
				// Fetcher calls, not l.Alerts: a dataloader's wait is not durably blocking, which
				// synctest.Wait needs.
				if r := f.Alerts(l.withBudget(appCtx()), []string{deviceID(0)})[0]; r.Err != nil {
					t.Errorf("joined call: %v", r.Err)
				}
				if r := f.Alerts(l.withBudget(appCtx()), []string{deviceID(1)})[0]; r.Err != nil {
					t.Errorf("the budget's one call: %v", r.Err)
				}
			})
			synctest.Wait()
			close(src.gate)
			wg.Wait()
			if got := len(src.taken("alerts")); got != 2 || l.CallsStarted() != 1 {
				t.Errorf("%d alerts calls, %d charged to the request; want 2 and 1", got, l.CallsStarted())
			}
		})
	})
}

// TestGraphStale: the new kinds of answer fall back on the last good one like the others.
func TestGraphStale(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		src := newGraphSource(3)
		f := NewFetcher(Options{Source: src, CacheTTL: time.Minute, StaleTTL: time.Hour})
		ctx := appCtx()
		New(f).Alerts(ctx, deviceID(0))
		New(f).UserMachines(ctx, "shared")
		New(f).MachinePage(ctx, PageQuery{Top: 2})
		time.Sleep(2 * time.Minute)
		src.failWith = err503
		l := New(f)
		if as, stale, err := l.Alerts(ctx, deviceID(0)); err != nil || stale == nil || len(as) != 1 {
			t.Errorf("alerts: %v %v %v, want the stale answer", as, stale, err)
		}
		if ms, stale, err := l.UserMachines(ctx, "shared"); err != nil || stale == nil || len(ms) != 3 {
			t.Errorf("user machines: %v %v %v, want the stale answer", ms, stale, err)
		}
		if ms, stale, err := l.MachinePage(ctx, PageQuery{Top: 2}); err != nil || stale == nil || len(ms) != 2 {
			t.Errorf("page: %v %v %v, want the stale answer", ms, stale, err)
		}
		if l.Known(ctx, deviceID(1)) {
			t.Error("a stale list made a device known")
		}
	})
}

// TestWithoutGraphSource: a Source that serves only the machines answers the wider graph's
// calls with an error, not a panic.
func TestWithoutGraphSource(t *testing.T) {
	t.Parallel()
	f := NewFetcher(Options{Source: newFakeSource(1)})
	if _, _, err := New(f).Alerts(appCtx(), deviceID(0)); !errors.Is(err, errNoGraphSource) {
		t.Errorf("Alerts: %v, want errNoGraphSource", err)
	}
	if r := f.MachinePage(appCtx(), PageQuery{Top: 1}); !errors.Is(r.Err, errNoGraphSource) {
		t.Errorf("MachinePage: %v, want errNoGraphSource", r.Err)
	}
}

// beforeJoin is a Sharing that runs a hook before its first Join: what happens between a
// caller's look in the cache and its Join.
type beforeJoin[V any] struct {
	*Flight[V]
	once sync.Once
	hook func()
}

func (b *beforeJoin[V]) Join(keys []string) (Shared[V], []string) {
	b.once.Do(b.hook)
	return b.Flight.Join(keys)
}

// TestAnswerStoredBeforeJoin: a call that ends between a caller's look in the cache and its
// Join (it stores its answer, then leaves the calls in progress) answers that caller too: the
// caller looks in the cache again rather than call a second time.
func TestAnswerStoredBeforeJoin(t *testing.T) {
	t.Parallel()
	src := newGraphSource(3)
	cache := NewMemoryCache[[]defender.Alert](10)
	ctx := appCtx()
	sharing := &beforeJoin[[]defender.Alert]{Flight: NewFlight[[]defender.Alert](time.Minute)}
	sharing.hook = func() {
		now := time.Now()
		cache.Set(ctx, cacheKey(ctx, defender.EndpointAlerts, deviceID(0)),
			Entry[[]defender.Alert]{Value: []defender.Alert{{ID: "stored"}}, Fetched: now, FreshUntil: now.Add(time.Minute)}, time.Minute)
	}
	f := NewFetcher(Options{Source: src, CacheTTL: time.Minute, Alerts: cache, AlertCalls: sharing})
	r := f.Alerts(ctx, []string{deviceID(0)})[0]
	if r.Err != nil || len(r.Value) != 1 || r.Value[0].ID != "stored" {
		t.Errorf("answer %+v, want the one stored meanwhile", r)
	}
	if calls := src.taken("alerts"); len(calls) != 0 {
		t.Errorf("upstream calls %v, want none", calls)
	}
}
