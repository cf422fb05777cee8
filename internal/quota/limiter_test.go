package quota

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// t0 is the start of the explicit-time tests; the synctest tests start at the
// bubble's time.Now().
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// mde are the Defender API's limits per endpoint family.
var mde = []Window{{Limit: 100, Per: time.Minute}, {Limit: 1500, Per: time.Hour}}

// recordGrants makes l append every grant time, as the limiter records it, to
// the returned slice. Read the slice only once l is idle.
func recordGrants(l *Limiter) *[]time.Time {
	var grants []time.Time
	l.onGrant = func(t time.Time, _ *waiter) { grants = append(grants, t) }
	return &grants
}

// armed reports whether l's timer is armed: it must not be once the queue is empty.
func armed(l *Limiter) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.timer != nil
}

// countIn returns how many of the sorted times are in (from, to].
func countIn(sorted []time.Time, from, to time.Time) int {
	upper := func(x time.Time) int { return sort.Search(len(sorted), func(i int) bool { return sorted[i].After(x) }) }
	return upper(to) - upper(from)
}

// full reports whether a grant at t would put more than Limit of sorted (all
// before or at t) into some window ending at t.
func full(sorted []time.Time, t time.Time, windows []Window) bool {
	for _, w := range windows {
		if countIn(sorted, t.Add(-w.Per), t) >= w.Limit {
			return true
		}
	}
	return false
}

// checkWindows fails t if some interval (s-Per, s] holds more than Limit
// grants. Intervals ending at a grant are enough: moving an interval's end
// back to its last grant loses none of its grants.
func checkWindows(t *testing.T, grants []time.Time, windows []Window) {
	t.Helper()
	sorted := slices.SortedFunc(slices.Values(grants), time.Time.Compare)
	for _, w := range windows {
		for _, end := range sorted {
			if n := countIn(sorted, end.Add(-w.Per), end); n > w.Limit {
				t.Fatalf("%d grants in (%v, %v], want at most %d", n, end.Add(-w.Per), end, w.Limit)
			}
		}
	}
}

// arrivals returns a seeded, sorted arrival pattern over span: uniform
// background traffic plus bursts just before, at and just after minute and
// hour edges, where an off-by-one in the windows would show.
func arrivals(rng *rand.Rand, span time.Duration) []time.Duration {
	var out []time.Duration
	for range 3000 {
		out = append(out, time.Duration(rng.Int64N(int64(span))))
	}
	for range 40 {
		edge := time.Duration(1+rng.IntN(int(span/time.Minute)-1)) * time.Minute
		for range 100 {
			out = append(out, edge-100*time.Millisecond)
		}
		for range 30 {
			out = append(out, edge)
		}
		for range 10 {
			out = append(out, edge+time.Nanosecond)
		}
	}
	for h := time.Hour; h < span; h += time.Hour {
		for range 200 {
			out = append(out, h-time.Nanosecond, h)
		}
	}
	slices.Sort(out)
	return out
}

