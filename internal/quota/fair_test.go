package quota

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mdegraph/mdegraph/internal/principal"
)

// as returns ctx carrying the API-key principal named name, the caller the Limiter sees.
func as(ctx context.Context, name string) context.Context {
	return principal.NewContext(ctx, principal.Principal{Kind: principal.KindAPIKey, Name: name})
}

// grantRecord is one grant as the Limiter made it: when, and to which caller ("" when granted
// without queueing).
type grantRecord struct {
	at     time.Time
	caller string
}

// waitRecord is one waiter granted from the queue, and the grants to each other caller made
// while it was in line.
type waitRecord struct {
	caller string
	others map[string]int
}

// grantLogger records every grant of l in the order the Limiter made them, and for every
// waiter granted from the queue, whom the grants made while it waited went to.
type grantLogger struct {
	mu       sync.Mutex
	grants   []grantRecord
	queuedAt map[*waiter]int // len(grants) when the waiter was queued
	waits    []waitRecord
}

func logGrants(l *Limiter) *grantLogger {
	g := &grantLogger{queuedAt: map[*waiter]int{}}
	l.onQueue = func(w *waiter) {
		g.mu.Lock()
		defer g.mu.Unlock()
		g.queuedAt[w] = len(g.grants)
	}
	l.onGrant = func(t time.Time, w *waiter) {
		g.mu.Lock()
		defer g.mu.Unlock()
		r := grantRecord{at: t}
		if w != nil {
			r.caller = w.caller.id
			others := map[string]int{}
			for _, o := range g.grants[g.queuedAt[w]:] {
				if o.caller != r.caller {
					others[o.caller]++
				}
			}
			delete(g.queuedAt, w)
			g.waits = append(g.waits, waitRecord{r.caller, others})
		}
		g.grants = append(g.grants, r)
	}
	return g
}

// times returns the grant times.
func (g *grantLogger) times() []time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]time.Time, len(g.grants))
	for i, r := range g.grants {
		out[i] = r.at
	}
	return out
}

// counts returns the grants to each caller.
func (g *grantLogger) counts() map[string]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[string]int{}
	for _, r := range g.grants {
		out[r.caller]++
	}
	return out
}

