// Command mdegraph is a GraphQL service in front of the Microsoft Defender for Endpoint API.
// It answers many overlapping queries while calling Defender as few times as possible and
// never past its rate limits. With no credentials it runs on an embedded Defender simulator.
//
// This file is wiring only: configuration, dependencies (assembled by package app), HTTP
// routes, graceful shutdown.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mdegraph/mdegraph/internal/app"
	"github.com/mdegraph/mdegraph/internal/config"
	"github.com/mdegraph/mdegraph/internal/drain"
	"github.com/mdegraph/mdegraph/internal/gqlhttp"
)

func main() {
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	ctx, stop := drain.OnSignals(context.Background(), signals, exitNow)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stderr, nil); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		reportFatal(os.Stderr, os.Args[1:], os.Getenv, err)
		os.Exit(1)
	}
}

// reportFatal writes the error that stopped the service: one JSON log line when LOG_FORMAT
// (the flag or the variable) asks for json, even when the rest of the configuration could not
// be read, so that a log shipper sees it; "mdegraph: <error>" otherwise.
func reportFatal(w io.Writer, args []string, getenv func(string) string, err error) {
	if config.LogFormatOf(args, getenv) == "json" {
		slog.New(slog.NewJSONHandler(w, nil)).Error("mdegraph stopped", "error", err.Error())
		return
	}
	fmt.Fprintln(w, "mdegraph:", err)
}

// exitNow ends the process at a second stop signal, without waiting for requests in flight.
func exitNow(s os.Signal) {
	if logger := processLogger.Load(); logger != nil {
		logger.Error("second stop signal: exiting now, without waiting for the requests in flight", "signal", s.String())
	} else {
		fmt.Fprintf(os.Stderr, "mdegraph: second stop signal (%v): exiting now\n", s)
	}
	os.Exit(1)
}

// processLogger is the service's logger once run has made it, for exitNow.
var processLogger atomic.Pointer[slog.Logger]

// run starts the service and serves until ctx ends. ready, when not nil, is called with the
// base URL once the listener is open (tests use it with ADDR=127.0.0.1:0).
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, ready func(baseURL string)) error {
	cfg, err := config.Load(args, getenv, stderr)
	if err != nil {
		return err
	}
	logger := newLogger(cfg, stderr)
	logger.Info("configuration", "config", cfg) // effective values, the secret only as set or not
	for _, w := range cfg.Warnings {
		logger.Warn(w)
	}
	processLogger.Store(logger)

	// The application's lifetime context: the token source and the simulator live on it, and
	// requests in flight at shutdown are not cancelled by the stop signal.
	appCtx, cancelApp := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelApp()
	a, err := app.New(appCtx, cfg, logger, app.Options{})
	if err != nil {
		return err
	}
	defer a.Close()

	mux := http.NewServeMux()
	mux.Handle("/query", a.GraphQL)
	mux.Handle("GET /{$}", a.Playground)
	mux.Handle("GET /example", a.Example)
	mux.Handle("GET /static/", http.StripPrefix("/static", a.Static))
	mux.Handle("GET /healthz", a.Health)
	mux.Handle("GET /readyz", a.Ready)
	if cfg.MetricsAddr == "" {
		mux.Handle("GET /metrics", a.Metrics) // behind the sign-in (AUTH_MODE)
	}

	srv := &http.Server{
		Handler:           accessLog(logger, mux),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// A GET carries its query in the URL: room for one just over MAX_BODY_BYTES, which
		// the endpoint answers with a coded 414, and a hard cap beyond.
		MaxHeaderBytes: gqlhttp.MaxHeaderBytes(cfg.MaxBodyBytes),
		ErrorLog:       slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		BaseContext:    func(net.Listener) context.Context { return appCtx },
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("ADDR %s: %w", cfg.Addr, err)
	}
	base := "http://" + ln.Addr().String()
	metricsURL := base + "/metrics"
	if cfg.MetricsAddr != "" {
		stopMetrics, u, err := serveMetrics(appCtx, cfg.MetricsAddr, a.Metrics, a.Profiles, logger)
		if err != nil {
			ln.Close()
			return err
		}
		defer stopMetrics()
		metricsURL = u
	}
	logger.Info("mdegraph listening", "playground", base+"/", "graphql", base+"/query", "example", base+"/example",
		"metrics", metricsURL, "upstream", a.UpstreamURL, "cache_ttl", cfg.CacheTTL,
		"limit_per_minute", cfg.LimitPerMinute, "limit_per_hour", cfg.LimitPerHour,
		"shutdown_delay", cfg.ShutdownDelay, "shutdown_grace", cfg.ShutdownGrace)
	if tcp, ok := ln.Addr().(*net.TCPAddr); !ok || !tcp.IP.IsLoopback() {
		logger.Warn("listening beyond loopback: anyone who can reach this address can query Defender through this service", "addr", ln.Addr().String())
	}
	if cfg.LogFormat != "json" { // a plain line would break a JSON log; the line above has the URL
		fmt.Fprintf(stderr, "\n  GraphQL playground: %s/\n\n", base)
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if ready != nil {
		ready(base)
	}
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	if err := a.Drain.Shutdown(srv, cfg.ShutdownDelay, cfg.ShutdownGrace, logger); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	logger.Info("stopped")
	return nil
}

// serveMetrics serves GET /metrics alone on its own listener at addr (METRICS_ADDR), without
// sign-in, and Go's profiles under /debug/pprof/ when profiles is not nil (PPROF=true), until
// stop is called; it returns the metrics URL.
func serveMetrics(ctx context.Context, addr string, metrics, profiles http.Handler, logger *slog.Logger) (stop func(), url string, err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("METRICS_ADDR %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	if profiles != nil {
		// Contention and blocking are recorded only from now on: sampled, 1 contended lock in
		// profileFraction, and blocking of profileBlock or more, so that the cost stays small.
		runtime.SetMutexProfileFraction(profileFraction)
		runtime.SetBlockProfileRate(int(profileBlock))
		mux.Handle("GET /debug/pprof/", profiles)
		logger.Warn("PPROF=true: Go's runtime profiles are served on METRICS_ADDR; they show the service's code paths and memory, keep that address private",
			"profiles", "http://"+ln.Addr().String()+"/debug/pprof/")
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn), BaseContext: func(net.Listener) context.Context { return ctx }}
	go func() { _ = srv.Serve(ln) }()
	return func() { _ = srv.Close() }, "http://" + ln.Addr().String() + "/metrics", nil
}

// The sampling of the mutex and block profiles with PPROF=true.
const (
	profileFraction = 10
	profileBlock    = 10 * time.Microsecond
)

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// statusRecorder remembers the status a handler wrote, for the access log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// accessLog writes one debug line per request.
func accessLog(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		logger.LogAttrs(r.Context(), slog.LevelDebug, "http request", slog.String("method", r.Method),
			slog.String("path", r.URL.Path), slog.Int("status", rec.status), slog.Duration("duration", time.Since(start)))
	})
}
