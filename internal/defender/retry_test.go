package defender

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mdegraph/mdegraph/internal/logtest"
)

// These tests run in a synctest bubble with a fake transport: time only moves when every
// goroutine is blocked, so waits are exact and take no real time.

func TestRetry_TransientThenSuccess(t *testing.T) {
	t.Parallel()
	unavailable := status(503, `{"error":{"code":"ServiceUnavailable","message":"busy"}}`)
	internal := status(500, `{"error":{"code":"InternalServerError","message":"oops"}}`)
	ok := status(200, machineJSON)
	tests := []struct {
		name  string
		steps []func(*http.Request) (*http.Response, error)
	}{
		{"no failure", nil},
		{"one 503", []func(*http.Request) (*http.Response, error){unavailable}},
		{"500 then 503", []func(*http.Request) (*http.Response, error){internal, unavailable}},
		{"network error", []func(*http.Request) (*http.Response, error){netFailure}},
		{"network error then 502", []func(*http.Request) (*http.Response, error){netFailure, status(502, "")}},
		{"504", []func(*http.Request) (*http.Response, error){status(504, "")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				tr := &fakeTransport{fn: sequence(append(tt.steps, ok)...)}
				lim := &fakeLimiter{}
				client := fakeClient(t, tr, func(o *Options) { o.Limiter = lim })
				m, resp, err := client.Machines.Get(t.Context(), deviceID)
				if err != nil {
					t.Fatalf("Get: %v", err)
				}
				want := len(tt.steps) + 1
				assertEqual(t, "id", m.ID, deviceID)
				assertEqual(t, "attempts", resp.Attempts, want)
				assertEqual(t, "transport calls", tr.calls(), want)
				assertEqual(t, "status", resp.StatusCode, 200)
				waits, pauses := lim.recorded()
				assertEqual(t, "limiter waits (one per attempt)", len(waits), want)
				assertEqual(t, "pauses", len(pauses), 0)
			})
		})
	}
}

func TestRetry_MaxRetries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		maxRetries, wantAttempts int
	}{
		{-1, 1},
		{0, 3}, // the default, 2 retries
		{1, 2},
		{5, 6},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.maxRetries), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				tr := &fakeTransport{fn: sequence(status(503, `{"error":{"code":"ServiceUnavailable","message":"busy","target":"t-503"}}`))}
				client := fakeClient(t, tr, func(o *Options) { o.MaxRetries = tt.maxRetries })
				_, resp, err := client.Machines.Get(t.Context(), deviceID)
				er := errorAs[*ErrorResponse](t, err)
				assertEqual(t, "status", er.StatusCode, 503)
				assertEqual(t, "target", er.Target, "t-503")
				assertEqual(t, "attempts", resp.Attempts, tt.wantAttempts)
				assertEqual(t, "transport calls", tr.calls(), tt.wantAttempts)
			})
		})
	}
}

func TestRetry_BackoffWaits(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var at []time.Time
		tr := &fakeTransport{fn: func(n int, req *http.Request) (*http.Response, error) {
			at = append(at, time.Now())
			return answer(req, 500, ""), nil
		}}
		client := fakeClient(t, tr, func(o *Options) {
			o.MaxRetries = 4
			o.RetryBaseDelay = time.Second
			o.RetryMaxDelay = 3 * time.Second
		})
		_, _, err := client.Machines.Get(t.Context(), deviceID)
		errorAs[*ErrorResponse](t, err)
		if len(at) != 5 {
			t.Fatalf("got %d attempts, want 5", len(at))
		}
		// Full jitter over the upper half: retry n waits between d/2 and d, d = min(base·2^(n-1), max).
		for n, d := range []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second} {
			if gap := at[n+1].Sub(at[n]); gap < d/2 || gap > d {
				t.Errorf("wait before retry %d: got %v, want between %v and %v", n+1, gap, d/2, d)
			}
		}
	})
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	c, err := New(Options{BaseURL: "https://x.test", RetryBaseDelay: 100 * time.Millisecond, RetryMaxDelay: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= 80; n++ {
		// d = min(base·2^(n-1), max), computed without overflowing for large n.
		d := 100 * time.Millisecond
		for i := 1; i < n && d < 2*time.Second; i++ {
			d *= 2
		}
		d = min(d, 2*time.Second)
		for range 50 {
			if got := c.backoff(n); got < d/2 || got > d {
				t.Fatalf("backoff(%d) = %v, want between %v and %v", n, got, d/2, d)
			}
		}
	}
}

func TestRetry_NotRetried(t *testing.T) {
	t.Parallel()
	for _, code := range []int{400, 401, 403, 404, 409, 422} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				tr := &fakeTransport{fn: sequence(status(code, `{"error":{"code":"X","message":"no"}}`), status(200, machineJSON))}
				lim := &fakeLimiter{}
				client := fakeClient(t, tr, func(o *Options) { o.Limiter = lim; o.MaxRetries = 5 })
				_, resp, err := client.Machines.Get(t.Context(), deviceID)
				er := errorAs[*ErrorResponse](t, err)
				assertEqual(t, "status", er.StatusCode, code)
				assertEqual(t, "attempts", resp.Attempts, 1)
				assertEqual(t, "transport calls", tr.calls(), 1)
				waits, _ := lim.recorded()
				assertEqual(t, "limiter waits", len(waits), 1)
			})
		})
	}
}