func TestAllowAtSlidingWindow(t *testing.T) {
	t.Parallel()
	type step struct {
		at   time.Duration // since t0
		n    int           // AllowAt calls at that time
		want int           // of which granted
		next time.Duration // NextAt(at) afterwards, since t0
	}
	s := time.Second
	hour := func() []step { // fill the minute window each minute until the hour window is full
		var steps []step
		for m := range 15 {
			next := time.Duration(m+1) * time.Minute
			if m == 14 {
				next = time.Hour
			}
			steps = append(steps, step{time.Duration(m) * time.Minute, 101, 100, next})
		}
		return append(steps,
			step{time.Hour - time.Nanosecond, 1, 0, time.Hour},
			step{time.Hour, 101, 100, time.Hour + time.Minute})
	}
	trickle := func() []step { // one every 0.5 s: the 101st waits for the 1st to leave the minute
		var steps []step
		for i := range 100 {
			next := time.Duration(i) * 500 * time.Millisecond
			if i == 99 {
				next = time.Minute
			}
			steps = append(steps, step{time.Duration(i) * 500 * time.Millisecond, 1, 1, next})
		}
		return append(steps, step{time.Minute, 1, 1, time.Minute + 500*time.Millisecond})
	}
	tests := []struct {
		name    string
		windows []Window
		steps   []step
	}{
		{"100 at once, the 101st at exactly one minute", mde, []step{
			{0, 101, 100, time.Minute},
			{time.Minute - time.Nanosecond, 1, 0, time.Minute},
			{time.Minute, 101, 100, 2 * time.Minute},
		}},
		{"burst just before the minute edge", mde, []step{
			{59900 * time.Millisecond, 100, 100, 119900 * time.Millisecond},
			{60 * s, 5, 0, 119900 * time.Millisecond},
			{119900 * time.Millisecond, 101, 100, 179900 * time.Millisecond},
		}},
		{"hour window", mde, hour()},
		{"trickle", mde, trickle()},
		{"two windows", []Window{{2, 10 * s}, {3, 60 * s}}, []step{
			{0, 3, 2, 10 * s},
			{10 * s, 2, 1, 60 * s},
			{60 * s, 3, 2, 70 * s},
		}},
		{"a time before the latest grant counts as that grant's time", []Window{{2, 10 * s}}, []step{
			{10 * s, 1, 1, 10 * s},
			{0, 2, 1, 20 * s},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := NewLimiter(tt.windows...)
			for i, st := range tt.steps {
				at := t0.Add(st.at)
				got := 0
				for range st.n {
					if l.AllowAt(at) {
						got++
					}
				}
				if got != st.want {
					t.Errorf("step %d: %d AllowAt(t0+%v) granted %d, want %d", i, st.n, st.at, got, st.want)
				}
				if next := l.NextAt(at); !next.Equal(t0.Add(st.next)) {
					t.Errorf("step %d: NextAt(t0+%v) = t0+%v, want t0+%v", i, st.at, next.Sub(t0), st.next)
				}
			}
		})
	}
}

// TestAllowAtExact checks both directions by brute force over thousands of
// seeded arrivals: a grant never overfills a window, and a refusal (or a
// NextAt later than asked) happens only when some window is really full.
func TestAllowAtExact(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	l := NewLimiter(mde...)
	var grants []time.Time
	for _, off := range arrivals(rng, 5*time.Hour) {
		at := t0.Add(off)
		isFull := full(grants, at, mde)
		if got := l.AllowAt(at); got == isFull {
			t.Fatalf("AllowAt(t0+%v) = %v, but a window is full: %v", off, got, isFull)
		} else if got {
			grants = append(grants, at)
		}
		next := l.NextAt(at)
		if full(grants, next, mde) || next.After(at) && !full(grants, next.Add(-time.Nanosecond), mde) {
			t.Fatalf("NextAt(t0+%v) = t0+%v is not the earliest free slot", off, next.Sub(t0))
		}
	}
	checkWindows(t, grants, mde)
	t.Logf("%d grants", len(grants))
}

