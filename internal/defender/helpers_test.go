package defender

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// assertEqual fails the test when got != want.
func assertEqual[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s: got %v, want %v", what, got, want)
	}
}

// errorAs fails the test unless err is (or wraps) an error of type E, and returns it.
func errorAs[E error](t *testing.T, err error) E {
	t.Helper()
	var target E
	if !errors.As(err, &target) {
		t.Fatalf("error %v (%T): want a %T in its chain", err, err, target)
	}
	return target
}

// fakeTransport answers requests with fn, counting them. It touches no network, so it works
// inside a synctest bubble.
type fakeTransport struct {
	mu   sync.Mutex
	reqs []*http.Request
	fn   func(n int, req *http.Request) (*http.Response, error)
}

func (f *fakeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	n := len(f.reqs)
	f.mu.Unlock()
	return f.fn(n, req)
}

func (f *fakeTransport) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

// answer builds a response with status, body and header key/value pairs.
func answer(req *http.Request, status int, body string, kv ...string) *http.Response {
	h := http.Header{"Content-Type": {"application/json; odata.metadata=minimal"}}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return &http.Response{
		StatusCode: status, Status: http.StatusText(status), Header: h, Request: req,
		Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)),
	}
}

// sequence answers the n-th request (1-based) with steps[n-1], repeating the last step.
func sequence(steps ...func(*http.Request) (*http.Response, error)) func(int, *http.Request) (*http.Response, error) {
	return func(n int, req *http.Request) (*http.Response, error) {
		return steps[min(n, len(steps))-1](req)
	}
}

func status(code int, body string, kv ...string) func(*http.Request) (*http.Response, error) {
	return func(req *http.Request) (*http.Response, error) { return answer(req, code, body, kv...), nil }
}

func netFailure(req *http.Request) (*http.Response, error) {
	return nil, errors.New("connection reset by peer")
}

// blockUntilDone models a server that never answers: the attempt ends with its context.
func blockUntilDone(req *http.Request) (*http.Response, error) {
	<-req.Context().Done()
	return nil, req.Context().Err()
}

const machineJSON = `{"id":"1e5bc9d7e413ddd7902c2932e418702b84d0cc07","computerDnsName":"host-1.contoso.com"}`

// pause is one recorded Limiter.Pause call.
type pause struct {
	family string
	until  time.Time
}

// fakeLimiter records its calls; Wait returns err (nil: go ahead at once).
type fakeLimiter struct {
	mu      sync.Mutex
	err     error
	waits   []string
	pauses  []pause
	grants  int         // Take grants one second apart, from t0Grant
	refunds []time.Time // the grant times given back
}

// t0Grant is the time before the fakeLimiter's first grant.
var t0Grant = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func (l *fakeLimiter) Take(ctx context.Context, family string) (time.Time, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.waits = append(l.waits, family)
	if l.err != nil {
		return time.Time{}, l.err
	}
	l.grants++
	return t0Grant.Add(time.Duration(l.grants) * time.Second), nil
}

func (l *fakeLimiter) Refund(family string, grantedAt time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refunds = append(l.refunds, grantedAt)
}

func (l *fakeLimiter) Pause(family string, until time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pauses = append(l.pauses, pause{family, until})
}

func (l *fakeLimiter) recorded() (waits []string, pauses []pause) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.waits...), append([]pause(nil), l.pauses...)
}

var _ Limiter = (*fakeLimiter)(nil)

// callRecorder collects Observe calls.
type callRecorder struct {
	mu    sync.Mutex
	calls []Call
}

func (r *callRecorder) observe(c Call) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, c)
}

func (r *callRecorder) all() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Call(nil), r.calls...)
}

// fakeClient returns a Client whose requests go to tr; opts may adjust the options.
func fakeClient(t *testing.T, tr http.RoundTripper, opts ...func(*Options)) *Client {
	t.Helper()
	o := Options{BaseURL: "https://api.example.test/prefix", HTTPClient: &http.Client{Transport: tr}}
	for _, f := range opts {
		f(&o)
	}
	c, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}
