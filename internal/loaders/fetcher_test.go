package loaders

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mdegraph/mdegraph/internal/defender"
)

// fakeSource is an upstream with a fixed set of machines that records every call. If gate is
// set, every call blocks until gate is closed (or its ctx ends).
type fakeSource struct {
	machines map[string]defender.Machine // by id
	users    map[string][]defender.User  // by id
	failWith error                       // returned by every call when set

	gate chan struct{}

	mu          sync.Mutex
	getCalls    []string
	listCalls   [][]string
	userCalls   []string
	cancelled   int // calls whose ctx ended while blocked
	activeCalls int
}

func newFakeSource(n int) *fakeSource {
	s := &fakeSource{machines: map[string]defender.Machine{}, users: map[string][]defender.User{}}
	for i := range n {
		id := deviceID(i)
		s.machines[id] = defender.Machine{ID: id, ComputerDNSName: fmt.Sprintf("host-%d.contoso.local", i)}
		s.users[id] = []defender.User{{ID: fmt.Sprintf(`contoso\user%d`, i), AccountName: fmt.Sprintf("user%d", i)}}
	}
	return s
}

func deviceID(i int) string { return fmt.Sprintf("%040x", i+1) }

func (s *fakeSource) block(ctx context.Context) error {
	if s.gate == nil {
		return nil
	}
	select {
	case <-s.gate:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		s.cancelled++
		s.mu.Unlock()
		return ctx.Err()
	}
}

func (s *fakeSource) notFound(ref string) error {
	return &defender.ErrorResponse{StatusCode: http.StatusNotFound, Code: "ResourceNotFound", Message: "Machine " + ref + " was not found"}
}

func (s *fakeSource) GetMachine(ctx context.Context, ref string) (*defender.Machine, error) {
	s.mu.Lock()
	s.getCalls = append(s.getCalls, ref)
	s.mu.Unlock()
	if err := s.block(ctx); err != nil {
		return nil, err
	}
	if s.failWith != nil {
		return nil, s.failWith
	}
	for _, m := range s.machines {
		if m.ID == ref || m.ComputerDNSName == ref {
			return &m, nil
		}
	}
	return nil, s.notFound(ref)
}

func (s *fakeSource) GetMachines(ctx context.Context, ids []string) ([]defender.Machine, error) {
	s.mu.Lock()
	s.listCalls = append(s.listCalls, slices.Clone(ids))
	s.mu.Unlock()
	if err := s.block(ctx); err != nil {
		return nil, err
	}
	if s.failWith != nil {
		return nil, s.failWith
	}
	var out []defender.Machine
	for _, id := range ids {
		if m, ok := s.machines[id]; ok {
			out = append(out, m)
		}
	}
	return out, nil
}

func (s *fakeSource) LogonUsers(ctx context.Context, id string) ([]defender.User, error) {
	s.mu.Lock()
	s.userCalls = append(s.userCalls, id)
	s.mu.Unlock()
	if err := s.block(ctx); err != nil {
		return nil, err
	}
	if s.failWith != nil {
		return nil, s.failWith
	}
	u, ok := s.users[id]
	if !ok {
		return nil, s.notFound(id)
	}
	return u, nil
}

func (s *fakeSource) calls() (get, list, users int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.getCalls), len(s.listCalls), len(s.userCalls)
}

func appCtx() context.Context { return WithIdentity(context.Background(), "app:tenant/client") }

