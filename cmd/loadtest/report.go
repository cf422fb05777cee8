package main

import (
	"fmt"
	"io"
	"maps"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mdegraph/mdegraph/internal/simulator"
)

// maxExamples is how many wrong answers the report quotes.
const maxExamples = 5

// report is everything a run found, computed once and then written.
type report struct {
	o   options
	t   *target
	w   workload
	run runResult

	sent, correct, declined, wrong, noRetryAfter int
	minRetry, maxRetry                           int64          // over RATE_LIMITED answers, in seconds
	codes                                        map[string]int // errors by extensions.code, every answer
	examples                                     []string
	latencies                                    []time.Duration // sorted
	asked                                        map[string]bool // ids asked at least once

	// Answers served stale (marked in extensions.stale) or partial, and the stale entries.
	stale, partial int
	staleReasons   map[string]int // extensions.stale entries by reason
	maxStaleAge    int64          // the oldest stale entry, in seconds

	// In-process: the simulator's own counts.
	stats      map[simulator.Endpoint]simulator.EndpointStats
	logonCalls map[string]int
	keyCalls   map[simulator.Endpoint]map[string]int // calls per key, by endpoint

	// warmup is the warm-up's outcome (-warmup), nil without one.
	warmup *runResult
	// cpu is the CPU time the load test's process used in the measured run (0: unknown).
	cpu time.Duration

	// The service's metrics, this run's increase; nil with metricsNote saying why.
	metrics     series
	metricsNote string
}

func newReport(o options, t *target, w workload, run runResult) *report {
	r := &report{o: o, t: t, w: w, run: run, codes: map[string]int{}, staleReasons: map[string]int{}, asked: map[string]bool{}}
	for _, res := range run.results {
		if !res.sent {
			continue
		}
		r.sent++
		r.asked[w.targets[res.target].id] = true
		r.latencies = append(r.latencies, res.latency)
		for _, c := range res.verdict.codes {
			if c == "" {
				c = "(no code)"
			}
			r.codes[c]++
		}
		if res.verdict.noRetryAfter {
			r.noRetryAfter++
		}
		for _, reason := range res.verdict.staleReasons {
			r.staleReasons[reason]++
		}
		r.maxStaleAge = max(r.maxStaleAge, res.verdict.staleAge)
		if ra := res.verdict.retryAfter; ra > 0 {
			if r.minRetry == 0 || ra < r.minRetry {
				r.minRetry = ra
			}
			r.maxRetry = max(r.maxRetry, ra)
		}
		switch res.verdict.outcome {
		case correct:
			r.correct++
		case stale:
			r.stale++
		case partial:
			r.partial++
		case declined:
			r.declined++
		default:
			r.wrong++
			if len(r.examples) < maxExamples {
				r.examples = append(r.examples, res.verdict.reason)
			}
		}
	}
	slices.Sort(r.latencies)
	if t.sim != nil {
		r.stats = t.sim.Stats()
		r.logonCalls = t.sim.LogonUserCallCounts()
		r.keyCalls = map[simulator.Endpoint]map[string]int{}
		for _, e := range apiEndpoints {
			r.keyCalls[e] = t.sim.KeyCalls(e)
		}
	}
	return r
}

// apiEndpoints are the simulator's rate-limited endpoints, in report order.
var apiEndpoints = []simulator.Endpoint{simulator.EndpointLogonUsers, simulator.EndpointGetMachine, simulator.EndpointListMachines,
	simulator.EndpointMachineAlerts, simulator.EndpointUserMachines}

// upstream429s counts the 429 answers Defender gave; ok is false when it cannot be known.
func (r *report) upstream429s() (n int, ok bool) {
	if r.stats != nil {
		for _, e := range apiEndpoints {
			n += r.stats[e].TooManyRequests
		}
		return n, true
	}
	if r.metrics != nil {
		return int(r.metrics.sum("mdegraph_upstream_calls_total", "status")["429"]), true
	}
	return 0, false
}