func TestRetry_429WithLimiter(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		tr := &fakeTransport{fn: sequence(
			status(429, `{"error":{"code":"TooManyRequests","message":"Rate limit is exceeded","target":"t-429"}}`, "Retry-After", "30"),
			status(200, `{"value":[]}`),
		)}
		lim := &fakeLimiter{}
		rec := &callRecorder{}
		var logs logtest.Buffer
		client := fakeClient(t, tr, func(o *Options) {
			o.Limiter = lim
			o.Observe = rec.observe
			o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		})
		users, resp, err := client.Machines.LogonUsers(t.Context(), deviceID)
		// A 429 means something else spends the quota: the operator hears of it at the default level.
		if l := logs.String(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, "answered 429") || !strings.Contains(l, "correlation_id=t-429") {
			t.Errorf("log %q, want a WARN line about the 429 with its correlation id", l)
		}
		if err != nil {
			t.Fatalf("LogonUsers: %v", err)
		}
		assertEqual(t, "users", len(users), 0)
		assertEqual(t, "attempts", resp.Attempts, 2)
		waits, pauses := lim.recorded()
		assertEqual(t, "waits", fmt.Sprint(waits), "[machines.logonusers machines.logonusers]")
		if len(pauses) != 1 {
			t.Fatalf("got %d pauses, want 1", len(pauses))
		}
		assertEqual(t, "paused family", pauses[0].family, string(EndpointLogonUsers))
		assertEqual(t, "paused until", pauses[0].until, start.Add(30*time.Second))
		// With a limiter the waiting is the limiter's: the client itself does not sleep.
		assertEqual(t, "time spent in the client", time.Since(start), time.Duration(0))
		calls := rec.all()
		assertEqual(t, "observed", len(calls), 2)
		assertEqual(t, "first observed status", calls[0].Status, 429)
		assertEqual(t, "first observed correlation id", calls[0].CorrelationID, "t-429")
	})
}

func TestRetry_429HTTPDate(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		date := start.Add(90 * time.Second).UTC().Format(http.TimeFormat)
		tr := &fakeTransport{fn: sequence(status(429, "", "Retry-After", date))}
		lim := &fakeLimiter{}
		client := fakeClient(t, tr, func(o *Options) { o.Limiter = lim; o.MaxRateLimitRetries = -1 })
		_, _, err := client.Machines.Get(t.Context(), deviceID)
		rl := errorAs[*RateLimitError](t, err)
		assertEqual(t, "RetryAfter", rl.RetryAfter, 90*time.Second)
		_, pauses := lim.recorded()
		if len(pauses) != 1 {
			t.Fatalf("got %d pauses, want 1", len(pauses))
		}
		assertEqual(t, "paused until", pauses[0].until, start.Add(90*time.Second))
	})
}

func TestRetry_MaxRateLimitRetries(t *testing.T) {
	t.Parallel()
	tests := []struct{ max, wantAttempts int }{{-1, 1}, {0, 3}, {1, 2}, {4, 5}}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.max), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				tr := &fakeTransport{fn: sequence(status(429, "", "Retry-After", "5"))}
				lim := &fakeLimiter{}
				client := fakeClient(t, tr, func(o *Options) { o.Limiter = lim; o.MaxRateLimitRetries = tt.max })
				_, resp, err := client.Machines.List(t.Context(), ListOptions{})
				rl := errorAs[*RateLimitError](t, err)
				assertEqual(t, "RetryAfter", rl.RetryAfter, 5*time.Second)
				assertEqual(t, "endpoint", rl.Endpoint, EndpointMachines)
				assertEqual(t, "attempts", resp.Attempts, tt.wantAttempts)
				waits, pauses := lim.recorded()
				assertEqual(t, "waits", len(waits), tt.wantAttempts)
				assertEqual(t, "pauses (one per 429)", len(pauses), tt.wantAttempts)
			})
		})
	}
}