func TestFetcherMachinesBatching(t *testing.T) {
	t.Parallel()
	unknown := fmt.Sprintf("%040x", 999999)
	tests := []struct {
		name      string
		refs      []string
		wantGets  int
		wantLists []int // ids per list call
		wantErrs  []bool
	}{
		{"one id uses GET by id", []string{deviceID(0)}, 1, nil, []bool{false}},
		{"several ids share one list call", []string{deviceID(0), deviceID(1), deviceID(2)}, 0, []int{3}, []bool{false, false, false}},
		{"repeats are asked once", []string{deviceID(0), deviceID(1), deviceID(0)}, 0, []int{2}, []bool{false, false, false}},
		{"an id the list leaves out is not found", []string{deviceID(0), unknown}, 0, []int{2}, []bool{false, true}},
		{"names use GET each", []string{"host-1.contoso.local", "host-2.contoso.local"}, 2, nil, []bool{false, false}},
		{"ids and a name", []string{deviceID(0), "host-1.contoso.local", deviceID(2)}, 1, []int{2}, []bool{false, false, false}},
		{"60 ids make 3 list calls", ids(60), 0, []int{25, 25, 10}, make([]bool, 60)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := newFakeSource(100)
			f := NewFetcher(Options{Source: src, CacheTTL: time.Minute, NotFoundTTL: time.Second})
			got := f.Machines(appCtx(), tt.refs)
			if len(got) != len(tt.refs) {
				t.Fatalf("got %d results, want %d", len(got), len(tt.refs))
			}
			for i, r := range got {
				if (r.Err != nil) != tt.wantErrs[i] {
					t.Fatalf("result %d (%s): err = %v, want error %v", i, tt.refs[i], r.Err, tt.wantErrs[i])
				}
				if r.Err != nil {
					if !defender.IsNotFound(r.Err) {
						t.Errorf("result %d: err = %v, want a 404", i, r.Err)
					}
					continue
				}
				if r.Value.ID != tt.refs[i] && r.Value.ComputerDNSName != tt.refs[i] {
					t.Errorf("result %d: got machine %s, want %s (results must be in key order)", i, r.Value.ID, tt.refs[i])
				}
			}
			gets, _, _ := src.calls()
			if gets != tt.wantGets {
				t.Errorf("GET calls = %d, want %d", gets, tt.wantGets)
			}
			var lists []int
			for _, l := range src.listCalls {
				lists = append(lists, len(l))
			}
			slices.Sort(lists)
			want := slices.Clone(tt.wantLists)
			slices.Sort(want)
			if !slices.Equal(lists, want) {
				t.Errorf("list calls with %v ids, want %v", lists, want)
			}
		})
	}
}

func ids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = deviceID(i)
	}
	return out
}

func TestFetcherCache(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		src := newFakeSource(3)
		f := NewFetcher(Options{Source: src, CacheTTL: 60 * time.Second, NotFoundTTL: 10 * time.Second})
		ctx := appCtx()
		unknown := fmt.Sprintf("%040x", 999)
		ask := func() {
			f.LogonUsers(ctx, []string{deviceID(0), unknown})
		}
		ask() // 2 calls: one answer, one 404
		if _, _, n := src.calls(); n != 2 {
			t.Fatalf("after first ask: %d calls, want 2", n)
		}
		time.Sleep(9 * time.Second)
		ask() // both cached
		if _, _, n := src.calls(); n != 2 {
			t.Fatalf("at 9s: %d calls, want 2 (answer and 404 cached)", n)
		}
		time.Sleep(time.Second)
		ask() // 404 expired at 10s, answer still cached
		if _, _, n := src.calls(); n != 3 {
			t.Fatalf("at 10s: %d calls, want 3 (the 404 expired)", n)
		}
		time.Sleep(50 * time.Second)
		ask() // answer expired at 60s; the 404 was re-cached at 10s until 20s
		if _, _, n := src.calls(); n != 5 {
			t.Fatalf("at 60s: %d calls, want 5 (both expired)", n)
		}
	})
}