// TestFairOrder checks the order in which waiters of several callers are granted, their
// projected times, who is pushed out when a newcomer takes its turn ahead, and that a refused
// newcomer changes nothing.
func TestFairOrder(t *testing.T) {
	t.Parallel()
	s := time.Second
	type arrival struct {
		after   time.Duration // since the previous arrival
		caller  string
		maxWait time.Duration // 0 means an hour
	}
	type outcome struct {
		waited     time.Duration // granted after this long, or refused after this long with...
		retryAfter time.Duration // ...this RetryAfter (0: granted)
	}
	granted := func(d time.Duration) outcome { return outcome{waited: d} }
	refused := func(after, retry time.Duration) outcome { return outcome{after, retry} }
	tests := []struct {
		name     string
		arrivals []arrival
		want     []outcome // per arrival
		order    []string  // callers in grant order
	}{
		{
			"callers in turn, each in order",
			[]arrival{{0, "a", 0}, {0, "a", 0}, {0, "a", 0}, {0, "b", 0}, {0, "b", 0}, {0, "c", 0}},
			[]outcome{granted(10 * s), granted(40 * s), granted(60 * s), granted(20 * s), granted(50 * s), granted(30 * s)},
			[]string{"a", "b", "c", "a", "b", "a"},
		},
		{
			"one caller alone is first come first served",
			[]arrival{{0, "a", 0}, {0, "a", 0}, {0, "a", 0}},
			[]outcome{granted(10 * s), granted(20 * s), granted(30 * s)},
			[]string{"a", "a", "a"},
		},
		{
			// a's first waiter is granted at 10 s in round 0; b joins round 0 at 11 s, ahead
			// of a's round-1 waiter; at 21 s b, served in round 0 already, joins round 1
			// behind a's waiter of that round.
			"a caller already served in the round waits for the next",
			[]arrival{{0, "a", 0}, {0, "a", 0}, {0, "a", 0}, {11 * s, "b", 0}, {10 * s, "b", 0}},
			[]outcome{granted(10 * s), granted(30 * s), granted(50 * s), granted(9 * s), granted(19 * s)},
			[]string{"a", "b", "a", "b", "a"},
		},
		{
			"a newcomer pushes the flooder's last waiter past its maxWait",
			[]arrival{{0, "a", 30 * s}, {0, "a", 30 * s}, {0, "a", 30 * s}, {5 * s, "b", 0}},
			// a's third waiter, projected at 30 s, moves to 40 s when b arrives at 5 s: it
			// leaves then, told to retry in 35 s.
			[]outcome{granted(10 * s), granted(30 * s), refused(5*s, 35*s), granted(15 * s)},
			[]string{"a", "b", "a"},
		},
		{
			"a newcomer refused at once moves no one",
			[]arrival{{0, "a", 0}, {0, "a", 0}, {0, "b", 5 * s}},
			[]outcome{granted(10 * s), granted(20 * s), refused(0, 20*s)},
			[]string{"a", "a"},
		},
		{
			"in a round, waiters are served in the order they came",
			[]arrival{{0, "a", 0}, {0, "b", 0}, {0, "b", 0}, {0, "a", 0}},
			[]outcome{granted(10 * s), granted(20 * s), granted(30 * s), granted(40 * s)},
			[]string{"a", "b", "b", "a"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				l := NewLimiter(Window{1, 10 * s})
				grants := logGrants(l)
				l.Allow()
				var results []<-chan waitResult
				for _, a := range tt.arrivals {
					time.Sleep(a.after) // the bubble's clock
					mw := a.maxWait
					if mw == 0 {
						mw = time.Hour
					}
					results = append(results, queue(l, as(context.Background(), a.caller), mw))
				}
				for i, want := range tt.want {
					r := <-results[i]
					var ee *ExceededError
					switch {
					case want.retryAfter == 0 && (r.err != nil || r.waited != want.waited):
						t.Errorf("arrival %d (%s): %v after %v, want granted after %v", i, tt.arrivals[i].caller, r.err, r.waited, want.waited)
					case want.retryAfter != 0 && (!errors.As(r.err, &ee) || ee.RetryAfter != want.retryAfter || r.waited != want.waited):
						t.Errorf("arrival %d (%s): %v after %v, want RetryAfter %v after %v", i, tt.arrivals[i].caller, r.err, r.waited, want.retryAfter, want.waited)
					}
				}
				var order []string
				for _, g := range grants.grants[1:] { // after the Allow; every waiter has returned
					order = append(order, g.caller[len("apikey:"):])
				}
				if !slices.Equal(order, tt.order) {
					t.Errorf("grant order %v, want %v", order, tt.order)
				}
				checkIdle(t, l)
			})
		})
	}
}

// checkIdle fails t unless l, with every waiter gone, keeps no queue, no timer and no caller
// state that could outlive the round: the memory the fair share takes is bounded by the queue.
func checkIdle(t *testing.T, l *Limiter) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.queue) != 0 || l.timer != nil {
		t.Errorf("after all returned: %d queued, timer armed %v; want none", len(l.queue), l.timer != nil)
	}
	for id, c := range l.callers {
		if c.queued != 0 || c.next > l.round+1 {
			t.Errorf("caller %s kept with %d queued, next round %d; the round is %d", id, c.queued, c.next, l.round)
		}
	}
}

