package loaders

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mdegraph/mdegraph/internal/defender"
	"github.com/mdegraph/mdegraph/internal/quota"
	"github.com/mdegraph/mdegraph/internal/upstreamauth"
)

// Failures the upstream can answer with, and what each means for a stale answer.
var (
	errQuotaSpent  = fmt.Errorf("defender machines.logonusers: %w", &quota.ExceededError{RetryAfter: 30 * time.Second})
	err429         = &defender.RateLimitError{ErrorResponse: defender.ErrorResponse{StatusCode: 429}, RetryAfter: time.Minute}
	err500         = &defender.ErrorResponse{StatusCode: 500, Code: "InternalServerError"}
	err503         = &defender.ErrorResponse{StatusCode: 503}
	errNetwork     = &defender.UnavailableError{Err: errors.New("connection refused")}
	errNoToken     = &defender.UnavailableError{Err: errors.New("get a token: dial tcp: connection refused")}
	errToken503    = &upstreamauth.Error{Kind: upstreamauth.Unavailable, StatusCode: 503, Code: "temporarily_unavailable"}
	errTokenDenied = &upstreamauth.Error{Kind: upstreamauth.Refused, StatusCode: 401, Code: "invalid_client"}
	err400         = &defender.ErrorResponse{StatusCode: 400, Code: "BadRequest"}
	err401         = &defender.ErrorResponse{StatusCode: 401, Code: "Unauthorized"}
	err403         = &defender.ErrorResponse{StatusCode: 403, Code: "Forbidden"}
	err404         = &defender.ErrorResponse{StatusCode: 404, Code: "ResourceNotFound"}
)

func TestStaleReason(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err        error
		wantReason string // "" when no stale answer may stand in
		wantForget bool
	}{
		{errQuotaSpent, ReasonRateLimited, false},
		{err429, ReasonRateLimited, false},
		{err500, ReasonUnavailable, false},
		{err503, ReasonUnavailable, false},
		{errNetwork, ReasonUnavailable, false},
		{errNoToken, ReasonUnavailable, false},
		{errToken503, ReasonUnavailable, false},
		{&upstreamauth.Error{Kind: upstreamauth.Throttled, StatusCode: 429}, ReasonRateLimited, false},
		{fmt.Errorf("%w: %w", err401, &upstreamauth.Error{Kind: upstreamauth.Rejected}), "", true},
		{context.DeadlineExceeded, ReasonUnavailable, false},
		{fmt.Errorf("wrapped: %w", context.DeadlineExceeded), ReasonUnavailable, false},
		{context.Canceled, "", false},
		{err400, "", false},
		{err401, "", true},
		{err403, "", true},
		{errTokenDenied, "", true},
		{err404, "", false}, // a 404 replaces the answer instead (settleError)
		{errors.New("a bug"), "", false},
	}
	for _, tt := range tests {
		reason, ok := staleReason(tt.err)
		if ok != (tt.wantReason != "") || reason != tt.wantReason && ok {
			t.Errorf("staleReason(%v) = %q, %v; want %q", tt.err, reason, ok, tt.wantReason)
		}
		if got := forgets(tt.err); got != tt.wantForget {
			t.Errorf("forgets(%v) = %v, want %v", tt.err, got, tt.wantForget)
		}
	}
}

func TestStaleLimitHeader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		values []string
		want   time.Duration
		ok     bool
	}{
		{nil, 0, false},
		{[]string{"no-cache"}, 0, false},
		{[]string{"stale-if-error=0"}, 0, true},
		{[]string{"stale-if-error=300"}, 5 * time.Minute, true},
		{[]string{"max-age=0, Stale-If-Error = 60"}, time.Minute, true},
		{[]string{`stale-if-error="30"`}, 30 * time.Second, true},
		{[]string{"no-store", "stale-if-error=10"}, 10 * time.Second, true},
		{[]string{"stale-if-error"}, 0, false},
		{[]string{"stale-if-error=-1"}, 0, false},
		{[]string{"stale-if-error=soon"}, 0, false},
		{[]string{"stale-if-error=99999999999"}, 0, false},
		{[]string{"x-stale-if-error=0"}, 0, false},
	}
	for _, tt := range tests {
		h := http.Header{}
		for _, v := range tt.values {
			h.Add("Cache-Control", v)
		}
		got, ok := staleLimit(h)
		if got != tt.want || ok != tt.ok {
			t.Errorf("staleLimit(%q) = %v, %v; want %v, %v", tt.values, got, ok, tt.want, tt.ok)
		}
	}
}

func FuzzStaleLimitHeader(f *testing.F) {
	for _, s := range []string{"stale-if-error=0", "max-age=1, stale-if-error=60", `stale-if-error="5"`, "stale-if-error=", ",,=,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		d, ok := staleLimit(http.Header{"Cache-Control": {v}})
		if d < 0 || !ok && d != 0 {
			t.Errorf("staleLimit(%q) = %v, %v", v, d, ok)
		}
	})
}

