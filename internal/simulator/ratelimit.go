package simulator

import (
	"sort"
	"time"
)

// The two windows of the upstream's limits. "Per minute" is read as a sliding 60-second window,
// as UPSTREAM.md advises.
const (
	minuteWindow = time.Minute
	hourWindow   = time.Hour
)

// slidingLimit admits at most perMinute calls in any minute window and perHour in any hour
// window. A call at t is admitted iff fewer than the limit of admitted calls lie in the half-open
// interval (t-window, t]. Rejected calls are not recorded, so they neither count against the
// limit nor push back the moment a slot frees: retrying early only earns more 429s, never a
// longer wait. A limit of 0 is unlimited; calls are still recorded for statistics.
//
// Every method takes the time explicitly, so tests need no clock. It is not safe for concurrent
// use: endpointState's mutex guards it.
type slidingLimit struct {
	perMinute, perHour int

	admitted []time.Time // admitted calls within the last hour, ascending
	dropped  int         // admitted calls pruned from the front of admitted, ever
	total    int         // admitted calls, ever; admitted[i] is call number dropped+i

	// Statistics since the last reset: calls numbered below statsFrom are not counted.
	statsFrom              int
	maxInMinute, maxInHour int
}

// allowAt decides a call at t. If admitted it records the call and returns true; otherwise it
// returns false and how long until a slot frees under both limits. A t earlier than the last
// admitted call (a clock stepping back) is treated as that call's time, keeping the record sorted.
func (l *slidingLimit) allowAt(t time.Time) (bool, time.Duration) {
	if n := len(l.admitted); n > 0 && t.Before(l.admitted[n-1]) {
		t = l.admitted[n-1]
	}
	l.prune(t)
	wait := max(l.waitFor(t, minuteWindow, l.perMinute), l.waitFor(t, hourWindow, l.perHour))
	if wait > 0 {
		return false, wait
	}
	l.admitted = append(l.admitted, t)
	l.total++
	l.maxInMinute = max(l.maxInMinute, l.countSinceReset(t, minuteWindow))
	l.maxInHour = max(l.maxInHour, l.countSinceReset(t, hourWindow))
	return true, 0
}

// waitFor is how long from t until the window holds fewer than limit admitted calls; 0 when it
// already does. With k calls in the window, the (k-limit+1)th oldest must leave, which it does
// exactly window after it was admitted.
func (l *slidingLimit) waitFor(t time.Time, window time.Duration, limit int) time.Duration {
	if limit <= 0 {
		return 0
	}
	first := l.firstIn(t, window)
	k := len(l.admitted) - first
	if k < limit {
		return 0
	}
	return l.admitted[first+k-limit].Add(window).Sub(t)
}

// firstIn is the index of the oldest admitted call inside (t-window, t].
func (l *slidingLimit) firstIn(t time.Time, window time.Duration) int {
	start := t.Add(-window)
	return sort.Search(len(l.admitted), func(i int) bool { return l.admitted[i].After(start) })
}

// countSinceReset counts admitted calls in (t-window, t] made since the last statistics reset.
// The maximum over all sliding windows is always reached by a window ending at an admitted call,
// so updating it on every admission is exact.
func (l *slidingLimit) countSinceReset(t time.Time, window time.Duration) int {
	first := max(l.firstIn(t, window), l.statsFrom-l.dropped)
	return len(l.admitted) - first
}

// prune forgets calls that no window ending at t or later can contain.
func (l *slidingLimit) prune(t time.Time) {
	n := l.firstIn(t, hourWindow)
	if n == 0 {
		return
	}
	l.dropped += n
	// Copy when most of the slice is dead, so a long run does not pin an ever-growing array.
	if n > len(l.admitted)/2 {
		l.admitted = append([]time.Time(nil), l.admitted[n:]...)
	} else {
		l.admitted = l.admitted[n:]
	}
}

// resetStats starts counting the window maxima afresh; the limits keep their memory.
func (l *slidingLimit) resetStats() {
	l.statsFrom = l.total
	l.maxInMinute, l.maxInHour = 0, 0
}

// retryAfterSeconds renders a wait as the Retry-After header does: whole seconds, rounded up,
// at least 1, so a client that waits exactly that long is admitted.
func retryAfterSeconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	return max(s, 1)
}