// logonUsersCalls is the upstream's logonusers calls in the run; ok is false when unknown.
func (r *report) logonUsersCalls() (n int, ok bool) {
	if r.stats != nil {
		return r.stats[simulator.EndpointLogonUsers].Calls, true
	}
	if r.metrics != nil {
		return int(r.metrics.sum("mdegraph_upstream_calls_total", "endpoint")["machines.logonusers"]), true
	}
	return 0, false
}

// failures lists the targets the run missed; none means it passed.
func (r *report) failures() []string {
	var out []string
	if r.run.interrupted {
		out = append(out, fmt.Sprintf("interrupted after %d of %d queries", r.sent, len(r.w.plan)))
	}
	if r.wrong > 0 {
		out = append(out, fmt.Sprintf("%d wrong answers", r.wrong))
	}
	if r.warmup != nil {
		if wrong := r.warmup.count(wrong); wrong > 0 {
			out = append(out, fmt.Sprintf("%d wrong answers in the warm-up", wrong))
		}
		if r.warmup.interrupted {
			out = append(out, "the warm-up was interrupted")
		}
	}
	if n, _ := r.upstream429s(); n > 0 {
		out = append(out, fmt.Sprintf("the upstream answered 429 %d times", n))
	}
	for _, e := range apiEndpoints {
		st := r.stats[e]
		if l := r.t.simOpts.PerMinute; l > 0 && st.MaxInAnyMinute > l {
			out = append(out, fmt.Sprintf("%s: %d calls in one 60 s window, limit %d", e, st.MaxInAnyMinute, l))
		}
		if l := r.t.simOpts.PerHour; l > 0 && st.MaxInAnyHour > l {
			out = append(out, fmt.Sprintf("%s: %d calls in one 3600 s window, limit %d", e, st.MaxInAnyHour, l))
		}
	}
	return out
}