// staleFetcher answers every device of src once, so that the cache holds an answer for each,
// and lets the clock run past the answers' freshness.
func staleFetcher(t *testing.T, src *fakeSource, staleTTL time.Duration, obs Observer) *Fetcher {
	t.Helper()
	f := NewFetcher(Options{Source: src, CacheTTL: time.Minute, NotFoundTTL: 10 * time.Second, StaleTTL: staleTTL, Observer: obs})
	for _, r := range f.LogonUsers(appCtx(), ids(3)) {
		if r.Err != nil || r.Stale != nil {
			t.Fatalf("first answer: %+v", r)
		}
	}
	for _, r := range f.Machines(appCtx(), ids(2)) { // a list call
		if r.Err != nil || r.Stale != nil {
			t.Fatalf("first answer: %+v", r)
		}
	}
	if r := f.Machines(appCtx(), []string{"host-2.contoso.local"})[0]; r.Err != nil { // by name
		t.Fatalf("first answer: %+v", r)
	}
	return f
}

// TestFetcherServesStale: once an answer's freshness has passed, a failure that says nothing
// about the answer itself gets the answer kept, marked with its age and the reason, for
// STALE_TTL after the upstream gave it; anything else gets the error.
func TestFetcherServesStale(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err        error
		wantReason string // "" for the error itself
	}{
		{errQuotaSpent, ReasonRateLimited},
		{err429, ReasonRateLimited},
		{err500, ReasonUnavailable},
		{errNetwork, ReasonUnavailable},
		{errNoToken, ReasonUnavailable},
		{errToken503, ReasonUnavailable},
		{context.DeadlineExceeded, ReasonUnavailable},
		{err400, ""},
		{err401, ""},
		{err403, ""},
		{errTokenDenied, ""},
		{err404, ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.err), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				src := newFakeSource(3)
				obs := &savings{}
				f := staleFetcher(t, src, time.Hour, obs)
				time.Sleep(2 * time.Minute) // past CACHE_TTL
				src.failWith = tt.err
				results := map[string]Result[any]{}
				for i, r := range f.LogonUsers(appCtx(), ids(3)) {
					results["logonusers "+deviceID(i)] = Result[any]{Value: r.Value, Err: r.Err, Stale: r.Stale}
				}
				for i, r := range f.Machines(appCtx(), ids(2)) {
					results["list "+deviceID(i)] = Result[any]{Value: r.Value, Err: r.Err, Stale: r.Stale}
				}
				for _, r := range f.Machines(appCtx(), []string{"host-2.contoso.local"}) {
					results["by name"] = Result[any]{Value: r.Value, Err: r.Err, Stale: r.Stale}
				}
				for what, r := range results {
					if tt.wantReason == "" {
						if r.Err == nil || r.Stale != nil {
							t.Errorf("%s: got %+v, want the error %v", what, r, tt.err)
						}
						continue
					}
					if r.Err != nil || r.Stale == nil {
						t.Errorf("%s: got %+v, want a stale answer", what, r)
						continue
					}
					if r.Stale.Age != 2*time.Minute || r.Stale.Reason != tt.wantReason || r.Stale.Err == nil {
						t.Errorf("%s: stale %+v, want age 2m0s, reason %s and the error", what, r.Stale, tt.wantReason)
					}
				}
				wantStale := 0
				if tt.wantReason != "" {
					wantStale = len(results)
				}
				got := obs.get(defender.EndpointLogonUsers, "stale/"+tt.wantReason) + obs.get(defender.EndpointMachine, "stale/"+tt.wantReason)
				if got != wantStale {
					t.Errorf("stale answers counted: %d, want %d", got, wantStale)
				}
			})
		})
	}
}

// TestFetcherStaleNeverAfterRefusalOrNotFound: a 401, 403 or 404 drops the answer kept, so a
// later outage gets the error, not what Defender no longer shows this service.
func TestFetcherStaleNeverAfterRefusalOrNotFound(t *testing.T) {
	t.Parallel()
	for _, refusal := range []error{err401, err403, errTokenDenied, err404} {
		t.Run(fmt.Sprint(refusal), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				src := newFakeSource(3)
				f := staleFetcher(t, src, time.Hour, nil)
				time.Sleep(2 * time.Minute)
				src.failWith = refusal
				f.LogonUsers(appCtx(), ids(1))
				time.Sleep(time.Minute) // past NOT_FOUND_TTL too
				src.failWith = err503
				if r := f.LogonUsers(appCtx(), ids(1))[0]; r.Err == nil || r.Stale != nil {
					t.Errorf("after %v, an outage got %+v, want the error", refusal, r)
				}
				if r := f.LogonUsers(appCtx(), []string{deviceID(1)})[0]; r.Stale == nil {
					t.Errorf("another device, untouched by %v: got %+v, want a stale answer", refusal, r)
				}
			})
		})
	}
}

