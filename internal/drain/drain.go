// Package drain stops the HTTP service gracefully. At the first stop signal the service says
// it is not ready (/readyz answers 503); it keeps accepting requests for a delay
// (SHUTDOWN_DELAY, none by default), so that load balancers probing /readyz stop sending new
// ones, then stops accepting connections, and the requests in flight get a grace period
// (SHUTDOWN_GRACE) to finish. Those still running when it ends are cancelled and answered
// with a coded error, never cut off with an empty reply. A second signal exits at once.
package drain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// ErrShuttingDown is the cause of a request's context cancelled at the end of the grace.
var ErrShuttingDown = errors.New("the service is shutting down")

// AnswerWait is how long requests cancelled at the end of the grace get to return, once their
// answer is written, before the server closes their connections.
const AnswerWait = 5 * time.Second

// Drain coordinates one graceful stop. It is safe for concurrent use; use New.
type Drain struct {
	stopping chan struct{}
	stopOnce sync.Once
	// cutCtxs end at Cut. Each request waits on one of them, in turn: a context keeps its
	// waiters under one lock, which every request would otherwise take twice (to start
	// waiting and to stop), so that under load requests queued on it.
	cutCtxs     [cutShards]context.Context
	cuts        [cutShards]context.CancelFunc
	next        atomic.Uint32 // the shard of the next request
	inFlight    atomic.Int64
	interrupted atomic.Int64
}

// cutShards is how many contexts the requests in flight wait on, spread evenly.
const cutShards = 64

// New returns a Drain that has not begun.
func New() *Drain {
	d := &Drain{stopping: make(chan struct{})}
	for i := range d.cutCtxs {
		d.cutCtxs[i], d.cuts[i] = context.WithCancel(context.Background())
	}
	return d
}

// Begin marks the service as stopping: Ready answers 503 from now on.
func (d *Drain) Begin() { d.stopOnce.Do(func() { close(d.stopping) }) }

// Stopping is closed once Begin has been called.
func (d *Drain) Stopping() <-chan struct{} { return d.stopping }

// Cut ends the grace: every request Requests is serving is cancelled with ErrShuttingDown and
// answered by its answer function, unless it has started its own answer.
func (d *Drain) Cut() {
	for _, cut := range d.cuts {
		cut()
	}
}

// InFlight is the number of requests Requests is serving now.
func (d *Drain) InFlight() int { return int(d.inFlight.Load()) }

// Interrupted is the number of requests Cut answered in their handler's stead.
func (d *Drain) Interrupted() int { return int(d.interrupted.Load()) }

// Ready answers 503 once the stop has begun, and otherwise asks next.
func (d *Drain) Ready(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-d.stopping:
			http.Error(w, "not ready: shutting down", http.StatusServiceUnavailable)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// Requests serves next, so that Cut can end its requests: their context is cancelled with
// ErrShuttingDown and, if next has written nothing yet, answer writes the response (whatever
// next writes later is discarded). next gets a header map of its own, copied to the response
// when it writes, so the two never touch the response at once.
func (d *Drain) Requests(next http.Handler, answer func(w http.ResponseWriter, r *http.Request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.inFlight.Add(1)
		defer d.inFlight.Add(-1)
		ctx, cancel := context.WithCancelCause(r.Context())
		defer cancel(nil)
		g := &guardedWriter{w: w, header: w.Header().Clone()}
		stop := context.AfterFunc(d.cutCtxs[d.next.Add(1)%cutShards], func() {
			// The answer first: the handler's own, written as soon as it sees its context
			// cancelled, would say CANCELLED.
			if g.takeOver(func(w http.ResponseWriter) { answer(w, r) }) {
				d.interrupted.Add(1)
			}
			cancel(ErrShuttingDown)
		})
		defer stop()
		defer g.finish()
		next.ServeHTTP(g, r.WithContext(ctx))
	})
}

// guardedWriter is the ResponseWriter of one request that Cut may answer: the handler's
// writes and Cut's answer go through one lock, and the first to write owns the response.
type guardedWriter struct {
	w      http.ResponseWriter
	header http.Header // the handler's

	mu      sync.Mutex
	written bool // the handler has sent its header
	closed  bool // the response is no longer the handler's: Cut answered, or it returned
}

