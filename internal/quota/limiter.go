// Package quota keeps the service within the Microsoft Defender for Endpoint
// API's call limits (per endpoint family: 100 calls a minute and 1500 an hour).
//
// The limits are enforced as sliding windows over a log of grant times, not as
// token buckets: a bucket holding 100 tokens that refills 100 a minute lets
// about 200 calls through in one sliding minute (a full bucket, then its
// refill), which the upstream answers with 429 and a Retry-After that stalls
// every caller. With a log, a grant at t is allowed only if for every window
// the Limit-th most recent grant e satisfies e+Per <= t, so no interval
// (t-Per, t] ever holds more than Limit grants, and none is refused that would fit.
//
// Waiters are served first come first served: under sustained load a
// latecomer that happens to wake at the right moment must not starve a
// GraphQL request that has been queued longer, and FIFO is what makes a
// waiter's grant time predictable, so that Wait can refuse at once, with an
// ExceededError saying when to retry, a wait it knows will outlast the
// caller's deadline.
package quota

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Window is one sliding-window limit: at most Limit grants in any interval
// (t-Per, t]. A grant made at e stops counting at exactly e+Per.
type Window struct {
	Limit int
	Per   time.Duration
}

// Limiter enforces several sliding windows at once for one endpoint family and
// queues waiters first come first served.
// A Limiter is safe for concurrent use by multiple goroutines.
// Create one with NewLimiter; the zero Limiter is not usable.
//
// Methods ending in At take the time explicitly, as golang.org/x/time/rate's
// do, so table tests need no clock; grant times never go backwards, so a time
// before the latest grant is taken as that grant's time.
type Limiter struct {
	windows []Window

	mu          sync.Mutex
	log         grantLog  // latest grant times, as many as the largest Limit
	queue       []*waiter // FIFO; projections never decrease along it
	pausedUntil time.Time
	timer       *time.Timer // armed for queue[0].at while the queue is not empty

	onGrant func(time.Time) // tests only: sees every grant time, under mu
}

// waiter is one Wait call in the queue.
type waiter struct {
	at       time.Time     // projected grant time
	maxAt    time.Time     // now+maxWait when Wait was called
	deadline time.Time     // ctx's deadline, zero if none
	ready    chan struct{} // closed under mu when the waiter leaves the queue with err
	err      error         // nil: granted; *ExceededError: pushed out by a pause
	granted  time.Time     // when granted (err nil), set before ready is closed
}

// tooLate reports whether a grant at at comes later than a waiter with maxAt
// and deadline (zero if none) would wait. A grant exactly at the deadline is
// too late: ctx is done by then.
func tooLate(at, maxAt, deadline time.Time) bool {
	return at.After(maxAt) || (!deadline.IsZero() && !at.Before(deadline))
}

// NewLimiter returns a Limiter enforcing all of windows. It panics if windows
// is empty or a window has a Limit or Per that is not positive: limits are
// constants of the upstream API, so a bad one is a programming error.
func NewLimiter(windows ...Window) *Limiter {
	return &Limiter{
		windows: slices.Clone(windows),
		log:     grantLog{times: make([]time.Time, largestLimit(windows))},
	}
}

// largestLimit returns the largest Limit of windows, which sizes the grant
// log, after checking them as NewLimiter documents.
func largestLimit(windows []Window) int {
	if len(windows) == 0 {
		panic("quota: no windows")
	}
	size := 0
	for i, w := range windows {
		if w.Limit <= 0 || w.Per <= 0 {
			panic(fmt.Sprintf("quota: window %d is {Limit: %d, Per: %v}; both must be positive", i, w.Limit, w.Per))
		}
		size = max(size, w.Limit)
	}
	return size
}

// Wait blocks until the Limiter grants a slot, or returns without one.
//
// A slot free now goes at once to a caller with no one queued ahead; otherwise
// the caller queues behind earlier callers. If its projected grant time (given
// the windows, the waiters ahead and any pause) is later than now+maxWait, or
// not before ctx's deadline, Wait returns a *ExceededError at once without
// queueing; it does the same later if a Pause pushes the grant that far. If
// ctx is done while queued, Wait leaves the queue, letting the waiters behind
// move up, and returns ctx.Err(). A nil error means the slot has been
// consumed, even if ctx was done at the same moment. A negative maxWait is 0;
// a grant can come later than maxWait only by the lateness of a timer.
func (l *Limiter) Wait(ctx context.Context, maxWait time.Duration) error {
	_, err := l.Take(ctx, maxWait)
	return err
}

