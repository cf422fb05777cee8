// Package quota keeps the service within the Microsoft Defender for Endpoint
// API's call limits (per endpoint family: 100 calls a minute and 1500 an hour),
// and shares them fairly between the service's callers.
//
// The limits are enforced as sliding windows over a log of grant times, not as
// token buckets: a bucket holding 100 tokens that refills 100 a minute lets
// about 200 calls through in one sliding minute (a full bucket, then its
// refill), which the upstream answers with 429 and a Retry-After that stalls
// every caller. With a log, a grant at t is allowed only if for every window
// the Limit-th most recent grant e satisfies e+Per <= t, so no interval
// (t-Per, t] ever holds more than Limit grants, and none is refused that would fit.
// That guarantee holds whatever the order in which waiters are served.
//
// # Fair share
//
// When more calls wait than the windows allow, waiters are served in turn
// between callers, not first come first served: one caller flooding the queue
// with hundreds of calls must not push another caller's call past its maximum
// wait. The caller of a call is the principal in its context
// (principal.FromContext: a person, an API key's name, or a client address;
// calls without one are all the caller "anonymous"). Within one caller, calls
// are served first come first served. A call that finds a slot free and no one
// queued is granted at once, whoever makes it.
//
// The order is start-time fair queuing with unit cost, counted in rounds. The
// Limiter keeps a round number V, the round of the latest waiter granted from
// the queue, and for each caller c a round next(c), one past the round of c's
// latest waiter. A call of c that must queue takes round r = max(V, next(c))
// and a sequence number, and next(c) becomes r+1; the queue is ordered by
// (round, sequence number). So a caller has at most one waiter in each round,
// rounds are served in order, and a caller with nothing in line joins the
// round being served (the next one if it was already served in it) behind the
// waiters already in that round.
//
// As when the order was first come first served, each waiter has a projected
// grant time, computed along the order: the earliest time the windows and any
// pause allow, counting the waiters ahead as granted at their projected times.
// Take refuses at once, with an ExceededError saying when to retry, a call
// whose projected grant is later than its maxWait or not before its context's
// deadline. A waiter placed ahead of a flooder's later waiters moves them back
// one place each; those pushed past their own maxWait or deadline leave at
// once with an ExceededError, as after a Pause, so that no waiter waits longer
// than it was promised. When a waiter leaves unserved (cancelled, or pushed
// out by a newcomer or a pause), each later waiter of its caller moves up into the
// place of the one before it, taking its round and sequence number, and the
// caller gives up its last place: no other caller's waiter moves back, and a
// caller whose waiters were pushed out keeps no debt for them.
//
// What this guarantees: with n callers in line, a call of a caller with nothing
// else in line has at most 2(n-1) waiters ahead of it (one of each other caller
// in the round being served and one in the next), however many calls the
// others queued. A caller asking within an equal share of the windows (at most
// 1/n of each Limit per Per) thus waits for a few grants, not behind a flood,
// and is refused only if even those few do not fit in its maxWait.
//
// # A limiter shared by several replicas
//
// The discipline needs no process-local state beyond the numbers above, so a shared store
// keeps it as reservations: package redisstore does, in Redis, with one Lua script per family
// holding the grant log, V, the sequence counter, next(c) per caller and the waiters with their
// projected times, maxWait and deadline. A call is granted at once, refused with its wait, or
// given a reservation, its place and projected time; its holder sleeps until then and confirms,
// and the script grants it if the windows allow it at that moment (Redis's clock), counting
// the waiters ahead as granted at their times. Leaving is one more script, which shifts the
// caller's later reservations up as described above; those pushed out by a pause or a newcomer
// learn it when they confirm. The fair-share order between callers is the same as here.
package quota

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/mdegraph/mdegraph/internal/principal"
)

// Window is one sliding-window limit: at most Limit grants in any interval
// (t-Per, t]. A grant made at e stops counting at exactly e+Per.
type Window struct {
	Limit int
	Per   time.Duration
}

