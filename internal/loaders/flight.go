package loaders

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Sharing lets concurrent callers share the upstream calls in progress, key by key, so that
// an identical call is not made twice at the same moment. The Fetcher uses one per kind of
// answer; Flight is the in-process implementation, and one shared by several replicas can
// take its place through Options.
type Sharing[V any] interface {
	// Join makes the caller a waiter on the calls in progress for keys. Keys with no call in
	// progress are reserved for the caller and returned in missing: callers who join them
	// meanwhile wait for the call the caller makes with the Shared's Start.
	Join(keys []string) (s Shared[V], missing []string)
}

// Shared is one caller's part in calls in progress: those it joined and those it started.
type Shared[V any] interface {
	// Start runs fn as the call in progress for keys (some of missing), on a context that
	// keeps ctx's values but not its cancellation, so that the callers who join it do not
	// depend on this one. fn returns a result per key it could settle; keys it leaves out get
	// its error.
	Start(ctx context.Context, keys []string, fn func(ctx context.Context) (map[string]Result[V], error))
	// Wait returns a result for every key joined or started. When ctx ends first, the keys
	// not yet answered get ctx's error and the caller leaves their calls; a call left by all
	// its waiters is cancelled.
	Wait(ctx context.Context) map[string]Result[V]
}

var _ Sharing[int] = (*Flight[int])(nil)

// Flight is the in-process Sharing: it shares upstream calls in progress between concurrent
// callers of one process, key by key. One upstream call may answer several keys (a list call
// answers many machine ids), and a caller waiting for several keys may be served by several
// calls.
//
// Join reserves the keys nobody is fetching under the same lock that looks them up, so two
// callers arriving together never both fetch a key: the second one waits for the first one's
// call, even before that call has started.
//
// A call runs on its own context, detached from the caller that started it and bounded by
// timeout, so that one caller's cancellation never fails the others. Each waiter honours its
// own context. When no waiter is left for any key a call answers, the call is cancelled and
// its keys forgotten, so that a later caller starts afresh rather than inheriting a cancelled
// call.
type Flight[V any] struct {
	timeout time.Duration

	mu      sync.Mutex
	pending map[string]*pendingKey[V]
}

// pendingKey is one key being fetched: reserved by a caller's Join, answered by the run that
// caller starts for it. Fields other than done and result are guarded by Flight.mu.
type pendingKey[V any] struct {
	key     string
	done    chan struct{}
	result  Result[V] // written once before done is closed
	waiters int
	owner   *flightShare[V] // the caller that reserved the key and must start it
	run     *run            // nil until started
}

// run is one upstream call in progress, answering one or more keys.
type run struct {
	cancel context.CancelFunc
	live   int // keys of the run that still have waiters and no answer
}

// errNoResult settles a key that nobody fetched or that a call's function forgot; it would be
// a bug in this package.
var errNoResult = errors.New("loaders: upstream call returned no result for this key")

// NewFlight returns a Flight whose calls each run for at most timeout.
func NewFlight[V any](timeout time.Duration) *Flight[V] {
	return &Flight[V]{timeout: timeout, pending: make(map[string]*pendingKey[V])}
}

// Join implements Sharing: it waits on the keys being fetched and reserves the others for the
// caller, who must Start them.
func (f *Flight[V]) Join(keys []string) (Shared[V], []string) {
	s := &flightShare[V]{f: f, keys: make(map[string]*pendingKey[V], len(keys))}
	var missing []string
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range keys {
		if _, dup := s.keys[k]; dup {
			continue
		}
		p, ok := f.pending[k]
		if ok {
			if p.waiters == 0 && p.run != nil {
				p.run.live++
			}
			p.waiters++
		} else {
			p = &pendingKey[V]{key: k, done: make(chan struct{}), waiters: 1, owner: s}
			f.pending[k] = p
			s.owned = append(s.owned, p)
			missing = append(missing, k)
		}
		s.keys[k] = p
	}
	return s, missing
}

// flightShare is a caller's Shared in a Flight: the pending key for each of its keys, and the
// ones it reserved and must start.
type flightShare[V any] struct {
	f     *Flight[V]
	keys  map[string]*pendingKey[V]
	owned []*pendingKey[V]
}

// Start runs fn for keys, which must be among those Join reserved for this caller.
func (s *flightShare[V]) Start(ctx context.Context, keys []string, fn func(ctx context.Context) (map[string]Result[V], error)) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.f.timeout)
	r := &run{cancel: cancel}
	ps := make([]*pendingKey[V], 0, len(keys))
	s.f.mu.Lock()
	for _, k := range keys {
		p := s.keys[k]
		if p == nil || p.run != nil || p.owner != s {
			continue // not reserved by this caller, or started already
		}
		p.run = r
		if p.waiters > 0 {
			r.live++
		}
		ps = append(ps, p)
	}
	s.f.mu.Unlock()
	go func() {
		defer cancel()
		results, err := fn(cctx)
		if err == nil {
			err = errNoResult
		}
		s.f.mu.Lock()
		defer s.f.mu.Unlock()
		for _, p := range ps {
			res, ok := results[p.key]
			if !ok {
				res = Result[V]{Err: err}
			}
			s.f.settle(p, res)
		}
	}()
}

// Wait returns a result for each of the caller's keys. Keys the caller reserved but never
// started are settled with errNoResult, so that nobody waits for them forever.
func (s *flightShare[V]) Wait(ctx context.Context) map[string]Result[V] {
	s.f.mu.Lock()
	for _, p := range s.owned {
		if p.run == nil {
			s.f.settle(p, Result[V]{Err: errNoResult})
		}
	}
	s.f.mu.Unlock()

	out := make(map[string]Result[V], len(s.keys))
	for k, p := range s.keys {
		select {
		case <-p.done:
			out[k] = p.result
			continue
		case <-ctx.Done():
		}
		// Leave every key not answered yet, each once.
		for k2, p2 := range s.keys {
			if _, ok := out[k2]; ok {
				continue
			}
			select {
			case <-p2.done:
				out[k2] = p2.result
			default:
				s.f.leave(p2)
				out[k2] = Result[V]{Err: ctx.Err()}
			}
		}
		return out
	}
	return out
}

// settle answers p and forgets it, unless it was answered already; f.mu must be held.
func (f *Flight[V]) settle(p *pendingKey[V], res Result[V]) {
	select {
	case <-p.done:
		return
	default:
	}
	f.forget(p)
	p.result = res
	close(p.done)
}

// leave unregisters one waiter of p. When a run has no waiter left on any of its keys, it is
// cancelled and its keys forgotten.
func (f *Flight[V]) leave(p *pendingKey[V]) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p.waiters--
	if p.waiters > 0 || p.run == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	p.run.live--
	if p.run.live > 0 {
		return
	}
	p.run.cancel()
	for k, q := range f.pending {
		if q.run == p.run {
			delete(f.pending, k)
		}
	}
}

// forget removes p from the keys in progress; f.mu must be held.
func (f *Flight[V]) forget(p *pendingKey[V]) {
	if f.pending[p.key] == p {
		delete(f.pending, p.key)
	}
}
