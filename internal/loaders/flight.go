package loaders

import (
	"context"
	"errors"
	"sync"
	"time"
)

// flight shares upstream calls in progress between concurrent callers, key by key. One call
// may cover several keys (a list call answers many machine ids), and a caller waiting for
// several keys may be served by several calls.
//
// A call runs on its own context, detached from the caller that started it and bounded by
// timeout, so that one caller's cancellation never fails the others. Each waiter honours its
// own context. When the last waiter of a call gives up, the call is cancelled and forgotten,
// so that a later caller starts afresh rather than inheriting a cancelled call.
type flight[V any] struct {
	timeout time.Duration

	mu    sync.Mutex
	calls map[string]*call[V]
}

type call[V any] struct {
	keys    []string
	done    chan struct{}
	results map[string]Result[V] // written once before done is closed
	err     error                // for keys missing from results
	waiters int                  // guarded by flight.mu
	cancel  context.CancelFunc
}

// errNoResult settles a key that a call's function forgot; it would be a bug in this package.
var errNoResult = errors.New("loaders: upstream call returned no result for this key")

func newFlight[V any](timeout time.Duration) *flight[V] {
	return &flight[V]{timeout: timeout, calls: make(map[string]*call[V])}
}

// join registers the caller as a waiter on every call in progress for keys and returns them by
// key; keys with no call in progress are returned in missing.
func (f *flight[V]) join(keys []string) (joined map[string]*call[V], missing []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range keys {
		c, ok := f.calls[k]
		if !ok {
			missing = append(missing, k)
			continue
		}
		if joined == nil {
			joined = make(map[string]*call[V])
		}
		if _, seen := joined[k]; !seen {
			joined[k] = c
		}
	}
	seen := make(map[*call[V]]bool, len(joined))
	for _, c := range joined {
		if !seen[c] {
			seen[c] = true
			c.waiters++
		}
	}
	return joined, missing
}

// start runs fn for keys on a detached context and registers it as the call in progress for
// each key; the caller is its first waiter. fn returns a result per key it could settle; keys
// it leaves out get err.
func (f *flight[V]) start(ctx context.Context, keys []string, fn func(ctx context.Context) (map[string]Result[V], error)) *call[V] {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.timeout)
	c := &call[V]{keys: keys, done: make(chan struct{}), cancel: cancel, waiters: 1}
	f.mu.Lock()
	for _, k := range keys {
		f.calls[k] = c
	}
	f.mu.Unlock()
	go func() {
		defer cancel()
		results, err := fn(cctx)
		if err == nil {
			err = errNoResult
		}
		f.mu.Lock()
		f.forget(c)
		c.results, c.err = results, err
		f.mu.Unlock()
		close(c.done)
	}()
	return c
}

// wait returns the call's result for key, or ctx's error if ctx ends first. A waiter that gives
// up must not wait on the same call again.
func (f *flight[V]) wait(ctx context.Context, c *call[V], key string) Result[V] {
	select {
	case <-c.done:
		return c.result(key)
	case <-ctx.Done():
	}
	f.leave(c)
	return Result[V]{Err: ctx.Err()}
}

// waitAll waits for every call in calls (by key) and returns the results by key. If ctx ends
// first, the caller leaves every call it has not finished waiting for.
func (f *flight[V]) waitAll(ctx context.Context, calls map[string]*call[V]) map[string]Result[V] {
	out := make(map[string]Result[V], len(calls))
	waited := make(map[*call[V]]bool)
	for k, c := range calls {
		if waited[c] {
			out[k] = c.result(k)
			continue
		}
		select {
		case <-c.done:
			waited[c] = true
			out[k] = c.result(k)
			continue
		case <-ctx.Done():
		}
		// Leave every distinct call not yet waited for, exactly once.
		for _, c2 := range calls {
			if !waited[c2] {
				waited[c2] = true
				f.leave(c2)
			}
		}
		for k2 := range calls {
			if _, ok := out[k2]; !ok {
				out[k2] = Result[V]{Err: ctx.Err()}
			}
		}
		return out
	}
	return out
}

// leave unregisters one waiter; the last one out cancels the call and forgets it.
func (f *flight[V]) leave(c *call[V]) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c.waiters--
	if c.waiters > 0 {
		return
	}
	select {
	case <-c.done:
		return
	default:
	}
	f.forget(c)
	c.cancel()
}

// forget removes c from the calls in progress; f.mu must be held.
func (f *flight[V]) forget(c *call[V]) {
	for _, k := range c.keys {
		if f.calls[k] == c {
			delete(f.calls, k)
		}
	}
}

func (c *call[V]) result(key string) Result[V] {
	if r, ok := c.results[key]; ok {
		return r
	}
	return Result[V]{Err: c.err}
}