func TestRetry_429WithoutLimiter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		timeout      time.Duration // 0: no deadline
		retryAfter   string
		wantErr      bool
		wantAttempts int
		wantElapsed  time.Duration
	}{
		{"no deadline: waits Retry-After", 0, "30", false, 2, 30 * time.Second},
		{"deadline allows the wait", time.Minute, "5", false, 2, 5 * time.Second},
		{"deadline too close: gives up at once", 10 * time.Second, "30", true, 1, 0},
		{"Retry-After 0", time.Minute, "0", false, 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				ctx := t.Context()
				if tt.timeout > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tt.timeout)
					defer cancel()
				}
				tr := &fakeTransport{fn: sequence(status(429, "", "Retry-After", tt.retryAfter), status(200, machineJSON))}
				client := fakeClient(t, tr)
				start := time.Now()
				_, resp, err := client.Machines.Get(ctx, deviceID)
				if tt.wantErr {
					errorAs[*RateLimitError](t, err)
				} else if err != nil {
					t.Fatalf("Get: %v", err)
				}
				assertEqual(t, "attempts", resp.Attempts, tt.wantAttempts)
				assertEqual(t, "elapsed", time.Since(start), tt.wantElapsed)
			})
		})
	}
}

// quotaError stands for the limiter's own error type (package quota's).
type quotaError struct{ retryIn time.Duration }

func (e *quotaError) Error() string { return fmt.Sprintf("quota exhausted, retry in %s", e.retryIn) }

func TestLimiterWaitError(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		tr := &fakeTransport{fn: sequence(status(200, machineJSON))}
		lim := &fakeLimiter{err: &quotaError{retryIn: 42 * time.Second}}
		rec := &callRecorder{}
		client := fakeClient(t, tr, func(o *Options) { o.Limiter = lim; o.Observe = rec.observe })
		_, resp, err := client.Machines.Get(t.Context(), deviceID)
		qe := errorAs[*quotaError](t, err)
		assertEqual(t, "retryIn", qe.retryIn, 42*time.Second)
		if err == error(qe) {
			t.Error("limiter error returned bare: want it wrapped with the endpoint")
		}
		assertEqual(t, "attempts", resp.Attempts, 0)
		assertEqual(t, "transport calls", tr.calls(), 0)
		assertEqual(t, "observed", len(rec.all()), 0)
	})
}

func TestLimiterWaitError_AfterCancellation(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		lim := &cancellingLimiter{cancel: cancel}
		tr := &fakeTransport{fn: sequence(status(200, machineJSON))}
		client := fakeClient(t, tr, func(o *Options) { o.Limiter = lim })
		_, _, err := client.Machines.Get(ctx, deviceID)
		if err != context.Canceled {
			t.Errorf("got %v, want context.Canceled itself", err)
		}
		assertEqual(t, "transport calls", tr.calls(), 0)
	})
}

// cancellingLimiter cancels the caller's context and fails, as a real limiter does when the
// caller gives up while waiting in line.
type cancellingLimiter struct{ cancel context.CancelFunc }

func (l *cancellingLimiter) Take(ctx context.Context, family string) (time.Time, error) {
	l.cancel()
	return time.Time{}, errors.New("wait aborted")
}

func (l *cancellingLimiter) Refund(string, time.Time) {}

func (l *cancellingLimiter) Pause(string, time.Time) {}

func TestCancellation(t *testing.T) {
	t.Parallel()
	busy := status(503, `{"error":{"code":"ServiceUnavailable","message":"busy"}}`)
	tests := []struct {
		name string
		fn   func(int, *http.Request) (*http.Response, error)
		opts func(*Options)
	}{
		{"while the request is in flight", sequence(blockUntilDone), nil},
		{"during the backoff after a 5xx", sequence(busy),
			func(o *Options) { o.RetryBaseDelay, o.RetryMaxDelay = time.Minute, time.Minute }},
		{"during the backoff after a network error", sequence(netFailure),
			func(o *Options) { o.RetryBaseDelay, o.RetryMaxDelay = time.Minute, time.Minute }},
		{"during the Retry-After wait without a limiter", sequence(status(429, "", "Retry-After", "600")), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				tr := &fakeTransport{fn: tt.fn}
				var opts []func(*Options)
				if tt.opts != nil {
					opts = append(opts, tt.opts)
				}
				client := fakeClient(t, tr, opts...)
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan error, 1)
				go func() {
					_, _, err := client.Machines.Get(ctx, deviceID)
					done <- err
				}()
				synctest.Wait() // the call is now blocked: in flight or waiting to retry
				assertEqual(t, "transport calls before cancel", tr.calls(), 1)
				cancel()
				if err := <-done; err != context.Canceled {
					t.Errorf("got %v (%T), want context.Canceled itself", err, err)
				}
				assertEqual(t, "transport calls", tr.calls(), 1)
			})
		})
	}
}