// Limiter enforces several sliding windows at once for one endpoint family and
// queues waiters in fair turns between callers (see the package doc).
// A Limiter is safe for concurrent use by multiple goroutines.
// Create one with NewLimiter; the zero Limiter is not usable.
//
// Methods ending in At take the time explicitly, as golang.org/x/time/rate's
// do, so table tests need no clock; grant times never go backwards, so a time
// before the latest grant is taken as that grant's time.
type Limiter struct {
	windows []Window
	family  string // the Set's name for it, for its spans ("" outside a Set)

	// mu guards what follows. Status only reads, under the read lock: every answer reads
	// every family's status, and readers must not queue behind each other.
	mu          sync.RWMutex
	log         grantLog           // latest grant times, as many as the largest Limit
	queue       []*waiter          // by (round, seq); projections never decrease along it
	callers     map[string]*caller // callers with waiters in line, or whose next round is past round
	round       uint64             // V: the round of the latest waiter granted from the queue
	seq         uint64             // the sequence number of the latest waiter queued
	pausedUntil time.Time
	timer       *time.Timer // armed for queue[0].at while the queue is not empty

	onGrant func(time.Time, *waiter) // tests only: sees every grant, and its waiter (nil if granted at once), under mu
	onQueue func(*waiter)            // tests only: sees every waiter queued, under mu
}

// caller is one caller's state in the fair-share order.
type caller struct {
	id     string // principal.Principal.ID
	queued int    // its waiters in line
	next   uint64 // the earliest round its next waiter may take: one past its latest waiter's
}

// waiter is one Wait call in the queue.
type waiter struct {
	at       time.Time     // projected grant time
	maxAt    time.Time     // now+maxWait when Wait was called
	deadline time.Time     // ctx's deadline, zero if none
	caller   *caller       // whose call it is
	round    uint64        // its round; with seq, its place in the queue
	seq      uint64        // unique, increasing in the order waiters were queued
	ready    chan struct{} // closed under mu when the waiter leaves the queue with err
	err      error         // nil: granted; *ExceededError: pushed out by a pause or a newcomer
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
		callers: make(map[string]*caller),
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
// the call queues in its caller's turn (the caller is principal.FromContext(ctx);
// see the package doc for the order). If its projected grant time (given the
// windows, the waiters ahead and any pause) is later than now+maxWait, or not
// before ctx's deadline, Wait returns a *ExceededError at once without
// queueing; it does the same later if a Pause, or a call of another caller
// taking its turn ahead, pushes the grant that far. If ctx is done while
// queued, Wait leaves the queue, letting the waiters behind move up, and
// returns ctx.Err(). A nil error means the slot has been consumed, even if ctx
// was done at the same moment. A negative maxWait is 0; a grant can come later
// than maxWait only by the lateness of a timer.
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
		l.grant(now, nil)
		l.mu.Unlock()
		return now, nil
	}
	at, err := l.takeInTurn(ctx, maxWait, now)
	traceWait(ctx, l.family, now, err)
	return at, err
}