func TestFetcherStaleAgeLimits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		staleTTL time.Duration
		limit    *time.Duration // WithStaleLimit, from Cache-Control: stale-if-error
		age      time.Duration
		want     bool
	}{
		{"young enough", time.Hour, nil, 59 * time.Minute, true},
		{"as old as STALE_TTL", time.Hour, nil, time.Hour, false},
		{"STALE_TTL=0 serves nothing stale", 0, nil, 2 * time.Minute, false},
		{"stale-if-error=0 refuses", time.Hour, ptr(time.Duration(0)), 2 * time.Minute, false},
		{"stale-if-error above the age", time.Hour, ptr(5 * time.Minute), 2 * time.Minute, true},
		{"stale-if-error below the age", time.Hour, ptr(time.Minute), 2 * time.Minute, false},
		{"stale-if-error never extends STALE_TTL", 90 * time.Second, ptr(time.Hour), 2 * time.Minute, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				src := newFakeSource(3)
				f := staleFetcher(t, src, tt.staleTTL, nil)
				time.Sleep(tt.age)
				src.failWith = err503
				ctx := appCtx()
				if tt.limit != nil {
					ctx = WithStaleLimit(ctx, *tt.limit)
				}
				r := f.LogonUsers(ctx, ids(1))[0]
				if got := r.Stale != nil; got != tt.want || got == (r.Err != nil) {
					t.Errorf("got %+v, want stale %v", r, tt.want)
				}
			})
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestFetcherStaleKeepsIdentitiesApart: a stale answer is one the same identity was given.
func TestFetcherStaleKeepsIdentitiesApart(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		src := newFakeSource(1)
		f := NewFetcher(Options{Source: src, CacheTTL: time.Minute, StaleTTL: time.Hour})
		alice := WithIdentity(context.Background(), "user:alice")
		bob := WithIdentity(context.Background(), "user:bob")
		f.LogonUsers(alice, ids(1))
		time.Sleep(2 * time.Minute)
		src.failWith = err503
		if r := f.LogonUsers(bob, ids(1))[0]; r.Err == nil || r.Stale != nil {
			t.Errorf("bob got %+v, want the error: the answer kept is alice's", r)
		}
		if r := f.LogonUsers(alice, ids(1))[0]; r.Stale == nil {
			t.Errorf("alice got %+v, want her stale answer", r)
		}
	})
}

// TestFetcherStaleWithCacheOff: CACHE_TTL=0 reuses nothing fresh, yet keeps the last good
// answer for when the next call fails.
func TestFetcherStaleWithCacheOff(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		src := newFakeSource(1)
		f := NewFetcher(Options{Source: src, CacheTTL: 0, StaleTTL: time.Hour})
		f.LogonUsers(appCtx(), ids(1))
		f.LogonUsers(appCtx(), ids(1))
		if _, _, n := src.calls(); n != 2 {
			t.Errorf("%d calls, want 2: nothing is reused fresh with CACHE_TTL=0", n)
		}
		time.Sleep(time.Second)
		src.failWith = errQuotaSpent
		if r := f.LogonUsers(appCtx(), ids(1))[0]; r.Stale == nil || r.Stale.Age != time.Second {
			t.Errorf("got %+v, want a stale answer 1s old", r)
		}
	})
}

// TestFetcherStaleWhenTheCallerStops: while Defender hangs, a caller who went away gets its
// cancellation, and a caller whose deadline passes gets the answer kept.
func TestFetcherStaleWhenTheCallerStops(t *testing.T) {
	t.Parallel()
	for _, cancelled := range []bool{true, false} {
		synctest.Test(t, func(t *testing.T) {
			src := newFakeSource(3)
			f := staleFetcher(t, src, time.Hour, nil)
			time.Sleep(2 * time.Minute)
			src.gate = make(chan struct{}) // Defender hangs
			ctx, cancel := context.WithTimeout(appCtx(), 30*time.Second)
			defer cancel()
			done := make(chan Result[[]defender.User])
			go func() { done <- f.LogonUsers(ctx, ids(1))[0] }()
			if cancelled {
				synctest.Wait()
				cancel()
			}
			r := <-done
			switch {
			case cancelled && (!errors.Is(r.Err, context.Canceled) || r.Stale != nil):
				t.Errorf("cancelled: got %+v, want context.Canceled", r)
			case !cancelled && (r.Stale == nil || r.Stale.Reason != ReasonUnavailable || r.Stale.Age != 2*time.Minute+30*time.Second):
				t.Errorf("past the deadline: got %+v, want a stale answer 2m30s old, UPSTREAM_UNAVAILABLE", r)
			}
			close(src.gate)
		})
	}
}