func (r *report) write(out io.Writer) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	line := func(format string, args ...any) { fmt.Fprintf(tw, format+"\n", args...) }
	o := r.o

	line("mdegraph load test")
	line("settings")
	if r.t.cfg != nil && len(r.t.queryURLs) > 1 {
		line("  target\t%d in-process replicas (demo mode, built as \"go run .\" builds it) sharing one simulator and Redis %s, queried in turn",
			len(r.t.queryURLs), r.t.redis)
	} else if r.t.cfg != nil {
		line("  target\tin-process service (demo mode, built as \"go run .\" builds it) at %s", r.t.queryURLs[0])
	} else {
		line("  target\t%s (answers checked against the data set of simulator seed %d, %d devices)", r.t.queryURLs[0], r.t.simOpts.Seed, len(r.t.ref.Machines()))
	}
	details := "off"
	if o.details {
		details = "on (computerDnsName: one machine call per device too)"
	}
	line("  workload\t%d clients, %d queries, %d ids (%d known, %d unknown), zipf s=%v, seed %d, details %s, timeout %s",
		o.clients, o.queries, o.ids, r.w.known, o.ids-r.w.known, o.zipf, o.seed, details, o.timeout)
	line("  shape\t%s", o.shape.describe())
	if c := r.t.cfg; c != nil {
		line("  service\tCACHE_TTL=%s NOT_FOUND_TTL=%s STALE_TTL=%s MDE_LIMIT_PER_MINUTE=%d MDE_LIMIT_PER_HOUR=%d QUOTA_MAX_WAIT=%s REQUEST_TIMEOUT=%s MAX_UPSTREAM_CALLS_PER_QUERY=%d",
			c.CacheTTL, c.NotFoundTTL, c.StaleTTL, c.LimitPerMinute, c.LimitPerHour, c.QuotaMaxWait, c.RequestTimeout, c.MaxUpstreamCalls)
		s := r.t.simOpts
		line("  simulator\tseed %d, %d devices, latency %s, limits %s per 60 s and %s per 3600 s per endpoint",
			s.Seed, s.Devices, s.Latency, limitText(s.PerMinute), limitText(s.PerHour))
	}

	line("")
	line("answers")
	line("  queries\t%d sent, %d distinct ids asked", r.sent, len(r.asked))
	line("  correct\t%d\t(the simulator's data, fresh; NOT_FOUND for an unknown id)", r.correct)
	line("  stale\t%d\t(the simulator's data, served stale and marked so in extensions.stale, instead of an error)", r.stale)
	if len(r.staleReasons) > 0 {
		line("  stale entries by reason\t%s\t(oldest %d s)", countsText(r.staleReasons), r.maxStaleAge)
	}
	line("  partial\t%d\t(the device, with a part null and an error at its path: %s)", r.partial, strings.Join(declineCodes, " or "))
	line("  declined\t%d\t(no data, with only %s: the service could not answer now, and said so)", r.declined, strings.Join(declineCodes, " or "))
	line("  wrong\t%d", r.wrong)
	line("  errors by code\t%s", countsText(r.codes))
	line("  rate limited without retryAfter\t%d\t(counted as wrong)", r.noRetryAfter)
	if r.maxRetry > 0 {
		line("  retryAfter of RATE_LIMITED\t%d s to %d s", r.minRetry, r.maxRetry)
	}
	for i, ex := range r.examples {
		line("  wrong example %d\t%s", i+1, ex)
	}

	line("")
	line("latency\tp50 %s  p90 %s  p99 %s  max %s", r.pct(0.50), r.pct(0.90), r.pct(0.99), r.pct(1))
	r.writeServiceLatency(line)
	if c := r.t.cfg; c != nil {
		line("\t(QUOTA_MAX_WAIT %s, REQUEST_TIMEOUT %s, -timeout %s)", c.QuotaMaxWait, c.RequestTimeout, o.timeout)
	}
	secs := r.run.elapsed.Seconds()
	line("throughput\t%.0f queries/s (%d in %s)", float64(r.sent)/max(secs, 1e-9), r.sent, r.run.elapsed.Round(time.Millisecond))
	if w := r.warmup; w != nil {
		line("warm-up\t%d distinct queries asked once before the run, not measured: %d correct, %d stale, %d wrong, in %s",
			len(w.results), w.count(correct), w.count(stale), w.count(wrong), w.elapsed.Round(time.Millisecond))
	}
	r.writeCPU(line, secs)

	line("")
	r.writeUpstream(line)
	line("")
	r.writeMetrics(line)
	line("")
	if f := r.failures(); len(f) > 0 {
		line("verdict\tFAIL: %s", strings.Join(f, "; "))
	} else {
		line("verdict\tPASS")
	}
	tw.Flush()
}

// writeCPU says how much CPU the measured run took, and whose: in-process, the service and the
// load generator share one process; with -url, the load generator's own is measured, and the
// service's read from its process_cpu_seconds_total.
func (r *report) writeCPU(line func(string, ...any), secs float64) {
	cores := func(d time.Duration) string {
		return fmt.Sprintf("%.2f s (%.2f cores over the run)", d.Seconds(), d.Seconds()/max(secs, 1e-9))
	}
	who := "the load generator alone"
	if r.t.cfg != nil {
		who = "the service and the load generator together, in one process (use -url for the service's alone)"
	}
	if r.cpu > 0 {
		line("cpu\tthis process %s: %s, on %d CPUs", cores(r.cpu), who, runtime.NumCPU())
	} else {
		line("cpu\tthis process: unknown on %s", runtime.GOOS)
	}
	if r.t.cfg == nil && r.metrics != nil {
		if v, ok := r.metrics.sum("process_cpu_seconds_total")[""]; ok {
			line("\tthe service %s (its process_cpu_seconds_total)", cores(time.Duration(v*float64(time.Second))))
		}
	}
}

