package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"runtime/trace"
	"slices"
	"strconv"
	"time"

	"github.com/mdegraph/mdegraph/internal/app"
	"github.com/mdegraph/mdegraph/internal/config"
	"github.com/mdegraph/mdegraph/internal/redisstore"
	"github.com/mdegraph/mdegraph/internal/redistest"
	"github.com/mdegraph/mdegraph/internal/simulator"
)

// target is the service under test, and what the load test can know about its upstream.
type target struct {
	// queryURLs are the GraphQL endpoints, one per replica (-replicas; one with -url): queries
	// go to them in turn.
	queryURLs []string
	// metricsURLs are the metrics pages, one per replica; nil when there is none to read.
	metricsURLs []string
	// redis describes the Redis the replicas share ("" without one).
	redis string
	// ref is the data set answers are checked against.
	ref *simulator.Simulator
	// sim is the upstream the service calls, in-process only (then it is ref): its statistics
	// are Defender's own view of the run. nil with -url.
	sim *simulator.Simulator
	// cfg is the in-process service's configuration; nil with -url.
	cfg *config.Config
	// simOpts is how the in-process simulator, or the reference one, was built.
	simOpts simulator.Options
	close   func()
}

// knownIDs is how many of the -m ids the data set must know.
func knownIDs(o options) int {
	return o.ids - int(math.Round(float64(o.ids)*o.unknown))
}

// startTarget starts the service in-process, or describes the one at -url.
func startTarget(ctx context.Context, o options, getenv func(string) string, stderr io.Writer) (*target, error) {
	if !o.inProcess() {
		simOpts := simulator.Options{Seed: o.simSeed, Devices: o.devices}
		t := &target{queryURLs: []string{o.url}, ref: simulator.New(simOpts), simOpts: simOpts, close: func() {}}
		if o.metricsURL != "" {
			t.metricsURLs = []string{o.metricsURL}
		}
		return t, nil
	}
	lookup := func(k string) string {
		if k == "CACHE_TTL" && o.cacheTTL != "" {
			return o.cacheTTL
		}
		if v, ok := o.env[k]; ok {
			return v
		}
		if v := getenv(k); v != "" || k != "REPLICAS" || o.replicas == 1 {
			return v
		}
		return strconv.Itoa(o.replicas) // the fleet REDIS_URL serves, for its budget without Redis
	}
	cfg, err := config.Load(nil, lookup, stderr)
	if err != nil {
		return nil, fmt.Errorf("the in-process service's configuration (-cache-ttl, -env, environment): %w", err)
	}
	if !cfg.Demo {
		return nil, errors.New("MDE_TENANT_ID, MDE_CLIENT_ID or MDE_CLIENT_SECRET is set (in the environment or -env): " +
			"the in-process service must run in demo mode on the simulator, never against a real tenant; unset them, or target a running service with -url")
	}
	devices := o.devices
	if devices == 0 {
		devices = max(simulator.DefaultDevices, knownIDs(o))
	}
	simOpts := simulator.Options{Seed: o.simSeed, Devices: devices, Latency: o.latency, PerMinute: o.simPerMinute, PerHour: o.simPerHour}
	sim := simulator.New(simOpts)
	t := &target{ref: sim, sim: sim, cfg: &cfg, simOpts: simOpts}
	var closers []func()
	t.close = func() {
		for _, c := range slices.Backward(closers) {
			c()
		}
	}
	if o.replicas > 1 {
		where, stop, err := sharedRedis(ctx, &cfg, lookup, o.replicas, stderr)
		if err != nil {
			return nil, err
		}
		t.redis = where
		closers = append(closers, stop)
	}

	// As server.go does: the application's lifetime is not the caller's (an interrupt must not
	// fail the token source under requests still in flight); close ends it.
	appCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	closers = append(closers, cancel)
	logger := newLogger(cfg, stderr)
	for i := range o.replicas {
		opts := simOpts
		a, err := app.New(appCtx, cfg, logger.With("replica", i), app.Options{Simulator: &opts, Upstream: sim})
		if err != nil {
			t.close()
			return nil, fmt.Errorf("start the service: %w", err)
		}
		closers = append(closers, a.Close)
		mux := http.NewServeMux()
		mux.Handle("/query", traced(o.profiles.trace != "", a.GraphQL))
		mux.Handle("GET /metrics", a.Metrics)
		// A server as server.go runs it (httptest.Server would track every connection's state
		// under one lock of its own, which the real service does not have).
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.close()
			return nil, fmt.Errorf("start the service: %w", err)
		}
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return appCtx }}
		go func() { _ = srv.Serve(ln) }()
		closers = append(closers, func() { _ = srv.Close() })
		base := "http://" + ln.Addr().String()
		t.queryURLs = append(t.queryURLs, base+"/query")
		t.metricsURLs = append(t.metricsURLs, base+"/metrics")
	}
	return t, nil
}

// sharedRedis points cfg at the Redis the replicas share: REDIS_URL if set, else a
// redis-server started here (stop stops it). Each run gets keys of its own (REDIS_PREFIX), so
// that a previous run's quota does not count in this one's.
func sharedRedis(ctx context.Context, cfg *config.Config, lookup func(string) string, replicas int, stderr io.Writer) (where string, stop func(), err error) {
	stop = func() {}
	if lookup("REDIS_PREFIX") == "" {
		cfg.Redis.Prefix = fmt.Sprintf("loadtest-%d-%d", os.Getpid(), time.Now().UnixNano())
	}
	if cfg.Redis.URL == "" {
		dir, err := os.MkdirTemp("", "loadtest-redis")
		if err != nil {
			return "", nil, err
		}
		srv, err := redistest.Start(ctx, dir)
		if err != nil {
			os.RemoveAll(dir)
			return "", nil, fmt.Errorf("-replicas %d shares one Redis: set REDIS_URL (-env REDIS_URL=redis://...), or install redis-server: %w", replicas, err)
		}
		fmt.Fprintf(stderr, "loadtest: started redis-server on %s for the replicas\n", srv.Addr)
		cfg.Redis.URL = config.Secret(srv.URL())
		stop = func() { srv.Stop(); os.RemoveAll(dir) }
	}
	return redisstore.Where(cfg.Redis.URL.Reveal()), stop, nil
}

// newLogger logs like the service's main does.
func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// traced marks each request as a task of the execution trace (-trace), with one region "query"
// around the handler, so that "go tool trace" shows each request's time by what it waited on
// (running, scheduler wait, sync block, GC) and its latency distribution.
func traced(on bool, next http.Handler) http.Handler {
	if !on {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, task := trace.NewTask(r.Context(), "query")
		defer task.End()
		trace.WithRegion(ctx, "query", func() { next.ServeHTTP(w, r.WithContext(ctx)) })
	})
}