// Take is Wait, and also returns the time of the grant: the caller can give the slot back
// with Refund if its call never reached the upstream.
func (l *Limiter) Take(ctx context.Context, maxWait time.Duration) (time.Time, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, err
	}
	l.mu.Lock()
	now := time.Now()
	if len(l.queue) == 0 && !l.earliest(0, now).After(now) {
		l.grant(now)
		l.mu.Unlock()
		return now, nil
	}
	at, maxAt := l.earliest(len(l.queue), now), now.Add(max(maxWait, 0))
	deadline, _ := ctx.Deadline()
	if tooLate(at, maxAt, deadline) {
		l.mu.Unlock()
		return time.Time{}, &ExceededError{RetryAfter: at.Sub(now)}
	}
	w := &waiter{at: at, maxAt: maxAt, deadline: deadline, ready: make(chan struct{})}
	l.queue = append(l.queue, w)
	if len(l.queue) == 1 {
		l.arm(now)
	}
	l.mu.Unlock()

	select {
	case <-w.ready:
		return w.granted, w.err
	case <-ctx.Done():
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-w.ready:
		return w.granted, w.err // it left the queue before we got the lock: a granted slot is ours
	default:
	}
	i := slices.Index(l.queue, w)
	l.queue = slices.Delete(l.queue, i, i+1)
	now = time.Now()
	l.reproject(i, now, false)
	l.settle(now)
	return time.Time{}, ctx.Err()
}

// Allow reports whether a slot is free now with no one queued, and if so
// consumes it.
func (l *Limiter) Allow() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.allow(time.Now())
}

// AllowAt is Allow at time t.
func (l *Limiter) AllowAt(t time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.allow(t)
}

func (l *Limiter) allow(t time.Time) bool {
	t = latest(t, l.log.back(1))
	if len(l.queue) > 0 || l.earliest(0, t).After(t) {
		return false
	}
	l.grant(t)
	return true
}

// NextAt returns the time at which a Wait called at t would be granted: t
// itself if a slot is free, later if the windows are full, the Limiter is
// paused or others are queued.
func (l *Limiter) NextAt(t time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.earliest(len(l.queue), latest(t, l.log.back(1)))
}

// Refund gives back the slot granted at at (a time Take returned) by a call that never reached
// the upstream, for instance because the connection was refused: the upstream did not count
// it, so neither does the Limiter any longer. Waiters in line move up and may be granted at
// once. A grant that has already left the log, or a zero at, is ignored.
func (l *Limiter) Refund(at time.Time) {
	if at.IsZero() {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.log.remove(at) || len(l.queue) == 0 {
		return
	}
	now := time.Now()
	l.reproject(0, now, false)
	l.settle(now)
}

// Pause stops all grants before until, as after an upstream 429 with
// Retry-After. Queued waiters are pushed back, keeping their order; those
// pushed past their maxWait or deadline leave at once with a *ExceededError.
// Pauses only extend: an until earlier than the current pause's end is ignored.
func (l *Limiter) Pause(until time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !until.After(l.pausedUntil) {
		return
	}
	l.pausedUntil = until
	if len(l.queue) > 0 {
		now := time.Now()
		l.reproject(0, now, true)
		l.settle(now)
	}
}

// Status is a Limiter's state at one moment, for the GraphQL quota field and
// the Prometheus gauges.
type Status struct {
	Windows     []WindowStatus // in the order given to NewLimiter
	NextSlot    time.Time      // when a Wait called now would be granted; now itself if a slot is free
	PausedUntil time.Time      // end of the current pause; zero if not paused
	Queued      int            // waiters in line
}

// WindowStatus is the use of one Window at one moment.
type WindowStatus struct {
	Window
	Used      int // grants in (now-Per, now]
	Remaining int // Limit - Used; queued waiters are not subtracted
}

// Status returns the Limiter's state now.
func (l *Limiter) Status() Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.status(time.Now())
}

// StatusAt returns the Limiter's state at t.
func (l *Limiter) StatusAt(t time.Time) Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.status(t)
}

func (l *Limiter) status(t time.Time) Status {
	t = latest(t, l.log.back(1))
	s := Status{
		Windows:  make([]WindowStatus, len(l.windows)),
		NextSlot: l.earliest(len(l.queue), t),
		Queued:   len(l.queue),
	}
	if l.pausedUntil.After(t) {
		s.PausedUntil = l.pausedUntil
	}
	for i, w := range l.windows {
		used := 0
		for e := l.log.back(used + 1); !e.IsZero() && e.Add(w.Per).After(t); e = l.log.back(used + 1) {
			used++
		}
		s.Windows[i] = WindowStatus{Window: w, Used: used, Remaining: max(w.Limit-used, 0)}
	}
	return s
}

