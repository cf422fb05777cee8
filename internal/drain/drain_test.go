package drain

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

// answerCut is the answer function of the tests: 503 and a fixed body.
func answerCut(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = io.WriteString(w, `{"errors":[{"extensions":{"code":"SHUTTING_DOWN"}}]}`)
}

func TestReady(t *testing.T) {
	t.Parallel()
	d := New()
	h := d.Ready(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ready") }))
	status := func() int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return rec.Code
	}
	if got := status(); got != http.StatusOK {
		t.Errorf("before Begin: %d, want 200", got)
	}
	d.Begin()
	d.Begin() // twice is fine
	if got := status(); got != http.StatusServiceUnavailable {
		t.Errorf("after Begin: %d, want 503", got)
	}
	select {
	case <-d.Stopping():
	default:
		t.Error("Stopping not closed after Begin")
	}
}

// pipeListener is an in-memory net.Listener, so that a whole http.Server runs inside a
// synctest bubble.
type pipeListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error   { l.once.Do(func() { close(l.closed) }); return nil }
func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

func (l *pipeListener) dial(context.Context, string, string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.closed:
		return nil, errors.New("connection refused")
	}
}

// answer is what a client got.
type answer struct {
	status int
	body   string
	header http.Header
	close  bool // the server closes the connection after this answer
	err    error
}

// serve starts srv with handler on an in-memory listener and returns a function that sends a
// GET of a path in the background.
func serve(t *testing.T, handler http.Handler) (srv *http.Server, get func(path string) <-chan answer) {
	ln := newPipeListener()
	srv = &http.Server{Handler: handler}
	go func() { _ = srv.Serve(ln) }()
	client := &http.Client{Transport: &http.Transport{DialContext: ln.dial}}
	t.Cleanup(client.CloseIdleConnections)
	return srv, func(path string) <-chan answer {
		out := make(chan answer, 1)
		go func() {
			resp, err := client.Get("http://service" + path)
			if err != nil {
				out <- answer{err: err}
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			out <- answer{status: resp.StatusCode, body: string(b), header: resp.Header, close: resp.Close, err: err}
		}()
		return out
	}
}

// TestShutdown: requests that finish within the grace are answered by their handler; the one
// still running when it ends is answered by the cut, with its context cancelled with
// ErrShuttingDown; the late write of its handler is discarded.
func TestShutdown(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		d := New()
		var mu sync.Mutex
		var causes []error
		handler := d.Requests(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Handler", "yes")
			if r.URL.Query().Get("quick") == "" {
				select {
				case <-time.After(time.Hour): // a request far longer than the grace
				case <-r.Context().Done():
				}
			} else {
				time.Sleep(5 * time.Second)
			}
			mu.Lock()
			causes = append(causes, context.Cause(r.Context()))
			mu.Unlock()
			_, err := io.WriteString(w, "handler's answer")
			if r.URL.Query().Get("quick") == "" && !errors.Is(err, ErrShuttingDown) {
				t.Errorf("the late write returned %v, want ErrShuttingDown", err)
			}
		}), answerCut)
		srv, get := serve(t, handler)
		slow := get("/query")
		synctest.Wait()
		if d.InFlight() != 1 {
			t.Fatalf("%d requests in flight, want 1", d.InFlight())
		}

		start := time.Now()
		done := make(chan error, 1)
		go func() { done <- d.Shutdown(srv, 0, 10*time.Second, nil) }()
		synctest.Wait()
		select {
		case <-d.Stopping():
		default:
			t.Error("not stopping as soon as Shutdown began")
		}

		a := <-slow
		if waited := time.Since(start); waited != 10*time.Second {
			t.Errorf("the slow request was answered after %v, want the grace (10s)", waited)
		}
		if a.err != nil || a.status != http.StatusServiceUnavailable || a.body != `{"errors":[{"extensions":{"code":"SHUTTING_DOWN"}}]}` {
			t.Errorf("slow request: %d %q (%v), want 503 and the coded error", a.status, a.body, a.err)
		}
		if a.header.Get("X-Handler") != "" {
			t.Error("the cut answer carries a header the handler set")
		}
		if err := <-done; err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if d.Interrupted() != 1 || d.InFlight() != 0 {
			t.Errorf("interrupted %d, in flight %d; want 1, 0", d.Interrupted(), d.InFlight())
		}
		mu.Lock()
		defer mu.Unlock()
		if len(causes) != 1 || !errors.Is(causes[0], ErrShuttingDown) {
			t.Errorf("context causes %v, want [ErrShuttingDown]", causes)
		}
	})
}

