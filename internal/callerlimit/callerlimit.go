// Package callerlimit limits how many GraphQL operations each caller may send to this service
// (CALLER_LIMIT_PER_MINUTE): at most Limit in any sliding window of Per, per principal, refused
// with RATE_LIMITED before anything is parsed or any upstream call is made.
//
// The upstream quota (package quota) shares Defender's calls fairly between the callers that
// wait for them, but a slot nobody waits for goes to whoever asks, so one caller asking all the
// time can still spend most of Defender's budget. This limit caps what any one caller may ask
// at all.
//
// Counting is exact, as in package quota: an operation at t is allowed only if fewer than
// Limit of the caller's allowed operations lie in (t-Per, t]. Refused operations do not count,
// so a client that retries too early is not punished for longer. Each caller's log holds at
// most Limit times and only as many as it used; callers idle for Per are forgotten, so memory
// follows the operations of the last one or two windows, not every caller ever seen.
package callerlimit

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/mdegraph/mdegraph/internal/principal"
)

// CodeRateLimited is the GraphQL error code of a refused operation: the same RATE_LIMITED a
// client sees when Defender's quota is spent, with extensions.retryAfter in whole seconds.
const CodeRateLimited = "RATE_LIMITED"

// Options configure a Limiter.
type Options struct {
	// Limit is the most operations one caller may send in any window of Per; it must be positive.
	Limit int
	// Per is the window (default one minute).
	Per time.Duration
	// OnRefuse, if set, is called for every refused operation, with the request's context
	// (which carries the principal), for metrics.
	OnRefuse func(ctx context.Context)
	// Logger receives one debug line per refusal (default: discard).
	Logger *slog.Logger
}

// Limiter counts each caller's operations in a sliding window. It is safe for concurrent use.
type Limiter struct {
	limit    int
	per      time.Duration
	onRefuse func(context.Context)
	logger   *slog.Logger

	mu      sync.Mutex
	epoch   time.Time           // origin of the offsets in the logs: monotonic, and 8 bytes each
	callers map[string]*history // principal ID -> its latest allowed operations
	swept   time.Duration       // offset of the last sweep of idle callers
}

// history is a ring of a caller's latest allowed operations, as offsets from the epoch.
type history struct {
	times []time.Duration // at most limit; once full, times[next] is the oldest
	next  int
}

// latest returns the most recent allowed operation.
func (h *history) latest() time.Duration {
	if h.next == 0 { // not full yet, or full with the latest last
		return h.times[len(h.times)-1]
	}
	return h.times[h.next-1]
}

// New returns a Limiter. It panics if opts.Limit is not positive: configuration checks it first.
func New(opts Options) *Limiter {
	if opts.Limit <= 0 {
		panic(fmt.Sprintf("callerlimit: Limit %d must be positive", opts.Limit))
	}
	if opts.Per <= 0 {
		opts.Per = time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Limiter{
		limit: opts.Limit, per: opts.Per, onRefuse: opts.OnRefuse, logger: opts.Logger,
		epoch: time.Now(), callers: make(map[string]*history),
	}
}

// Allow reports whether caller id may send an operation now, and counts it if so. If not, it
// returns how long until the caller's oldest counted operation leaves the window: the exact
// wait, to be rounded up.
func (l *Limiter) Allow(id string) (bool, time.Duration) {
	return l.AllowAt(id, time.Now())
}

// AllowAt is Allow at time t. Times must not go backwards by more than the window; a time
// before a caller's latest operation is taken as that operation's time.
func (l *Limiter) AllowAt(id string, t time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := t.Sub(l.epoch)
	if now-l.swept >= l.per {
		l.sweep(now)
	}
	h := l.callers[id]
	if h == nil {
		h = &history{times: make([]time.Duration, 0, min(l.limit, 8))}
		l.callers[id] = h
	} else {
		now = max(now, h.latest())
	}
	if len(h.times) < l.limit {
		if len(h.times) == cap(h.times) { // grow as used, up to limit
			h.times = append(make([]time.Duration, 0, min(2*cap(h.times), l.limit)), h.times...)
		}
		h.times = append(h.times, now)
		return true, 0
	}
	if oldest := h.times[h.next]; oldest+l.per > now {
		return false, oldest + l.per - now
	}
	h.times[h.next] = now
	h.next = (h.next + 1) % l.limit
	return true, 0
}

// sweep forgets the callers whose latest operation has left the window: they are as if new.
func (l *Limiter) sweep(now time.Duration) {
	for id, h := range l.callers {
		if h.latest()+l.per <= now {
			delete(l.callers, id)
		}
	}
	l.swept = now
}

// Callers returns how many callers the Limiter remembers now.
func (l *Limiter) Callers() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.callers)
}

// Handler counts each GraphQL operation (a GET or POST: one HTTP request is one operation,
// batches are not supported) against its caller, the principal in the request's context, and
// refuses one over the limit without calling next.
//
// A refusal is HTTP 429 Too Many Requests with Retry-After (whole seconds, at least 1),
// Cache-Control: no-store, and a GraphQL response body with one error whose extensions carry
// code RATE_LIMITED and retryAfter (the same seconds). 429 rather than the 200 that
// GraphQL-over-HTTP asks for application/json answers: the request is refused before it is
// read, so it is not known to be a well-formed GraphQL request, and 429 with Retry-After is
// what proxies, gateways and HTTP clients understand as "slow down". Other methods (OPTIONS,
// HEAD) are not operations and pass uncounted.
func (l *Limiter) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			next.ServeHTTP(w, r)
			return
		}
		id := principal.IDFrom(r.Context())
		ok, wait := l.Allow(id)
		if ok {
			next.ServeHTTP(w, r)
			return
		}
		secs := retrySeconds(wait)
		l.logger.DebugContext(r.Context(), "operation refused: the caller is over CALLER_LIMIT_PER_MINUTE",
			"caller", id, "limit", l.limit, "per", l.per, "retry_after_s", secs)
		if l.onRefuse != nil {
			l.onRefuse(r.Context())
		}
		msg := fmt.Sprintf("too many operations from this caller (%s): at most %d per %s; retry in %d s",
			id, l.limit, window(l.per), secs)
		writeRateLimited(w, msg, secs)
	})
}

// window words a window for a message: "minute" for one minute, else the duration.
func window(d time.Duration) string {
	if d == time.Minute {
		return "minute"
	}
	return d.String()
}

// retrySeconds rounds a wait up to whole seconds, at least 1: a client told to come back
// sooner would only be refused again.
func retrySeconds(d time.Duration) int {
	return max(int((d+time.Second-1)/time.Second), 1)
}

// writeRateLimited answers 429 with Retry-After and a GraphQL response holding one
// RATE_LIMITED error with extensions.retryAfter, no data (nothing was executed).
func writeRateLimited(w http.ResponseWriter, msg string, retryAfter int) {
	type extensions struct {
		Code       string `json:"code"`
		RetryAfter int    `json:"retryAfter"`
	}
	type gqlError struct {
		Message    string     `json:"message"`
		Extensions extensions `json:"extensions"`
	}
	body, _ := json.Marshal(struct { // cannot fail: strings and numbers
		Errors []gqlError `json:"errors"`
	}{[]gqlError{{msg, extensions{CodeRateLimited, retryAfter}}}})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Retry-After", strconv.Itoa(retryAfter))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusTooManyRequests)
	_, _ = w.Write(body)
}