// earliest returns the earliest time at or after t at which a grant is
// allowed, counting the first ahead queued waiters as granted at their
// projected times.
func (l *Limiter) earliest(ahead int, t time.Time) time.Time {
	back := func(k int) time.Time { // k-th most recent grant, 1-based
		if k <= ahead {
			return l.queue[ahead-k].at
		}
		return l.log.back(k - ahead)
	}
	t = latest(t, l.pausedUntil, back(1))
	for _, w := range l.windows {
		if e := back(w.Limit); !e.IsZero() {
			t = latest(t, e.Add(w.Per))
		}
	}
	return t
}

// grant records a grant at t, which must not be before the latest one.
func (l *Limiter) grant(t time.Time) {
	l.log.add(t)
	if l.onGrant != nil {
		l.onGrant(t)
	}
}

// reproject recomputes the projected times of queue[from:], after the waiters
// ahead of them or the pause changed. With evict, waiters projected later than
// they would wait leave the queue with an ExceededError; only a pause needs
// that, since a cancellation or a late timer moves projections earlier or by
// no more than the timer's lateness.
func (l *Limiter) reproject(from int, now time.Time, evict bool) {
	for i := from; i < len(l.queue); {
		w := l.queue[i]
		w.at = l.earliest(i, now)
		if evict && tooLate(w.at, w.maxAt, w.deadline) {
			w.err = &ExceededError{RetryAfter: w.at.Sub(now)}
			close(w.ready)
			l.queue = slices.Delete(l.queue, i, i+1)
			continue
		}
		i++
	}
}

// settle grants, in order, every queued waiter allowed at now, then arms the
// timer for the next one.
func (l *Limiter) settle(now time.Time) {
	late := false
	for len(l.queue) > 0 && !l.earliest(0, now).After(now) {
		w := l.queue[0]
		l.queue[0] = nil
		l.queue = l.queue[1:]
		late = late || !w.at.Equal(now)
		l.grant(now)
		w.granted = now
		close(w.ready)
	}
	if len(l.queue) == 0 {
		if l.timer != nil {
			l.timer.Stop()
			l.timer = nil
		}
		return
	}
	// A timer that fired late granted later than projected, so the projections
	// behind, which counted those grants at their projected times, are early.
	if late || !l.queue[0].at.After(now) {
		l.reproject(0, now, false)
	}
	l.arm(now)
}

// arm (re)starts the timer for the head of the queue. A timer stopped too late
// to prevent its callback is harmless: settle only grants what is due.
func (l *Limiter) arm(now time.Time) {
	if l.timer != nil {
		l.timer.Stop()
	}
	l.timer = time.AfterFunc(l.queue[0].at.Sub(now), func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.settle(time.Now())
	})
}

// latest returns the latest of ts.
func latest(t time.Time, ts ...time.Time) time.Time {
	for _, u := range ts {
		if u.After(t) {
			t = u
		}
	}
	return t
}

// grantLog is a ring buffer of the latest grant times.
type grantLog struct {
	times   []time.Time
	n       int  // entries in use
	next    int  // index of the next write
	dropped bool // an entry was overwritten: grants older than the oldest logged one exist
}

func (g *grantLog) add(t time.Time) {
	g.dropped = g.dropped || g.n == len(g.times)
	g.times[g.next] = t
	g.next = (g.next + 1) % len(g.times)
	g.n = min(g.n+1, len(g.times))
}

// back returns the k-th most recent grant (k >= 1), or the zero Time if fewer
// than k are logged.
func (g *grantLog) back(k int) time.Time {
	if k > g.n {
		return time.Time{}
	}
	i := g.next - k
	if i < 0 {
		i += len(g.times)
	}
	return g.times[i]
}

// remove deletes the most recent grant at or before at, and reports whether there was one.
// Removing that one rather than an earlier one keeps the log from ever showing a grant earlier
// than it was. If the log has dropped older grants, the oldest logged time takes the freed
// place: the grant it stands for was no later, so the windows stay at least as strict.
func (g *grantLog) remove(at time.Time) bool {
	k := 1
	for k <= g.n && g.back(k).After(at) {
		k++
	}
	if k > g.n {
		return false
	}
	times := make([]time.Time, 0, g.n) // oldest first, without the k-th most recent
	for i := g.n; i >= 1; i-- {
		if i != k {
			times = append(times, g.back(i))
		}
	}
	if g.dropped && len(times) > 0 {
		times = append([]time.Time{times[0]}, times...)
	}
	dropped := g.dropped
	clear(g.times)
	g.n, g.next = 0, 0
	for _, t := range times {
		g.add(t)
	}
	g.dropped = dropped
	return true
}