// TestShutdownWithinGrace: a request that ends within the grace gets its own answer and
// headers, and Shutdown returns when it has.
func TestShutdownWithinGrace(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		d := New()
		handler := d.Requests(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Handler", "yes")
			time.Sleep(5 * time.Second)
			io.WriteString(w, "handler's answer")
		}), answerCut)
		srv, get := serve(t, handler)
		quick := get("/query")
		synctest.Wait()
		start := time.Now()
		if err := d.Shutdown(srv, 0, 10*time.Second, nil); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		// srv.Shutdown polls for idle connections, at most every 500ms.
		if took := time.Since(start); took < 5*time.Second || took > 5*time.Second+500*time.Millisecond {
			t.Errorf("Shutdown took %v, want about 5s: as long as the request, not the grace", took)
		}
		a := <-quick
		if a.status != http.StatusOK || a.body != "handler's answer" || a.header.Get("X-Handler") != "yes" {
			t.Errorf("got %d %q %v, want the handler's answer and header", a.status, a.body, a.header)
		}
		if d.Interrupted() != 0 {
			t.Errorf("interrupted %d, want 0", d.Interrupted())
		}
	})
}

// service is what server.go mounts, in small: /readyz behind Ready, the rest behind Requests.
func service(d *Drain, handler http.HandlerFunc) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/readyz", d.Ready(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ready") })))
	mux.Handle("/", d.Requests(handler, answerCut))
	return mux
}

// TestShutdownDelay: during SHUTDOWN_DELAY a probe of /readyz gets 503 while queries are still
// served, request by request on connections that close after each answer; when the delay is
// over the listener is closed, the requests in flight finish within the grace, and the log
// says each step.
func TestShutdownDelay(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		d := New()
		srv, get := serve(t, service(d, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				time.Sleep(40 * time.Second) // in flight when the delay ends, done within the grace
			}
			io.WriteString(w, "served")
		}))
		if a := <-get("/readyz"); a.status != http.StatusOK {
			t.Fatalf("/readyz before the stop: %d %v, want 200", a.status, a.err)
		}

		var logs strings.Builder
		var logMu sync.Mutex
		logger := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, nil))
		start := time.Now()
		done := make(chan error, 1)
		go func() { done <- d.Shutdown(srv, 30*time.Second, 60*time.Second, logger) }()
		synctest.Wait()

		time.Sleep(10 * time.Second) // within the delay
		if a := <-get("/readyz"); a.err != nil || a.status != http.StatusServiceUnavailable {
			t.Errorf("/readyz during the delay: %d %v, want 503", a.status, a.err)
		}
		a := <-get("/query")
		if a.err != nil || a.status != http.StatusOK || a.body != "served" {
			t.Errorf("a query during the delay: %d %q %v, want it served", a.status, a.body, a.err)
		}
		if !a.close {
			t.Error("the answer during the delay keeps its connection open, want Connection: close: the next request goes through the load balancer again")
		}
		slow := get("/slow")
		synctest.Wait()

		time.Sleep(20*time.Second + time.Millisecond) // the delay is over
		synctest.Wait()
		if a := <-get("/query"); a.err == nil {
			t.Errorf("a query after the delay: %d, want the connection refused: the listener is closed", a.status)
		}
		if a := <-slow; a.err != nil || a.body != "served" {
			t.Errorf("the request in flight when the delay ended: %d %q %v, want its own answer", a.status, a.body, a.err)
		}
		if err := <-done; err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if took := time.Since(start); took < 50*time.Second || took > 51*time.Second {
			t.Errorf("Shutdown took %v, want about 50s: the delay, then the slow request's remaining 20s", took)
		}
		logMu.Lock()
		defer logMu.Unlock()
		for _, want := range []string{"/readyz answers 503; new requests are still served for SHUTDOWN_DELAY", "delay=30s", "shutdown delay over: the listener is closed"} {
			if !strings.Contains(logs.String(), want) {
				t.Errorf("log lacks %q:\n%s", want, logs.String())
			}
		}
		if d.Interrupted() != 0 {
			t.Errorf("interrupted %d, want 0", d.Interrupted())
		}
	})
}