// TestFairLeave checks that when a waiter leaves unserved, its caller's later waiters move up
// into its place and nobody else's waiter moves back; and that the caller gives up its last
// place, which its next waiter takes again.
func TestFairLeave(t *testing.T) {
	t.Parallel()
	s := time.Second
	// a b a b a b queue at 0 s, in rounds 0 0 1 1 2 2, to be granted at 10, 20, ... 60 s.
	// One of them is cancelled at 5 s; at 6 s b asks once more, then a.
	arrivals := []string{"a", "b", "a", "b", "a", "b", "b", "a"}
	tests := []struct {
		name   string
		cancel int             // which arrival is cancelled
		want   []time.Duration // grant time of each arrival, since 0 (the cancelled one: 0)
	}{
		// a's third waiter takes the second's round 1; a gives up round 2, where its last
		// call goes, ahead of b's round-3 call.
		{"a caller's middle waiter", 2, []time.Duration{10 * s, 20 * s, 0, 40 * s, 30 * s, 50 * s, 70 * s, 60 * s}},
		{"the head", 0, []time.Duration{0, 20 * s, 10 * s, 40 * s, 30 * s, 50 * s, 70 * s, 60 * s}},
		// b's waiters move up; b gives up round 2, where its next call goes, ahead of a's
		// round-3 call.
		{"the other caller's first", 1, []time.Duration{10 * s, 0, 30 * s, 20 * s, 50 * s, 40 * s, 60 * s, 70 * s}},
		{"the last", 5, []time.Duration{10 * s, 20 * s, 30 * s, 40 * s, 50 * s, 0, 60 * s, 70 * s}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				l := NewLimiter(Window{1, 10 * s})
				l.Allow()
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				var results []<-chan waitResult
				var arrived []time.Duration
				start := time.Now()
				for i, c := range arrivals {
					if i == 6 {
						time.Sleep(5 * s)
						cancel()
						time.Sleep(s)
					}
					base := context.Background()
					if i == tt.cancel {
						base = ctx
					}
					arrived = append(arrived, time.Since(start))
					results = append(results, queue(l, as(base, c), time.Hour))
				}
				for i, want := range tt.want {
					r := <-results[i]
					switch {
					case i == tt.cancel && (!errors.Is(r.err, context.Canceled) || r.waited != 5*s):
						t.Errorf("cancelled arrival %d: %v after %v, want context.Canceled after 5s", i, r.err, r.waited)
					case i != tt.cancel && (r.err != nil || arrived[i]+r.waited != want):
						t.Errorf("arrival %d (%s): %v, granted at %v; want granted at %v", i, arrivals[i], r.err, arrived[i]+r.waited, want)
					}
				}
				checkIdle(t, l)
			})
		})
	}
}

// TestFairPauseAndRefund checks Pause and Refund with several callers in line: the order
// between callers holds, a pause pushes out whoever cannot wait that long, and the waiter of
// the pushed-out caller behind it moves up.
func TestFairPauseAndRefund(t *testing.T) {
	t.Parallel()
	s := time.Second
	t.Run("pause", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			l := NewLimiter(Window{1, 10 * s})
			l.Allow()
			// Order a0 b0 a1 b1 at 10, 20, 30, 40 s; b0 waits at most 30 s.
			arrivals := []struct {
				caller  string
				maxWait time.Duration
			}{{"a", time.Hour}, {"b", 30 * s}, {"a", time.Hour}, {"b", time.Hour}}
			var results []<-chan waitResult
			for _, a := range arrivals {
				results = append(results, queue(l, as(context.Background(), a.caller), a.maxWait))
			}
			time.Sleep(5 * s)
			// Nothing before 25 s: a0 at 25, b0 at 35 (past its 30 s: it leaves, and b1
			// takes its place), a1 at 45... b1 at 35, a1 at 45.
			l.Pause(time.Now().Add(20 * s))
			want := []waitResult{{25 * s, nil}, {5 * s, &ExceededError{RetryAfter: 30 * s}}, {45 * s, nil}, {35 * s, nil}}
			for i, w := range want {
				if r := <-results[i]; !reflect.DeepEqual(r, w) {
					t.Errorf("arrival %d (%s): %v after %v, want %v after %v", i, arrivals[i].caller, r.err, r.waited, w.err, w.waited)
				}
			}
			checkIdle(t, l)
		})
	})
	t.Run("refund", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			l := NewLimiter(Window{1, 10 * s})
			first, err := l.Take(context.Background(), 0)
			if err != nil {
				t.Fatal(err)
			}
			// Order a0 b0 a1 at 10, 20, 30 s; the refund at 5 s frees the slot at once.
			callers := []string{"a", "a", "b"}
			var results []<-chan waitResult
			for _, c := range callers {
				results = append(results, queue(l, as(context.Background(), c), time.Hour))
			}
			time.Sleep(5 * s)
			l.Refund(first)
			for i, want := range []time.Duration{5 * s, 25 * s, 15 * s} {
				if r := <-results[i]; r.err != nil || r.waited != want {
					t.Errorf("arrival %d (%s): %v after %v, want granted after %v", i, callers[i], r.err, r.waited, want)
				}
			}
			checkIdle(t, l)
		})
	})
}