// TestWaitSlidingWindow drives Wait with thousands of seeded arrivals from a few callers, one
// of them much busier than the others, with mixed maxWaits, cancellations and pauses, over
// five simulated hours: no window is ever exceeded, no waiter waits past its maxWait, every
// caller's grants come in the order of its calls, and every nil return is one logged grant.
func TestWaitSlidingWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(3, 4))
		l := NewLimiter(mde...)
		grants := recordGrants(l)
		type result struct {
			caller                     int
			arrived, returned, granted time.Time
			maxWait, cancelAfter       time.Duration
			err                        error
		}
		var pauses [][2]time.Time
		pattern := arrivals(rng, 5*time.Hour)
		results := make([]result, len(pattern))
		start := time.Now()
		var wg sync.WaitGroup
		for i, off := range pattern {
			time.Sleep(time.Until(start.Add(off))) // the bubble's clock: returns at once
			if i%1000 == 999 {
				now := time.Now()
				l.Pause(now.Add(30 * time.Second))
				pauses = append(pauses, [2]time.Time{now, now.Add(30 * time.Second)})
			}
			r := result{
				caller:  []int{0, 0, 0, 0, 0, 1, 2, 3}[rng.IntN(8)],
				maxWait: []time.Duration{0, 10 * time.Second, 2 * time.Minute, 30 * time.Minute}[rng.IntN(4)],
			}
			if rng.IntN(10) == 0 {
				r.cancelAfter = 1 + time.Duration(rng.Int64N(int64(time.Minute)))
			}
			wg.Go(func() {
				ctx, cancel := context.WithCancel(as(context.Background(), fmt.Sprint(r.caller)))
				defer cancel()
				if r.cancelAfter > 0 {
					defer time.AfterFunc(r.cancelAfter, cancel).Stop()
				}
				r.arrived = time.Now()
				r.granted, r.err = l.Take(ctx, r.maxWait)
				r.returned = time.Now()
				results[i] = r
			})
		}
		wg.Wait()

		checkWindows(t, *grants, mde)
		var returned []time.Time
		var exceeded, cancelled int
		// Per caller: the latest grant of its calls that arrived before instant, and of those
		// that arrived at instant (calls arriving at one instant may queue in any order).
		type callerOrder struct{ instant, before, atInstant time.Time }
		order := map[int]callerOrder{}
		for i, r := range results {
			waited := r.returned.Sub(r.arrived)
			var ee *ExceededError
			switch {
			case r.err == nil:
				returned = append(returned, r.returned)
				if waited > r.maxWait || !r.granted.Equal(r.returned) {
					t.Errorf("arrival %d: granted at +%v after %v, want at once, at most maxWait %v", i, r.granted.Sub(start), waited, r.maxWait)
				}
				o := order[r.caller]
				if !r.arrived.Equal(o.instant) {
					o.before, o.instant = latest(o.before, o.atInstant), r.arrived
				}
				if r.granted.Before(o.before) {
					t.Errorf("arrival %d of caller %d (at +%v) granted at +%v, before an earlier call of its own (granted at +%v)",
						i, r.caller, r.arrived.Sub(start), r.granted.Sub(start), o.before.Sub(start))
				}
				o.atInstant = latest(o.atInstant, r.granted)
				order[r.caller] = o
			case errors.As(r.err, &ee):
				exceeded++
				if waited > r.maxWait || ee.RetryAfter <= 0 {
					t.Errorf("arrival %d: %v after %v with maxWait %v", i, r.err, waited, r.maxWait)
				}
			case errors.Is(r.err, context.Canceled):
				cancelled++
				if r.cancelAfter == 0 || waited != r.cancelAfter {
					t.Errorf("arrival %d: cancelled after %v, want after %v", i, waited, r.cancelAfter)
				}
			default:
				t.Errorf("arrival %d: unexpected error %v", i, r.err)
			}
		}
		// Every nil return is one logged grant, at the moment it returned.
		slices.SortFunc(returned, time.Time.Compare)
		if !slices.EqualFunc(returned, *grants, time.Time.Equal) {
			t.Errorf("%d waiters returned nil, %d grants logged, or at other times", len(returned), len(*grants))
		}
		for _, p := range pauses {
			if n := countIn(*grants, p[0], p[1].Add(-time.Nanosecond)); n > 0 {
				t.Errorf("%d grants during the pause (%v, %v)", n, p[0].Sub(start), p[1].Sub(start))
			}
		}
		if st := l.Status(); st.Queued != 0 || armed(l) {
			t.Errorf("after all returned: Queued = %d, timer armed: %v; want 0, false", st.Queued, armed(l))
		}
		checkIdle(t, l)
		t.Logf("%d arrivals: %d granted, %d exceeded, %d cancelled", len(results), len(returned), exceeded, cancelled)
	})
}

// queue starts a Wait in a goroutine and returns once it is queued (or has
// returned), so waiters queue in call order. The result arrives on the channel.
func queue(l *Limiter, ctx context.Context, maxWait time.Duration) <-chan waitResult {
	c := make(chan waitResult, 1)
	start := time.Now()
	go func() {
		err := l.Wait(ctx, maxWait)
		c <- waitResult{time.Since(start), err}
	}()
	synctest.Wait()
	return c
}

// waitResult is how long a Wait took and what it returned.
type waitResult struct {
	waited time.Duration
	err    error
}