// TestSecondSignalDuringDelay: a second stop signal during SHUTDOWN_DELAY reaches OnSignals'
// second at once (main exits there), not after the delay.
func TestSecondSignalDuringDelay(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		d := New()
		srv, get := serve(t, service(d, func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "served") }))
		signals := make(chan os.Signal)
		exited := make(chan time.Time, 1)
		ctx, stop := OnSignals(context.Background(), signals, func(os.Signal) { exited <- time.Now() })
		defer stop()
		go func() {
			<-ctx.Done()
			_ = d.Shutdown(srv, time.Minute, time.Minute, nil)
		}()

		start := time.Now()
		signals <- syscall.SIGTERM
		synctest.Wait()
		if a := <-get("/readyz"); a.status != http.StatusServiceUnavailable {
			t.Fatalf("/readyz after the first signal: %d %v, want 503", a.status, a.err)
		}
		time.Sleep(5 * time.Second)
		signals <- os.Interrupt
		select {
		case at := <-exited:
			if waited := at.Sub(start); waited != 5*time.Second {
				t.Errorf("the second signal was handled %v after the first, want at once (5s)", waited)
			}
		case <-time.After(time.Second):
			t.Error("the second signal during the delay was not handled at once")
		}
		// Let the bubble's goroutines end: the delay runs out, the listener closes.
		time.Sleep(time.Minute)
		synctest.Wait()
	})
}

// lockedWriter serialises writes to w.
type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// TestCutAfterTheHandlerWrote: a handler that has started its answer keeps it.
func TestCutAfterTheHandlerWrote(t *testing.T) {
	t.Parallel()
	d := New()
	wrote := make(chan struct{})
	h := d.Requests(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
		close(wrote)
		<-r.Context().Done()
		io.WriteString(w, "still mine")
	}), answerCut)
	rec := httptest.NewRecorder()
	go func() { <-wrote; d.Cut() }()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/query", nil))
	if rec.Code != http.StatusTeapot || rec.Body.String() != "still mine" || d.Interrupted() != 0 {
		t.Errorf("got %d %q, %d interrupted; want 418 %q, 0", rec.Code, rec.Body, d.Interrupted(), "still mine")
	}
}

// TestHeadersWithoutBody: a handler that sets headers and writes nothing gets its headers.
func TestHeadersWithoutBody(t *testing.T) {
	t.Parallel()
	h := New().Requests(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Allow", "GET")
	}), answerCut)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodOptions, "/query", nil))
	if rec.Header().Get("Allow") != "GET" {
		t.Errorf("Allow %q, want GET", rec.Header().Get("Allow"))
	}
}

func TestOnSignals(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		signals := make(chan os.Signal)
		var mu sync.Mutex
		var seconds []os.Signal
		ctx, stop := OnSignals(context.Background(), signals, func(s os.Signal) {
			mu.Lock()
			defer mu.Unlock()
			seconds = append(seconds, s)
		})
		defer stop()
		synctest.Wait()
		if ctx.Err() != nil {
			t.Fatal("cancelled before any signal")
		}
		signals <- syscall.SIGTERM
		synctest.Wait()
		if ctx.Err() == nil {
			t.Fatal("not cancelled by the first signal")
		}
		signals <- os.Interrupt
		signals <- syscall.SIGTERM
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if len(seconds) != 2 || seconds[0] != os.Interrupt || seconds[1] != syscall.SIGTERM {
			t.Errorf("second called with %v, want [interrupt terminated]", seconds)
		}
	})
}