// writeServiceLatency says how long the service itself took per operation, from its
// mdegraph_graphql_operation_duration_seconds histogram (from the request reaching the GraphQL
// handler to its answer: without the wait for a connection to be read, nor the load
// generator's own): an upper bound per percentile, the histogram's buckets being coarse.
func (r *report) writeServiceLatency(line func(string, ...any)) {
	if r.metrics == nil {
		return
	}
	const name = "mdegraph_graphql_operation_duration_seconds"
	var parts []string
	for _, q := range []struct {
		label string
		q     float64
	}{{"p50", 0.5}, {"p90", 0.9}, {"p99", 0.99}, {"max", 1}} {
		b, ok := r.metrics.quantileBound(name, q.q)
		if !ok {
			return
		}
		bound := "beyond the last bucket"
		if !math.IsInf(b, 1) {
			bound = "≤ " + time.Duration(b*float64(time.Second)).Round(10*time.Microsecond).String()
		}
		parts = append(parts, q.label+" "+bound)
	}
	line("\tin the service: %s\t(its %s)", strings.Join(parts, "  "), name)
}

func (r *report) writeUpstream(line func(string, ...any)) {
	if r.stats == nil {
		line("upstream\t(from the target's /metrics, mdegraph_upstream_calls_total; Defender's own sliding-window counts are known in-process only)")
		if r.metrics == nil {
			line("  calls\t%s", r.metricsNote)
		} else {
			for _, k := range sortedKeys(r.metrics.sum("mdegraph_upstream_calls_total", "endpoint")) {
				line("  %s\t%s", k, r.statusCounts(k))
			}
		}
		if n, ok := r.upstream429s(); ok {
			line("  429 answers\t%d", n)
		} else {
			line("  429 answers\tunknown")
		}
		line("  max calls in any 60 s\tunavailable with -url")
	} else {
		line("upstream\t(the simulator's own count: what Defender sees)")
		line("  endpoint\tcalls\t429\tmax in 60 s\tmax in 3600 s\tcanceled\tby status")
		for _, e := range append(slices.Clone(apiEndpoints), simulator.EndpointToken) {
			st := r.stats[e]
			inMinute, inHour := fmt.Sprint(st.MaxInAnyMinute), fmt.Sprint(st.MaxInAnyHour)
			if e != simulator.EndpointToken {
				inMinute += "/" + limitText(r.t.simOpts.PerMinute)
				inHour += "/" + limitText(r.t.simOpts.PerHour)
			}
			byStatus := map[string]int{}
			for s, n := range st.ByStatus {
				byStatus[strconv.Itoa(s)] = n
			}
			line("  %s\t%d\t%d\t%s\t%s\t%d\t%s", e, st.Calls, st.TooManyRequests, inMinute, inHour, st.Canceled, countsText(byStatus))
		}
		n, _ := r.upstream429s()
		line("  429 answers\t%d", n)
	}
	if calls, ok := r.logonUsersCalls(); ok && len(r.asked) > 0 {
		line("  logonusers calls per distinct id\t%.2f\t(%d calls / %d distinct ids asked)", float64(calls)/float64(len(r.asked)), calls, len(r.asked))
		line("  logonusers calls per query\t%.3f\t(%d calls / %d queries)", float64(calls)/float64(max(r.sent, 1)), calls, r.sent)
	}
	r.writePerKey(line)
	if r.logonCalls != nil {
		most, stray := 0, 0
		for id, n := range r.logonCalls {
			most = max(most, n)
			if !r.asked[id] {
				stray += n
			}
		}
		line("  most logonusers calls for one id\t%d", most)
		if stray > 0 {
			line("  logonusers calls for ids never asked\t%d", stray)
		}
	}
}