func TestWaitFIFO(t *testing.T) {
	t.Parallel()
	s := time.Second
	fill := func(n int, at time.Duration) func(*Limiter, time.Time) {
		return func(l *Limiter, now time.Time) {
			for range n {
				l.AllowAt(now.Add(at))
			}
		}
	}
	hourFull := func(l *Limiter, now time.Time) { // 1500 grants from -59 to -45 minutes
		for m := range 15 {
			fill(100, time.Duration(m-59)*time.Minute)(l, now)
		}
	}
	repeat := func(d time.Duration, n int) []time.Duration { return slices.Repeat([]time.Duration{d}, n) }
	tests := []struct {
		name    string
		windows []Window
		prefill func(l *Limiter, now time.Time)
		want    []time.Duration // grant time of each waiter, in queueing order, since start
	}{
		{"one per 10s", []Window{{1, 10 * s}}, fill(1, 0), []time.Duration{10 * s, 20 * s, 30 * s, 40 * s}},
		{"two per 10s", []Window{{2, 10 * s}}, fill(2, 0), []time.Duration{10 * s, 10 * s, 20 * s, 20 * s, 30 * s}},
		{"two windows", []Window{{2, 10 * s}, {3, 60 * s}}, fill(2, 0), []time.Duration{10 * s, 60 * s, 60 * s, 70 * s, 120 * s}},
		{"the 101st at exactly one minute", mde, fill(100, 0), repeat(time.Minute, 3)},
		{"free now but queue ahead", []Window{{2, 10 * s}}, fill(1, -5*s), []time.Duration{0, 5 * s, 10 * s, 15 * s}},
		{"hour window full", mde, hourFull, append(repeat(time.Minute, 100), 2*time.Minute)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				l := NewLimiter(tt.windows...)
				tt.prefill(l, time.Now())
				var results []<-chan waitResult
				for range tt.want {
					results = append(results, queue(l, context.Background(), time.Hour))
				}
				for i, want := range tt.want {
					if r := <-results[i]; r.err != nil || r.waited != want {
						t.Errorf("waiter %d: granted after %v (err %v), want %v", i, r.waited, r.err, want)
					}
				}
			})
		})
	}
}

// TestNoOvertaking covers the moment a waiter is due but its timer has not
// run yet: a newcomer finding a free slot must still queue behind it.
func TestNoOvertaking(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := NewLimiter(Window{1, time.Second})
		head := &waiter{at: time.Now(), maxAt: time.Now(), caller: &caller{id: "anonymous", queued: 1}, ready: make(chan struct{})}
		l.queue = append(l.queue, head)
		if l.Allow() {
			t.Errorf("Allow overtook a queued waiter")
		}
		c := queue(l, context.Background(), time.Hour)
		if got := l.Status().Queued; got != 2 {
			t.Errorf("Queued = %d, want 2: Wait overtook a queued waiter", got)
		}
		l.mu.Lock()
		l.settle(time.Now()) // what the head's timer does
		l.mu.Unlock()
		select {
		case <-head.ready:
		default:
			t.Errorf("the head was not granted")
		}
		if r := <-c; r.err != nil || r.waited != time.Second {
			t.Errorf("newcomer: %v after %v, want nil after 1s", r.err, r.waited)
		}
	})
}