func (g *guardedWriter) Header() http.Header { return g.header }

// writeHeaderLocked sends the handler's header; g.mu must be held.
func (g *guardedWriter) writeHeaderLocked(code int) {
	if g.written {
		return
	}
	g.written = true
	maps.Copy(g.w.Header(), g.header)
	g.w.WriteHeader(code)
}

func (g *guardedWriter) WriteHeader(code int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.closed {
		g.writeHeaderLocked(code)
	}
}

func (g *guardedWriter) Write(b []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return 0, ErrShuttingDown
	}
	g.writeHeaderLocked(http.StatusOK)
	return g.w.Write(b)
}

// Flush sends what the handler wrote so far, if the response is still its own.
func (g *guardedWriter) Flush() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.closed && g.written {
		_ = http.NewResponseController(g.w).Flush()
	}
}

// takeOver writes the response with answer if the handler has written nothing, and reports
// whether it did.
func (g *guardedWriter) takeOver(answer func(http.ResponseWriter)) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.written || g.closed {
		return false
	}
	g.closed = true
	answer(g.w)
	_ = http.NewResponseController(g.w).Flush() // the client need not wait for the handler to return
	return true
}

// finish ends the handler's hold on the response, giving it the headers it set if it wrote
// nothing (net/http then sends 200 with them).
func (g *guardedWriter) finish() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.closed && !g.written {
		maps.Copy(g.w.Header(), g.header)
	}
	g.closed = true
}

// Shutdown stops srv in three steps, logging each on logger (nil: no log). First Begin: Ready
// answers 503 from now on. Then, for delay (SHUTDOWN_DELAY), srv keeps accepting and serving
// requests, so that a load balancer that sees /readyz fail stops sending new ones before the
// listener closes; keep-alives are off meanwhile, so that each answer closes its connection
// and the client's next request goes through the load balancer again. Then srv stops
// accepting connections and the requests in flight get grace (SHUTDOWN_GRACE) to finish;
// those still running when it has passed are Cut and get AnswerWait to return before their
// connections are closed. It returns an error only if some did not return by then.
//
// A second stop signal during any step is OnSignals' to handle: main exits at once.
func (d *Drain) Shutdown(srv *http.Server, delay, grace time.Duration, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	d.Begin()
	if delay > 0 {
		logger.Info("shutting down: /readyz answers 503; new requests are still served for SHUTDOWN_DELAY, so that load balancers stop sending them, then the listener closes",
			"delay", delay, "grace", grace, "in_flight", d.InFlight())
		srv.SetKeepAlivesEnabled(false)
		<-time.After(delay)
		logger.Info("shutdown delay over: the listener is closed, requests in flight may finish", "grace", grace, "in_flight", d.InFlight())
	} else {
		logger.Info("shutting down: /readyz answers 503, the listener is closed, requests in flight may finish", "grace", grace, "in_flight", d.InFlight())
	}
	cut := time.AfterFunc(grace, d.Cut)
	defer cut.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), grace+AnswerWait)
	defer cancel()
	err := srv.Shutdown(ctx)
	if n := d.Interrupted(); n > 0 {
		logger.Warn("the shutdown grace ended: requests still running were answered SHUTTING_DOWN", "requests", n, "grace", grace)
	}
	if err != nil {
		_ = srv.Close()
		return fmt.Errorf("requests still running %v after the grace ended were cut off: %w", AnswerWait, err)
	}
	return nil
}

// OnSignals returns a context cancelled at the first value received from signals (main feeds
// it with signal.Notify), and calls second with the next one, from then on at every one: main
// logs and exits there. stop releases the goroutine that waits.
func OnSignals(parent context.Context, signals <-chan os.Signal, second func(os.Signal)) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(parent)
	done := make(chan struct{})
	go func() {
		select {
		case <-signals:
			cancel()
		case <-done:
			return
		}
		for {
			select {
			case s := <-signals:
				second(s)
			case <-done:
				return
			}
		}
	}()
	var once sync.Once
	return ctx, func() {
		once.Do(func() { close(done) })
		cancel()
	}
}