// takeInTurn is Take for a call that cannot be granted at once: it queues the call in its
// caller's turn, or refuses it if the turn would come too late. l.mu is held on entry and
// released.
func (l *Limiter) takeInTurn(ctx context.Context, maxWait time.Duration, now time.Time) (time.Time, error) {
	id := principal.IDFrom(ctx)
	c := l.callers[id]
	round := l.round
	if c != nil {
		round = max(round, c.next)
	}
	i := l.place(round)
	at, maxAt := l.earliest(i, now), now.Add(max(maxWait, 0))
	deadline, _ := ctx.Deadline()
	if tooLate(at, maxAt, deadline) {
		l.mu.Unlock()
		return time.Time{}, &ExceededError{RetryAfter: at.Sub(now)}
	}
	if c == nil {
		c = &caller{id: id}
		l.callers[id] = c
	}
	c.queued++
	c.next = round + 1
	l.seq++
	w := &waiter{at: at, maxAt: maxAt, deadline: deadline, caller: c, round: round, seq: l.seq, ready: make(chan struct{})}
	l.queue = slices.Insert(l.queue, i, w)
	if l.onQueue != nil {
		l.onQueue(w)
	}
	l.reproject(i+1, now, true) // the waiters it went ahead of move back
	if i == 0 {
		l.settle(now) // a new head: grant it if due, and arm the timer for it
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
	i = slices.Index(l.queue, w)
	l.leave(i)
	now = time.Now()
	l.reproject(i, now, false)
	l.settle(now)
	return time.Time{}, ctx.Err()
}

// place returns the index at which a waiter of round takes its place: behind
// every waiter of that round or an earlier one.
func (l *Limiter) place(round uint64) int {
	i, _ := slices.BinarySearchFunc(l.queue, round+1, func(w *waiter, r uint64) int { return cmp.Compare(w.round, r) })
	return i
}

// leave takes the waiter at i out of the queue unserved. Each later waiter of
// its caller moves up into the place of the one before it, taking its round
// and seq, and the caller gives up its last place, which its next waiter may
// take again: no other caller's waiter moves back.
func (l *Limiter) leave(i int) {
	w := l.queue[i]
	c := w.caller
	hole, round, seq := i, w.round, w.seq
	for j := i + 1; j < len(l.queue); j++ {
		if v := l.queue[j]; v.caller == c {
			l.queue[hole] = v
			v.round, round = round, v.round
			v.seq, seq = seq, v.seq
			hole = j
		}
	}
	l.queue = slices.Delete(l.queue, hole, hole+1)
	c.next = round
	l.depart(c)
}

// depart counts one waiter of c out of the queue, and forgets c once it has
// none left and its next round is no later than the one being served: it is
// then as if it had never queued.
func (l *Limiter) depart(c *caller) {
	c.queued--
	if c.queued == 0 && c.next <= l.round {
		delete(l.callers, c.id)
	}
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
	l.grant(t, nil)
	return true
}

// NextAt returns the time at which a Wait called at t would be granted if it
// queued behind every waiter in line: t itself if a slot is free, later if the
// windows are full, the Limiter is paused or others are queued. A call takes
// its caller's turn, so no call is granted later than that, unless later calls
// of other callers take their turns ahead of it.
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

// Record counts a grant made elsewhere at at (by a limiter shared between replicas, while it
// could be reached), so that the windows hold it like one of this Limiter's own. A time before
// the latest grant counts as that grant's time: the log stays in order, and the windows only
// stricter. Waiters in line move back, as behind any grant.
func (l *Limiter) Record(at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.grant(latest(at, l.log.back(1)), nil)
	if len(l.queue) > 0 {
		now := time.Now()
		l.reproject(0, now, false)
		l.settle(now)
	}
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
	NextSlot    time.Time      // when a Wait called now would be granted behind every waiter in line (NextAt); now if a slot is free
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
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.status(time.Now())
}

// StatusAt returns the Limiter's state at t.
func (l *Limiter) StatusAt(t time.Time) Status {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.status(t)
}

// status is the state at t; l.mu is held, for reading at least.
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
		// The grants in (t-Per, t]: the log is in time order, so a search finds the first
		// one older (an hour's window holds up to 1500).
		used := sort.Search(l.log.n, func(k int) bool { return !l.log.back(k + 1).Add(w.Per).After(t) })
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

// grant records a grant at t, which must not be before the latest one, to w
// (nil for a call granted without queueing).
func (l *Limiter) grant(t time.Time, w *waiter) {
	l.log.add(t)
	if l.onGrant != nil {
		l.onGrant(t, w)
	}
}

// reproject recomputes the projected times of queue[from:], after the waiters
// ahead of them or the pause changed. With evict, waiters projected later than
// they would wait leave the queue with an ExceededError; only a pause and a
// newcomer placed ahead need that, since a departure or a late timer moves
// projections earlier or by no more than the timer's lateness.
func (l *Limiter) reproject(from int, now time.Time, evict bool) {
	for i := from; i < len(l.queue); {
		w := l.queue[i]
		w.at = l.earliest(i, now)
		if evict && tooLate(w.at, w.maxAt, w.deadline) {
			w.err = &ExceededError{RetryAfter: w.at.Sub(now)}
			close(w.ready)
			l.leave(i) // its caller's later waiters move up into its place
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
		l.grant(now, w)
		w.granted = now
		close(w.ready)
		if w.round > l.round {
			l.round = w.round
			l.forgetIdle()
		}
		l.depart(w.caller)
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

// forgetIdle forgets the callers with no waiter in line whose next round is
// no later than the one being served, after the round moved on. The pass over
// the callers is skipped while they are no more than the waiters, which bounds
// the callers kept by the queue's length.
func (l *Limiter) forgetIdle() {
	if len(l.callers) <= len(l.queue) {
		return
	}
	for id, c := range l.callers {
		if c.queued == 0 && c.next <= l.round {
			delete(l.callers, id)
		}
	}
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
