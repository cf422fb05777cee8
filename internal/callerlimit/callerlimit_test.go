package callerlimit

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mdegraph/mdegraph/internal/principal"
	"github.com/mdegraph/mdegraph/resolvers"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func TestAllowAt(t *testing.T) {
	t.Parallel()
	s := time.Second
	type step struct {
		at     time.Duration // since t0
		caller string
		ok     bool
		retry  time.Duration
	}
	tests := []struct {
		name  string
		limit int
		steps []step
	}{
		{"three a minute, the fourth waits for the first to leave", 3, []step{
			{0, "a", true, 0},
			{10 * s, "a", true, 0},
			{20 * s, "a", true, 0},
			{30 * s, "a", false, 30 * s},
			{60*s - 1, "a", false, 1},
			{60 * s, "a", true, 0}, // the first left at exactly 60 s
			{61 * s, "a", false, 9 * s},
		}},
		{"callers are counted apart", 1, []step{
			{0, "a", true, 0},
			{0, "b", true, 0},
			{s, "a", false, 59 * s},
			{s, "c", true, 0},
		}},
		{"a refusal does not count", 2, []step{
			{0, "a", true, 0},
			{0, "a", true, 0},
			{30 * s, "a", false, 30 * s},
			{59 * s, "a", false, s},
			{60 * s, "a", true, 0},
			{60 * s, "a", true, 0},
			{61 * s, "a", false, 59 * s},
		}},
		{"a time before the caller's latest counts as that time", 2, []step{
			{30 * s, "a", true, 0},
			{0, "a", true, 0}, // taken as 30 s
			{89 * s, "a", false, s},
			{90 * s, "a", true, 0},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := New(Options{Limit: tt.limit})
			l.epoch = t0
			for i, st := range tt.steps {
				ok, retry := l.AllowAt(st.caller, t0.Add(st.at))
				if ok != st.ok || retry != st.retry {
					t.Errorf("step %d: AllowAt(%s, t0+%v) = %v, %v; want %v, %v", i, st.caller, st.at, ok, retry, st.ok, st.retry)
				}
			}
		})
	}
}

// TestAllowAtExact compares the Limiter with the definition, by brute force over thousands of
// seeded arrivals from a few callers: an operation is allowed exactly when fewer than Limit of
// the caller's allowed operations lie in (t-Per, t], and a refusal's wait is exactly the time
// until one leaves.
func TestAllowAtExact(t *testing.T) {
	t.Parallel()
	const limit = 5
	per := 10 * time.Second
	rng := rand.New(rand.NewPCG(1, 2))
	l := New(Options{Limit: limit, Per: per})
	l.epoch = t0
	allowed := map[string][]time.Time{}
	at := t0
	for i := range 20000 {
		if rng.IntN(3) > 0 {
			at = at.Add(time.Duration(rng.Int64N(int64(per / 2))))
		}
		caller := []string{"a", "a", "a", "b", "c"}[rng.IntN(5)]
		var in []time.Time // the caller's allowed operations in (at-per, at]
		for _, e := range allowed[caller] {
			if e.Add(per).After(at) {
				in = append(in, e)
			}
		}
		ok, retry := l.AllowAt(caller, at)
		switch {
		case ok != (len(in) < limit):
			t.Fatalf("arrival %d: AllowAt(%s) = %v with %d in the window, limit %d", i, caller, ok, len(in), limit)
		case !ok && retry != in[0].Add(per).Sub(at):
			t.Fatalf("arrival %d: retry after %v, want %v", i, retry, in[0].Add(per).Sub(at))
		case ok:
			allowed[caller] = append(in, at)
		}
	}
}

// TestForgetsIdleCallers checks that memory follows recent callers: a caller idle for a window
// is forgotten at the next sweep, and one caller's log never holds more than Limit times.
func TestForgetsIdleCallers(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := New(Options{Limit: 100})
		for i := range 1000 {
			l.Allow(principal.Anonymous("192.0.2." + string(rune('0'+i%10)) + ":1").ID())
			l.Allow("apikey:busy")
		}
		if got := l.Callers(); got != 11 {
			t.Errorf("Callers() = %d, want 11", got)
		}
		l.mu.Lock()
		if n := cap(l.callers["apikey:busy"].times); n != 100 {
			t.Errorf("the busy caller's log holds %d, want the limit, 100", n)
		}
		if n := cap(l.callers["addr:192.0.2.1"].times); n != 100 {
			t.Errorf("a caller with 100 operations holds %d, want 100", n)
		}
		l.mu.Unlock()
		time.Sleep(30 * time.Second)
		l.Allow("apikey:busy") // still in the window: nobody is forgotten yet
		if got := l.Callers(); got != 11 {
			t.Errorf("after 30 s: Callers() = %d, want 11", got)
		}
		time.Sleep(30 * time.Second)
		l.Allow("apikey:busy")
		if got := l.Callers(); got != 1 {
			t.Errorf("after a minute: Callers() = %d, want 1 (the others were idle for the window)", got)
		}
	})
}