func TestWaitExceeded(t *testing.T) {
	t.Parallel()
	s := time.Second
	tests := []struct {
		name     string
		ahead    int           // waiters queued first, at 10 s intervals
		maxWait  time.Duration // of the waiter under test
		deadline time.Duration // of its ctx, none if 0
		want     time.Duration // its grant time, or RetryAfter if exceeded
		exceeded bool
	}{
		{"maxWait too short", 0, 5 * s, 0, 10 * s, true},
		{"maxWait exactly enough", 0, 10 * s, 0, 10 * s, false},
		{"negative maxWait is zero", 0, -s, 0, 10 * s, true},
		{"deadline at the grant", 0, time.Minute, 10 * s, 10 * s, true},
		{"deadline just after the grant", 0, time.Minute, 10*s + 1, 10 * s, false},
		{"queue ahead counts", 2, 25 * s, 0, 30 * s, true},
		{"queue ahead within maxWait", 2, 30 * s, 0, 30 * s, false},
		{"queue ahead, deadline", 2, time.Hour, 29 * s, 30 * s, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				l := NewLimiter(Window{1, 10 * s})
				l.Allow()
				var ahead []<-chan waitResult
				for range tt.ahead {
					ahead = append(ahead, queue(l, context.Background(), time.Hour))
				}
				defer func() {
					for _, c := range ahead {
						<-c
					}
				}()
				ctx := context.Background()
				if tt.deadline > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tt.deadline)
					defer cancel()
				}
				start := time.Now()
				err := l.Wait(ctx, tt.maxWait)
				waited := time.Since(start)
				var ee *ExceededError
				switch {
				case tt.exceeded && !errors.As(err, &ee):
					t.Fatalf("Wait = %v, want *ExceededError", err)
				case tt.exceeded && (ee.RetryAfter != tt.want || waited != 0):
					t.Errorf("RetryAfter = %v after waiting %v, want %v at once", ee.RetryAfter, waited, tt.want)
				case tt.exceeded && l.Status().Queued != tt.ahead:
					t.Errorf("Queued = %d after ExceededError, want %d", l.Status().Queued, tt.ahead)
				case !tt.exceeded && (err != nil || waited != tt.want):
					t.Errorf("Wait = %v after %v, want nil after %v", err, waited, tt.want)
				}
			})
		})
	}
}

func TestWaitDoneContext(t *testing.T) {
	t.Parallel()
	l := NewLimiter(Window{1, time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Wait(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait(cancelled ctx) = %v, want context.Canceled", err)
	}
	if !l.Allow() {
		t.Errorf("a cancelled Wait used the slot")
	}
}

func TestWaitCancel(t *testing.T) {
	t.Parallel()
	s := time.Second
	tests := []struct {
		name   string
		cancel int             // which of the waiters is cancelled, at 5 s
		want   []time.Duration // grant times of the others, in order
	}{
		{"head", 0, []time.Duration{10 * s, 20 * s}},
		{"middle", 1, []time.Duration{10 * s, 20 * s}},
		{"last", 2, []time.Duration{10 * s, 20 * s}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				l := NewLimiter(Window{1, 10 * s})
				grants := recordGrants(l)
				l.Allow()
				ctx, cancel := context.WithCancel(context.Background())
				var results []<-chan waitResult
				for i := range 3 {
					c := context.Background()
					if i == tt.cancel {
						c = ctx
					}
					results = append(results, queue(l, c, time.Hour))
				}
				time.Sleep(5 * s) // the bubble's clock
				cancel()
				synctest.Wait()
				if got := l.Status().Queued; got != 2 {
					t.Errorf("Queued = %d after a cancel, want 2", got)
				}
				if got := l.NextAt(time.Now()); got.Sub(time.Now()) != 25*s {
					t.Errorf("NextAt = now+%v after a cancel, want now+25s", got.Sub(time.Now()))
				}
				var got []time.Duration
				for i, c := range results {
					r := <-c
					switch {
					case i == tt.cancel && (!errors.Is(r.err, context.Canceled) || r.waited != 5*s):
						t.Errorf("cancelled waiter: %v after %v, want context.Canceled after 5s", r.err, r.waited)
					case i != tt.cancel && r.err != nil:
						t.Errorf("waiter %d: %v", i, r.err)
					case i != tt.cancel:
						got = append(got, r.waited)
					}
				}
				if !slices.Equal(got, tt.want) {
					t.Errorf("others granted after %v, want %v", got, tt.want)
				}
				if len(*grants) != 3 || armed(l) {
					t.Errorf("%d grants, timer armed %v; want 3 (no slot lost or given to the cancelled waiter), false", len(*grants), armed(l))
				}
			})
		})
	}
}