func TestFetcherNeverCachesFailures(t *testing.T) {
	t.Parallel()
	for _, err := range []error{
		&defender.ErrorResponse{StatusCode: 500, Code: "InternalServerError"},
		&defender.RateLimitError{ErrorResponse: defender.ErrorResponse{StatusCode: 429}, RetryAfter: time.Second},
		&defender.UnavailableError{Err: errors.New("connection refused")},
		context.DeadlineExceeded,
	} {
		t.Run(fmt.Sprintf("%T", err), func(t *testing.T) {
			t.Parallel()
			src := newFakeSource(3)
			src.failWith = err
			f := NewFetcher(Options{Source: src, CacheTTL: time.Minute, NotFoundTTL: time.Minute})
			for range 3 {
				r := f.LogonUsers(appCtx(), []string{deviceID(0)})[0]
				if !errors.Is(r.Err, err) && r.Err.Error() != err.Error() {
					t.Fatalf("err = %v, want %v", r.Err, err)
				}
				m := f.Machines(appCtx(), []string{deviceID(0)})[0]
				if m.Err == nil {
					t.Fatal("machine: got no error")
				}
			}
			gets, _, users := src.calls()
			if users != 3 || gets != 3 {
				t.Errorf("calls: %d logonusers, %d machine, want 3 each (failures are never cached)", users, gets)
			}
		})
	}
}

func TestFetcherCacheOff(t *testing.T) {
	t.Parallel()
	src := newFakeSource(3)
	f := NewFetcher(Options{Source: src, CacheTTL: 0, NotFoundTTL: 10 * time.Second})
	for range 3 {
		f.LogonUsers(appCtx(), []string{deviceID(0), fmt.Sprintf("%040x", 999)})
	}
	if _, _, n := src.calls(); n != 6 {
		t.Errorf("calls = %d, want 6 with CACHE_TTL=0 (404s are not cached either)", n)
	}
}

func TestFetcherKeysSeparateIdentities(t *testing.T) {
	t.Parallel()
	src := newFakeSource(3)
	f := NewFetcher(Options{Source: src, CacheTTL: time.Minute})
	alice := WithIdentity(context.Background(), "user:alice")
	bob := WithIdentity(context.Background(), "user:bob")
	f.LogonUsers(alice, []string{deviceID(0)})
	f.LogonUsers(alice, []string{deviceID(0)})
	f.LogonUsers(bob, []string{deviceID(0)})
	f.Machines(alice, []string{deviceID(0)})
	f.Machines(bob, []string{deviceID(0)})
	gets, _, users := src.calls()
	if users != 2 || gets != 2 {
		t.Errorf("calls: %d logonusers, %d machine, want 2 each: one per identity, never shared", users, gets)
	}
}

func TestFetcherSharesCallsInFlight(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		src := newFakeSource(3)
		src.gate = make(chan struct{})
		f := NewFetcher(Options{Source: src, CacheTTL: 0})
		const callers = 10
		results := make([]Result[[]defender.User], callers)
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() { results[i] = f.LogonUsers(appCtx(), []string{deviceID(1)})[0] })
		}
		synctest.Wait()
		close(src.gate)
		wg.Wait()
		if _, _, n := src.calls(); n != 1 {
			t.Errorf("calls = %d, want 1 shared by %d callers", n, callers)
		}
		for i, r := range results {
			if r.Err != nil || len(r.Value) != 1 {
				t.Errorf("caller %d: got %v, %v", i, r.Value, r.Err)
			}
		}
	})
}

func TestFetcherCancelledCallerDoesNotFailOthers(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		src := newFakeSource(3)
		src.gate = make(chan struct{})
		f := NewFetcher(Options{Source: src, CacheTTL: 0})

		first, cancelFirst := context.WithCancel(appCtx())
		var firstRes, secondRes Result[*defender.Machine]
		var wg sync.WaitGroup
		wg.Go(func() { firstRes = f.Machines(first, []string{deviceID(0), deviceID(1)})[0] })
		synctest.Wait() // the first caller started the shared list call
		wg.Go(func() { secondRes = f.Machines(appCtx(), []string{deviceID(0), deviceID(1)})[1] })
		synctest.Wait() // the second caller joined it

		cancelFirst()
		synctest.Wait()
		if !errors.Is(firstRes.Err, context.Canceled) {
			t.Errorf("first caller: err = %v, want context.Canceled", firstRes.Err)
		}
		close(src.gate)
		wg.Wait()
		if secondRes.Err != nil || secondRes.Value.ID != deviceID(1) {
			t.Errorf("second caller: got %v, %v; want machine %s", secondRes.Value, secondRes.Err, deviceID(1))
		}
		if _, lists, _ := src.calls(); lists != 1 {
			t.Errorf("list calls = %d, want 1", lists)
		}
		if src.cancelled != 0 {
			t.Errorf("upstream call was cancelled although a caller still waited")
		}
	})
}