// writePerKey writes, for each endpoint, the upstream calls per distinct key (device id,
// account name, page) as the simulator counted them, and the distinct keys the asked devices
// hold: one call per distinct key is the target, whatever the number of queries.
func (r *report) writePerKey(line func(string, ...any)) {
	if r.keyCalls == nil {
		line("  calls per distinct key\tknown in-process only")
		return
	}
	ids, appearances, names := 0, 0, map[string]bool{}
	for _, tg := range r.w.targets {
		if !r.asked[tg.id] {
			continue
		}
		ids++
		appearances += len(tg.users)
		for _, u := range tg.users {
			names[strings.ToLower(u.accountName)] = true
		}
	}
	wantKeys := map[simulator.Endpoint]string{
		simulator.EndpointLogonUsers:    fmt.Sprintf("%d distinct device ids asked", ids),
		simulator.EndpointMachineAlerts: fmt.Sprintf("%d distinct device ids asked", ids),
		simulator.EndpointUserMachines: fmt.Sprintf("%d distinct account names among their %d logon users (one call per distinct name, not per appearance)",
			len(names), appearances),
	}
	line("  calls per distinct key\t(the simulator's count, by device id, account name or page)")
	for _, e := range apiEndpoints {
		calls := r.keyCalls[e]
		if len(calls) == 0 {
			continue
		}
		total, most := 0, 0
		for _, n := range calls {
			total += n
			most = max(most, n)
		}
		note := ""
		if w, ok := wantKeys[e]; ok {
			note = "; " + w
		}
		line("    %s\t%d calls, %d distinct keys: %.2f per key, at most %d for one%s", e, total, len(calls), float64(total)/float64(len(calls)), most, note)
	}
}

func (r *report) writeMetrics(line func(string, ...any)) {
	if r.metrics == nil {
		line("service metrics\t%s", r.metricsNote)
		return
	}
	line("service metrics\t(this run's increase of the service's /metrics)")
	calls := r.metrics.sum("mdegraph_upstream_calls_total", "endpoint", "status")
	line("  upstream calls\t%s", countsText(toInts(calls)))
	line("  calls saved\t%s", countsText(toInts(r.metrics.sum("mdegraph_upstream_calls_saved_total", "endpoint", "reason"))))
	line("  stale answers\t%s", countsText(toInts(r.metrics.sum("mdegraph_stale_answers_total", "endpoint", "reason"))))
	line("  quota waits\t%s", countsText(toInts(r.metrics.sum("mdegraph_quota_wait_seconds_count", "endpoint", "outcome"))))
	line("  operations\t%s", countsText(toInts(r.metrics.sum("mdegraph_graphql_operations_total", "outcome"))))
}

// statusCounts lists the target's upstream calls of one endpoint family by status.
func (r *report) statusCounts(endpoint string) string {
	byStatus := map[string]int{}
	for k, v := range r.metrics.sum("mdegraph_upstream_calls_total", "endpoint", "status") {
		if e, s, _ := strings.Cut(k, "/"); e == endpoint {
			byStatus[s] += int(v)
		}
	}
	return countsText(byStatus)
}

// pct is the nearest-rank percentile p of the latencies.
func (r *report) pct(p float64) time.Duration {
	n := len(r.latencies)
	if n == 0 {
		return 0
	}
	i := min(max(int(p*float64(n)+0.999999)-1, 0), n-1)
	d := r.latencies[i]
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

func limitText(n int) string {
	if n < 0 {
		return "unlimited"
	}
	return strconv.Itoa(n)
}

// countsText renders counts as "a 3, b 1", largest first; zero counts are left out.
func countsText(m map[string]int) string {
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, func(a, b string) int {
		if m[a] != m[b] {
			return m[b] - m[a]
		}
		return strings.Compare(a, b)
	})
	var parts []string
	for _, k := range keys {
		if m[k] != 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func toInts(m map[string]float64) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = int(v)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := slices.Collect(maps.Keys(m))
	slices.Sort(keys)
	return keys
}
