// Command loadtest is the benchmark: many concurrent GraphQL clients asking mdegraph for
// the logon users of overlapping devices, every answer checked against the simulator's data,
// and the upstream calls the service made counted, as Defender would count them.
//
//	go run ./cmd/loadtest                         # 200 clients, 5000 queries over 100 ids, cache on
//	go run ./cmd/loadtest -cache-ttl 0            # only in-flight sharing saves calls
//	go run ./cmd/loadtest -m 400                  # more distinct devices than a minute's quota
//	go run ./cmd/loadtest -m 400 -cache-ttl 0     # ... and nothing fresh reused: stale answers stand in
//	go run ./cmd/loadtest -shape graph -m 50      # each user's machines and the device's alerts too
//	go run ./cmd/loadtest -url http://127.0.0.1:8080/query   # a running service (demo data set)
//
// By default the service runs in-process exactly as "go run ." builds it in demo mode
// (config.Load, then app.New), served on a loopback httptest server so the HTTP path is real.
// Its settings come from the environment variables the service reads, -env KEY=VALUE (which
// wins) and -cache-ttl (which wins over both). With -url the target must serve the data set the
// answers are checked against: the default demo data set of "go run ." (simulator seed 1, 300
// devices), or a defender-simulator started with the -seed and -devices given here as -sim-seed
// and -devices.
//
// The report gives the answers (correct; stale: correct and marked in extensions.stale;
// partial: the device with a part null and an error saying why; declined with an error code;
// wrong with examples),
// latency percentiles, throughput, and the upstream calls: exact per endpoint from the
// simulator in-process, or from the target's /metrics with -url. The exit status is 1 if any
// answer was wrong, if the upstream answered 429, or if any endpoint received more calls in a
// sliding minute (or hour) than its limit; 2 if the run could not be made. Run
// "go run ./cmd/loadtest -h" for every flag.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	var failed *failedError
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.As(err, &failed):
		fmt.Fprintln(os.Stderr, "loadtest: FAIL:", err)
		os.Exit(1)
	default:
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(2)
	}
}

// failedError is a run that completed but did not meet its targets; the report says why.
type failedError struct{ reasons []string }

func (e *failedError) Error() string { return strings.Join(e.reasons, "; ") }

// run parses the flags, starts or finds the target, runs the queries and writes the report to
// stdout; progress and the in-process service's logs go to stderr. It returns a *failedError
// when the run did not meet its targets.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	t, err := startTarget(ctx, o, getenv, stderr)
	if err != nil {
		return err
	}
	defer t.close()
	w, err := newWorkload(t.ref, o)
	if err != nil {
		return err
	}

	client := newHTTPClient(o.clients)
	defer client.CloseIdleConnections()
	var warm *runResult
	if o.warmup {
		wr := warmUp(ctx, client, t.queryURLs, w, o, stderr)
		warm = &wr
	}
	var before series
	var metricsErr error
	if len(t.metricsURLs) > 0 {
		before, metricsErr = scrapeAll(ctx, client, t.metricsURLs)
	}
	var stopProfiles func() error
	if o.profiles.any() {
		if stopProfiles, err = o.profiles.start(); err != nil {
			return err
		}
	}
	cpuBefore, cpuOK := cpuTime()
	res := runQueries(ctx, client, t.queryURLs, w, o, stderr)
	cpuAfter, _ := cpuTime()
	if stopProfiles != nil {
		if err := stopProfiles(); err != nil {
			return err
		}
	}
	var after series
	if len(t.metricsURLs) > 0 && metricsErr == nil {
		after, metricsErr = scrapeAll(context.WithoutCancel(ctx), client, t.metricsURLs)
	}

	r := newReport(o, t, w, res)
	r.warmup = warm
	if cpuOK {
		r.cpu = cpuAfter - cpuBefore
	}
	switch {
	case len(t.metricsURLs) == 0:
		r.metricsNote = "unavailable (-metrics-url -)"
	case metricsErr != nil:
		r.metricsNote = "unavailable: " + metricsErr.Error()
	default:
		r.metrics = after.since(before)
	}
	r.write(stdout)
	if reasons := r.failures(); len(reasons) > 0 {
		return &failedError{reasons: reasons}
	}
	return nil
}