func TestFetcherWaiterHonoursOwnDeadline(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		src := newFakeSource(3)
		src.gate = make(chan struct{})
		f := NewFetcher(Options{Source: src, CacheTTL: time.Minute})

		var patient Result[[]defender.User]
		var wg sync.WaitGroup
		wg.Go(func() { patient = f.LogonUsers(appCtx(), []string{deviceID(0)})[0] })
		synctest.Wait()
		hasty, cancel := context.WithTimeout(appCtx(), 2*time.Second)
		defer cancel()
		start := time.Now()
		r := f.LogonUsers(hasty, []string{deviceID(0)})[0]
		if !errors.Is(r.Err, context.DeadlineExceeded) {
			t.Errorf("hasty caller: err = %v, want DeadlineExceeded", r.Err)
		}
		if waited := time.Since(start); waited != 2*time.Second {
			t.Errorf("hasty caller waited %v, want exactly its 2s deadline", waited)
		}
		close(src.gate)
		wg.Wait()
		if patient.Err != nil {
			t.Errorf("patient caller: %v", patient.Err)
		}
	})
}

func TestFetcherLastWaiterLeavingCancelsCall(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		src := newFakeSource(3)
		src.gate = make(chan struct{})
		f := NewFetcher(Options{Source: src, CacheTTL: time.Minute})
		ctx1, cancel1 := context.WithCancel(appCtx())
		ctx2, cancel2 := context.WithCancel(appCtx())
		var wg sync.WaitGroup
		wg.Go(func() { f.LogonUsers(ctx1, []string{deviceID(0)}) })
		synctest.Wait()
		wg.Go(func() { f.LogonUsers(ctx2, []string{deviceID(0)}) })
		synctest.Wait()
		cancel1()
		synctest.Wait()
		if src.cancelled != 0 {
			t.Fatal("call cancelled while a waiter remained")
		}
		cancel2()
		wg.Wait()
		synctest.Wait()
		if src.cancelled != 1 {
			t.Fatalf("upstream call cancelled %d times, want 1 once nobody waits", src.cancelled)
		}
		// A later caller starts afresh rather than inheriting the cancelled call.
		close(src.gate)
		r := f.LogonUsers(appCtx(), []string{deviceID(0)})[0]
		if r.Err != nil {
			t.Fatalf("later caller: %v", r.Err)
		}
		if _, _, n := src.calls(); n != 2 {
			t.Errorf("calls = %d, want 2", n)
		}
	})
}

func TestFetcherSharedCallTimeout(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		src := newFakeSource(3)
		src.gate = make(chan struct{}) // never opened: the upstream hangs
		f := NewFetcher(Options{Source: src, CallTimeout: 5 * time.Second})
		start := time.Now()
		r := f.LogonUsers(appCtx(), []string{deviceID(0)})[0]
		if !errors.Is(r.Err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want DeadlineExceeded from the shared call's own timeout", r.Err)
		}
		if d := time.Since(start); d != 5*time.Second {
			t.Errorf("took %v, want the 5s call timeout", d)
		}
	})
}

// countingSharing wraps a Flight and counts the keys joined and started through it.
type countingSharing[V any] struct {
	*Flight[V]
	mu      sync.Mutex
	joined  int
	started int
}

func (c *countingSharing[V]) Join(keys []string) (Shared[V], []string) {
	s, missing := c.Flight.Join(keys)
	c.mu.Lock()
	c.joined += len(keys) - len(missing)
	c.mu.Unlock()
	return countingShared[V]{s, c}, missing
}

type countingShared[V any] struct {
	Shared[V]
	c *countingSharing[V]
}