func TestPause(t *testing.T) {
	t.Parallel()
	s := time.Second
	t.Run("before queueing", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			l := NewLimiter(Window{2, 10 * s})
			start := time.Now()
			l.Pause(start.Add(30 * s))
			l.Pause(start.Add(10 * s)) // never shortens
			if l.Allow() {
				t.Errorf("Allow during a pause granted")
			}
			if st := l.Status(); !st.PausedUntil.Equal(start.Add(30*s)) || !st.NextSlot.Equal(start.Add(30*s)) {
				t.Errorf("Status: PausedUntil now+%v, NextSlot now+%v; want both now+30s", st.PausedUntil.Sub(start), st.NextSlot.Sub(start))
			}
			var ee *ExceededError
			if err := l.Wait(context.Background(), 29*s); !errors.As(err, &ee) || ee.RetryAfter != 30*s {
				t.Errorf("Wait(maxWait 29s) = %v, want RetryAfter 30s", err)
			}
			var results []<-chan waitResult
			for range 3 {
				results = append(results, queue(l, context.Background(), time.Minute))
			}
			for i, want := range []time.Duration{30 * s, 30 * s, 40 * s} {
				if r := <-results[i]; r.err != nil || r.waited != want {
					t.Errorf("waiter %d: %v after %v, want nil after %v", i, r.err, r.waited, want)
				}
			}
		})
	})
	t.Run("while queued", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			l := NewLimiter(Window{2, 10 * s})
			start := time.Now()
			l.Allow()
			l.Allow()
			maxWaits := []time.Duration{time.Minute, 15 * s, time.Minute, time.Minute, 32 * s}
			var results []<-chan waitResult
			for _, mw := range maxWaits { // projected at 10, 10, 20, 20, 30 s
				results = append(results, queue(l, context.Background(), mw))
			}
			time.Sleep(5 * s) // the bubble's clock
			l.Pause(start.Add(30 * s))
			// Waiter 1 cannot wait until 30 s, leaves at once; the others move
			// up behind the pause in order; waiter 4 (now at 40 s) also leaves.
			want := []waitResult{ // since queueing at 0
				{30 * s, nil},
				{5 * s, &ExceededError{RetryAfter: 25 * s}},
				{30 * s, nil},
				{40 * s, nil},
				{5 * s, &ExceededError{RetryAfter: 35 * s}},
			}
			synctest.Wait()
			l.Pause(start.Add(20 * s)) // never shortens
			for i, w := range want {
				if r := <-results[i]; !reflect.DeepEqual(r, w) {
					t.Errorf("waiter %d: %v after %v, want %v after %v", i, r.err, r.waited, w.err, w.waited)
				}
			}
		})
	})
}

func TestStatusAt(t *testing.T) {
	t.Parallel()
	s := time.Second
	l := NewLimiter(Window{2, 10 * s}, Window{3, time.Minute})
	ws := func(used10, used60 int) []WindowStatus {
		return []WindowStatus{
			{Window{2, 10 * s}, used10, 2 - used10},
			{Window{3, time.Minute}, used60, 3 - used60},
		}
	}
	tests := []struct {
		name string
		do   func() // before StatusAt
		at   time.Duration
		want Status
	}{
		{"fresh", nil, 0, Status{ws(0, 0), t0, time.Time{}, 0}},
		{"two at t0", func() { l.AllowAt(t0); l.AllowAt(t0) }, 0, Status{ws(2, 2), t0.Add(10 * s), time.Time{}, 0}},
		{"just before they leave the 10 s window", nil, 10*s - 1, Status{ws(2, 2), t0.Add(10 * s), time.Time{}, 0}},
		{"they leave at exactly 10 s", nil, 10 * s, Status{ws(0, 2), t0.Add(10 * s), time.Time{}, 0}},
		{"the minute window full", func() { l.AllowAt(t0.Add(15 * s)) }, 15 * s, Status{ws(1, 3), t0.Add(time.Minute), time.Time{}, 0}},
		{"a minute later", nil, time.Minute, Status{ws(0, 1), t0.Add(time.Minute), time.Time{}, 0}},
		{"paused", func() { l.Pause(t0.Add(70 * s)) }, 61 * s, Status{ws(0, 1), t0.Add(70 * s), t0.Add(70 * s), 0}},
		{"pause over", nil, 70 * s, Status{ws(0, 1), t0.Add(70 * s), time.Time{}, 0}},
		{"before the latest grant reads as at it", nil, 0, Status{ws(1, 3), t0.Add(70 * s), t0.Add(70 * s), 0}},
	}
	for _, tt := range tests { // in order: each step builds on the last
		if tt.do != nil {
			tt.do()
		}
		if got := l.StatusAt(t0.Add(tt.at)); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: StatusAt(t0+%v) =\n%+v, want\n%+v", tt.name, tt.at, got, tt.want)
		}
	}
}