func TestHandler(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var refused []string
		l := New(Options{Limit: 2, OnRefuse: func(ctx context.Context) {
			p, _ := principal.FromContext(ctx)
			refused = append(refused, p.ID())
		}})
		served := 0
		h := l.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			served++
			w.WriteHeader(http.StatusOK)
		}))
		do := func(method, remoteAddr string) *httptest.ResponseRecorder {
			r := httptest.NewRequest(method, "/query", nil)
			r = r.WithContext(principal.NewContext(r.Context(), principal.Anonymous(remoteAddr)))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			return rec
		}
		for _, m := range []string{http.MethodPost, http.MethodGet, http.MethodOptions, http.MethodHead} {
			if rec := do(m, "192.0.2.1:1000"); rec.Code != http.StatusOK {
				t.Errorf("%s: status %d, want 200 (two operations a minute; OPTIONS and HEAD are not operations)", m, rec.Code)
			}
		}
		time.Sleep(20*time.Second + time.Millisecond)
		rec := do(http.MethodPost, "192.0.2.1:2000") // same caller, another port
		if rec.Code != http.StatusTooManyRequests {
			t.Fatalf("third operation: status %d, want 429", rec.Code)
		}
		if got := rec.Header().Get("Retry-After"); got != "40" {
			t.Errorf("Retry-After %q, want 40 (39.999 s rounded up)", got)
		}
		if got := rec.Header().Get("Cache-Control"); got != "no-store" {
			t.Errorf("Cache-Control %q, want no-store", got)
		}
		if got := rec.Header().Get("Content-Type"); got != "application/json" {
			t.Errorf("Content-Type %q, want application/json", got)
		}
		var body map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("body %q: %v", rec.Body, err)
		}
		want := map[string]any{"errors": []any{map[string]any{
			"message":    "too many operations from this caller (addr:192.0.2.1): at most 2 per minute; retry in 40 s",
			"extensions": map[string]any{"code": resolvers.CodeRateLimited, "retryAfter": 40.0},
		}}}
		if !reflect.DeepEqual(body, want) {
			t.Errorf("body\n%v, want\n%v", body, want)
		}
		if rec := do(http.MethodPost, "192.0.2.2:1000"); rec.Code != http.StatusOK {
			t.Errorf("another caller: status %d, want 200", rec.Code)
		}
		if served != 5 || !reflect.DeepEqual(refused, []string{"addr:192.0.2.1"}) {
			t.Errorf("served %d, refused %v; want 5 and the first caller once", served, refused)
		}
		time.Sleep(40 * time.Second)
		if rec := do(http.MethodPost, "192.0.2.1:1000"); rec.Code != http.StatusOK {
			t.Errorf("after Retry-After: status %d, want 200", rec.Code)
		}
	})
}

func TestRetrySeconds(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]int{
		0:                    1,
		time.Nanosecond:      1,
		time.Second:          1,
		time.Second + 1:      2,
		59*time.Second + 1e8: 60,
	} {
		if got := retrySeconds(d); got != want {
			t.Errorf("retrySeconds(%v) = %d, want %d", d, got, want)
		}
	}
}

func BenchmarkAllow(b *testing.B) {
	ids := []string{"addr:192.0.2.1", "addr:192.0.2.2", "apikey:frontend", "user:t/o"}
	for _, bb := range []struct {
		name  string
		limit int
	}{
		{"allowed", 1 << 22}, // logs up to 32 MiB each: no refusal within the benchmark
		{"refused", 100},
	} {
		b.Run(bb.name, func(b *testing.B) {
			l := New(Options{Limit: bb.limit, Per: time.Hour})
			i := 0
			for b.Loop() {
				l.Allow(ids[i%len(ids)])
				i++
			}
		})
	}
}