func (s countingShared[V]) Start(ctx context.Context, keys []string, fn func(ctx context.Context) (map[string]Result[V], error)) {
	s.c.mu.Lock()
	s.c.started += len(keys)
	s.c.mu.Unlock()
	s.Shared.Start(ctx, keys, fn)
}

// TestFetcherUsesGivenSharing checks that the in-flight sharing is pluggable (as a Sharing
// shared by replicas will be): every call the Fetcher makes, and every call it joins, goes
// through the Sharing in Options.
func TestFetcherUsesGivenSharing(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		src := newFakeSource(3)
		src.gate = make(chan struct{})
		users := &countingSharing[[]defender.User]{Flight: NewFlight[[]defender.User](time.Minute)}
		machines := &countingSharing[*defender.Machine]{Flight: NewFlight[*defender.Machine](time.Minute)}
		f := NewFetcher(Options{Source: src, LogonUserCalls: users, MachineCalls: machines})
		ctx := appCtx()

		var wg sync.WaitGroup
		wg.Go(func() { f.LogonUsers(ctx, []string{deviceID(0), deviceID(1)}) })
		wg.Go(func() { f.Machines(ctx, []string{deviceID(0), deviceID(1), deviceID(2)}) })
		synctest.Wait() // both blocked in the upstream
		wg.Go(func() { f.LogonUsers(ctx, []string{deviceID(1)}) })
		synctest.Wait() // the third caller waits on the first one's call
		close(src.gate)
		wg.Wait()

		if users.joined != 1 || users.started != 2 || machines.started != 3 {
			t.Errorf("logonusers keys joined %d, started %d; machine keys started %d; want 1, 2, 3",
				users.joined, users.started, machines.started)
		}
		if _, list, n := src.calls(); list != 1 || n != 2 {
			t.Errorf("upstream calls: %d list, %d logonusers; want 1 and 2 (the third caller joined)", list, n)
		}
	})
}

// TestFlightReservesMissingKeys checks that a key is reserved by the Join that finds nobody
// fetching it: a second caller joining before the first has started its call waits for that
// call instead of making its own.
func TestFlightReservesMissingKeys(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		fl := NewFlight[int](time.Minute)
		ctx := context.Background()
		first, missing := fl.Join([]string{"a", "b"})
		if !slices.Equal(missing, []string{"a", "b"}) {
			t.Fatalf("first Join: missing %v, want [a b]", missing)
		}
		second, missing := fl.Join([]string{"b", "c"})
		if !slices.Equal(missing, []string{"c"}) {
			t.Fatalf("second Join, before the first started: missing %v, want [c]", missing)
		}
		var calls atomic.Int32
		first.Start(ctx, []string{"a", "b"}, func(context.Context) (map[string]Result[int], error) {
			calls.Add(1)
			return map[string]Result[int]{"a": {Value: 1}, "b": {Value: 2}}, nil
		})
		second.Start(ctx, []string{"c"}, func(context.Context) (map[string]Result[int], error) {
			calls.Add(1)
			return nil, errors.New("c failed")
		})
		got := second.Wait(ctx)
		if got["b"].Value != 2 || got["c"].Err == nil || got["c"].Err.Error() != "c failed" {
			t.Errorf("second caller: %v", got)
		}
		if got := first.Wait(ctx); got["a"].Value != 1 || got["b"].Value != 2 {
			t.Errorf("first caller: %v", got)
		}
		if n := calls.Load(); n != 2 {
			t.Errorf("calls = %d, want 2 (b fetched once)", n)
		}
		// A key reserved and never started is settled rather than left hanging.
		third, missing := fl.Join([]string{"d"})
		if len(missing) != 1 {
			t.Fatalf("third Join: missing %v, want [d]", missing)
		}
		if got := third.Wait(ctx); !errors.Is(got["d"].Err, errNoResult) {
			t.Errorf("unstarted key: %v, want errNoResult", got["d"])
		}
		// Settled keys are forgotten: the next caller fetches afresh.
		if _, missing := fl.Join([]string{"a", "d"}); len(missing) != 2 {
			t.Errorf("after settling: missing %v, want [a d]", missing)
		}
	})
}