func TestStatusQueued(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := NewLimiter(Window{1, 10 * time.Second})
		l.Allow()
		var results []<-chan waitResult
		for range 3 {
			results = append(results, queue(l, context.Background(), time.Hour))
		}
		now := time.Now()
		want := Status{
			Windows:  []WindowStatus{{Window{1, 10 * time.Second}, 1, 0}},
			NextSlot: now.Add(40 * time.Second),
			Queued:   3,
		}
		if got := l.Status(); !reflect.DeepEqual(got, want) {
			t.Errorf("Status() =\n%+v, want\n%+v", got, want)
		}
		for _, c := range results {
			<-c
		}
	})
}

// TestConcurrentWait hammers one limiter from many goroutines in real time,
// with windows of micro- and milliseconds so that they roll over many times,
// until 2000 grants; then it checks the grants the limiter logged.
func TestConcurrentWait(t *testing.T) {
	t.Parallel()
	windows := []Window{{10, 100 * time.Microsecond}, {50, time.Millisecond}}
	tests := []struct {
		name    string
		maxWait time.Duration
		cancel  bool // cancel a quarter of the waiters after a random delay
	}{
		{"maxWait 0", 0, false},
		{"queued, some cancelled", 500 * time.Microsecond, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := NewLimiter(windows...)
			grants := recordGrants(l)
			var granted atomic.Int64
			var wg sync.WaitGroup
			for g := range 32 {
				wg.Go(func() {
					rng := rand.New(rand.NewPCG(uint64(g), 0))
					for granted.Load() < 2000 {
						ctx, cancel := context.WithCancel(context.Background())
						if tt.cancel && rng.IntN(4) == 0 {
							time.AfterFunc(time.Duration(rng.Int64N(int64(300*time.Microsecond))), cancel)
						}
						if l.Wait(ctx, tt.maxWait) == nil {
							granted.Add(1)
						}
						if rng.IntN(8) == 0 {
							l.Status()
						}
						cancel()
					}
				})
			}
			wg.Wait()
			if n := granted.Load(); n != int64(len(*grants)) {
				t.Errorf("%d Waits returned nil, %d grants logged", n, len(*grants))
			}
			checkWindows(t, *grants, windows)
			t.Logf("%d grants over %v", len(*grants), (*grants)[len(*grants)-1].Sub((*grants)[0]))
		})
	}
}

func BenchmarkWaitUncontended(b *testing.B) {
	// Windows that are never full, so every call takes the grant path.
	l := NewLimiter(Window{100, time.Nanosecond}, Window{1500, time.Nanosecond})
	ctx := context.Background()
	for b.Loop() {
		if err := l.Wait(ctx, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWaitExceeded(b *testing.B) {
	// Full windows: every call is refused at once, as when the service is overloaded.
	l := NewLimiter(mde...)
	for l.Allow() {
	}
	ctx := context.Background()
	for b.Loop() {
		if err := l.Wait(ctx, 0); err == nil {
			b.Fatal("granted")
		}
	}
}

func BenchmarkWaitContended(b *testing.B) {
	l := NewLimiter(Window{100, time.Nanosecond}, Window{1500, time.Nanosecond})
	ctx := context.Background()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := l.Wait(ctx, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestRecord: a grant made elsewhere counts in the windows like one of the Limiter's own.
func TestRecord(t *testing.T) {
	t.Parallel()
	start := time.Unix(1000, 0)
	l := NewLimiter(Window{Limit: 2, Per: time.Minute})
	l.Record(start)
	if !l.AllowAt(start.Add(time.Second)) {
		t.Fatal("second grant refused: one recorded grant took more than one slot")
	}
	if l.AllowAt(start.Add(2 * time.Second)) {
		t.Error("third grant in the minute allowed: the recorded grant was not counted")
	}
	if !l.AllowAt(start.Add(time.Minute)) {
		t.Error("the recorded grant still counts a minute later")
	}
}