func TestCancellation_Before(t *testing.T) {
	t.Parallel()
	tr := &fakeTransport{fn: sequence(status(200, machineJSON))}
	lim := &fakeLimiter{}
	client := fakeClient(t, tr, func(o *Options) { o.Limiter = lim })
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, resp, err := client.Machines.Get(ctx, deviceID)
	if err != context.Canceled {
		t.Errorf("got %v, want context.Canceled", err)
	}
	assertEqual(t, "attempts", resp.Attempts, 0)
	waits, _ := lim.recorded()
	assertEqual(t, "limiter waits", len(waits), 0)
}

func TestDeadlineExceeded_InFlight(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		tr := &fakeTransport{fn: sequence(blockUntilDone)}
		client := fakeClient(t, tr)
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		start := time.Now()
		_, resp, err := client.Machines.Get(ctx, deviceID)
		if err != context.DeadlineExceeded {
			t.Errorf("got %v (%T), want context.DeadlineExceeded itself", err, err)
		}
		assertEqual(t, "attempts", resp.Attempts, 1)
		assertEqual(t, "elapsed", time.Since(start), 5*time.Second)
	})
}

func TestAttemptTimeout(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var deadlines []time.Duration
		tr := &fakeTransport{fn: func(n int, req *http.Request) (*http.Response, error) {
			d, _ := req.Context().Deadline()
			deadlines = append(deadlines, time.Until(d))
			if n < 3 {
				return blockUntilDone(req)
			}
			return answer(req, 200, machineJSON), nil
		}}
		client := fakeClient(t, tr, func(o *Options) { o.AttemptTimeout = 7 * time.Second })
		m, resp, err := client.Machines.Get(t.Context(), deviceID)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		assertEqual(t, "id", m.ID, deviceID)
		assertEqual(t, "attempts", resp.Attempts, 3)
		for i, d := range deadlines {
			assertEqual(t, fmt.Sprintf("attempt %d deadline", i+1), d, 7*time.Second)
		}
	})
}

func TestAttemptTimeout_Exhausted(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		tr := &fakeTransport{fn: sequence(blockUntilDone)}
		client := fakeClient(t, tr, func(o *Options) { o.AttemptTimeout = time.Second; o.MaxRetries = 1 })
		_, resp, err := client.Machines.Get(t.Context(), deviceID)
		ue := errorAs[*UnavailableError](t, err)
		if !errors.Is(ue.Err, context.DeadlineExceeded) {
			t.Errorf("cause %v: want the attempt's deadline", ue.Err)
		}
		assertEqual(t, "attempts", resp.Attempts, 2)
		assertEqual(t, "status", resp.StatusCode, 0)
	})
}

func TestObserve(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		tr := &fakeTransport{fn: sequence(
			netFailure,
			status(500, `{"error":{"code":"InternalServerError","message":"x","target":"t-500"}}`),
			func(req *http.Request) (*http.Response, error) {
				<-time.After(1500 * time.Millisecond) // a slow answer, in bubble time
				return answer(req, 200, `{"value":[]}`), nil
			},
		)}
		rec := &callRecorder{}
		client := fakeClient(t, tr, func(o *Options) { o.Observe = rec.observe })
		if _, _, err := client.Machines.List(t.Context(), ListOptions{Top: 1}); err != nil {
			t.Fatalf("List: %v", err)
		}
		calls := rec.all()
		if len(calls) != 3 {
			t.Fatalf("observed %d calls, want 3: %+v", len(calls), calls)
		}
		want := []struct {
			status      int
			correlation string
			failed      bool
			duration    time.Duration
		}{
			{0, "", true, 0},
			{500, "t-500", true, 0},
			{200, "", false, 1500 * time.Millisecond},
		}
		for i, w := range want {
			c := calls[i]
			assertEqual(t, fmt.Sprintf("call %d endpoint", i+1), c.Endpoint, EndpointMachines)
			assertEqual(t, fmt.Sprintf("call %d attempt", i+1), c.Attempt, i+1)
			assertEqual(t, fmt.Sprintf("call %d status", i+1), c.Status, w.status)
			assertEqual(t, fmt.Sprintf("call %d correlation id", i+1), c.CorrelationID, w.correlation)
			assertEqual(t, fmt.Sprintf("call %d failed", i+1), c.Err != nil, w.failed)
			assertEqual(t, fmt.Sprintf("call %d duration", i+1), c.Duration, w.duration)
		}
	})
}