// TestFairShareUnderFlood is the scenario: one caller floods the limiter with hundreds
// of calls, the others each ask a little, one call at a time. Every call of the light callers
// is granted (none is pushed past its maxWait), each after at most two grants to each other
// caller (one in the round being served, one in the next); no window is ever exceeded; the
// flooder's calls are granted in the order it made them.
func TestFairShareUnderFlood(t *testing.T) {
	t.Parallel()
	for _, light := range []int{1, 3} {
		t.Run(fmt.Sprintf("%d light callers", light), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				windows := []Window{{10, 10 * time.Second}, {60, time.Minute}} // slots free every 10 s: within maxWait
				const maxWait = 10 * time.Second
				l := NewLimiter(windows...)
				grants := logGrants(l)
				stop := make(chan struct{})
				var wg sync.WaitGroup

				// The flooder: 40 calls every second, each waiting up to maxWait; most are refused.
				type floodCall struct {
					arrived, granted time.Time
					err              error
				}
				var mu sync.Mutex
				var flood []floodCall
				wg.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
						for range 40 {
							wg.Go(func() {
								arrived := time.Now()
								at, err := l.Take(as(context.Background(), "flood"), maxWait)
								mu.Lock()
								flood = append(flood, floodCall{arrived, at, err})
								mu.Unlock()
							})
						}
						time.Sleep(time.Second)
					}
				})

				// The light callers: one call at a time, and a pause of twice its wait plus a
				// second after each, which keeps them within their equal share.
				var lightErrs []error
				const lightCalls = 8
				for k := range light {
					wg.Go(func() {
						time.Sleep(1500*time.Millisecond + time.Duration(k)*300*time.Millisecond) // the flood is on
						for range lightCalls {
							start := time.Now()
							_, err := l.Take(as(context.Background(), fmt.Sprint("light", k)), maxWait)
							mu.Lock()
							lightErrs = append(lightErrs, err)
							mu.Unlock()
							time.Sleep(2*time.Since(start) + time.Second)
						}
					})
				}
				time.Sleep(3 * time.Minute)
				close(stop)
				wg.Wait()

				checkWindows(t, grants.times(), windows)
				for _, err := range lightErrs {
					if err != nil {
						t.Errorf("a light caller's call: %v, want granted: it asks within its share", err)
					}
				}
				if len(lightErrs) != lightCalls*light {
					t.Errorf("%d light calls returned, want %d", len(lightErrs), lightCalls*light)
				}
				lightWaits := 0
				for _, w := range grants.waits {
					if w.caller == "apikey:flood" {
						continue
					}
					lightWaits++
					for other, n := range w.others {
						if n > 2 {
							t.Errorf("%s waited in line through %d grants to %s, want at most 2", w.caller, n, other)
						}
					}
				}
				if lightWaits == 0 {
					t.Errorf("no light call had to queue: the flood did not fill the windows")
				}
				var granted, refused int
				var last time.Time
				slices.SortStableFunc(flood, func(a, b floodCall) int { return a.arrived.Compare(b.arrived) })
				for _, f := range flood {
					var ee *ExceededError
					switch {
					case f.err == nil:
						granted++
						if f.granted.Before(last) {
							t.Errorf("a flood call that arrived at %v was granted at %v, before an earlier one's grant at %v", f.arrived, f.granted, last)
						}
						last = f.granted
					case errors.As(f.err, &ee):
						refused++
					default:
						t.Errorf("flood call: %v", f.err)
					}
				}
				if granted == 0 || refused == 0 {
					t.Errorf("flood: %d granted, %d refused; want both: the flood must exceed the windows", granted, refused)
				}
				t.Logf("grants by caller: %v; %d light calls queued; flood: %d granted, %d refused", grants.counts(), lightWaits, granted, refused)
				checkIdle(t, l)
			})
		})
	}
}

// BenchmarkWaitExceededBehindFlood is a call refused at once while another caller has 100
// calls in line: the cost of finding its turn (the caller lookup, the place in the queue).
func BenchmarkWaitExceededBehindFlood(b *testing.B) {
	l := NewLimiter(Window{1, time.Hour})
	l.Allow()
	flood, stop := context.WithCancel(as(context.Background(), "flood"))
	var wg sync.WaitGroup
	b.Cleanup(func() { stop(); wg.Wait() })
	for range 100 {
		wg.Go(func() { l.Wait(flood, 1000*time.Hour) })
	}
	for l.Status().Queued < 100 {
		time.Sleep(time.Millisecond)
	}
	ctx := principal.NewContext(context.Background(), principal.Anonymous("192.0.2.7:50123"))
	for b.Loop() {
		if err := l.Wait(ctx, 0); err == nil {
			b.Fatal("granted")
		}
	}
}
