package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/mdegraph/mdegraph/internal/config"
	"github.com/mdegraph/mdegraph/internal/simulator"
)

// options is the load test's configuration, from its flags.
type options struct {
	clients  int
	queries  int
	ids      int
	unknown  float64
	zipf     float64
	seed     uint64
	details  bool
	shape    shape
	timeout  time.Duration
	progress time.Duration
	// warmup asks each distinct query of the plan once before the measured run, so that the
	// run measures the warm path alone.
	warmup bool
	// profiles of the load test's process over the measured run.
	profiles profiles

	// The in-process service and its simulator.
	cacheTTL                 string // CACHE_TTL; "" leaves it to -env, the environment, or the default
	env                      envFlag
	latency                  time.Duration
	simPerMinute, simPerHour int
	replicas                 int // in-process replicas sharing one Redis and one simulator

	// The data set answers are checked against (in -url mode: the one the target serves).
	simSeed int64
	devices int // 0: the demo data set's, or more in-process if -m needs more

	url        string // a running service's /query; "" starts one in-process
	metricsURL string
}

// inProcess reports whether the load test starts the service itself.
func (o options) inProcess() bool { return o.url == "" }

// envFlag collects -env KEY=VALUE settings for the in-process service.
type envFlag map[string]string

func (e envFlag) String() string {
	keys := make([]string, 0, len(e))
	for k := range e {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + e[k]
	}
	return strings.Join(parts, " ")
}

// Set accepts one KEY=VALUE whose KEY is one of the service's settings (config.Settings).
func (e envFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q: want KEY=VALUE, e.g. QUOTA_MAX_WAIT=5s", s)
	}
	if !slices.ContainsFunc(config.Settings, func(st config.Setting) bool { return st.Env == k }) {
		return fmt.Errorf("%q: %s is not one of the service's settings (see go run . -h)", s, k)
	}
	e[k] = v
	return nil
}

const usageHeader = `Usage: go run ./cmd/loadtest [flags]

Sends -q GraphQL queries from -c concurrent clients, each asking for the logon users (or, with
-shape, their machines and the device's alerts) of one of -m device ids picked with a Zipf popularity, checks every answer against the simulator's data,
and reports latency, throughput and the upstream calls the service made. It exits non-zero if
any answer was wrong, if the upstream answered 429, or if any endpoint received more calls in a
60 s window than its limit.

By default the service runs in-process, in demo mode on the embedded simulator, exactly as
"go run ." builds it, served on a loopback port. With -url it targets a running service instead;
that service must serve the data set the load test checks against: the default demo data set of
"go run ." (or a defender-simulator started with the same -seed/-devices as -sim-seed/-devices).

Flags:
`

// parseOptions reads the flags. It returns flag.ErrHelp after writing the usage for -h.
func parseOptions(args []string, stderr io.Writer) (options, error) {
	o := options{env: envFlag{}}
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageHeader)
		fs.PrintDefaults()
	}
	fs.IntVar(&o.clients, "c", 200, "concurrent clients")
	fs.IntVar(&o.queries, "q", 5000, "total queries")
	fs.IntVar(&o.ids, "m", 100, "distinct device ids asked for")
	fs.Float64Var(&o.unknown, "unknown", 0.05, "fraction of the -m ids that Defender does not know (valid 40-hex ids)")
	fs.Float64Var(&o.zipf, "zipf", 1.1, "Zipf skew s of the ids' popularity (must be > 1)")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the workload: which ids are unknown, their popularity, the query order")
	fs.BoolVar(&o.details, "details", false, "also select a machine detail field (computerDnsName): one more upstream call per device")
	shapeName := fs.String("shape", "logonusers", "what each query asks of its device: "+shapeNames()+
		" (users-machines adds each logon user's machines, one call per distinct account name; alerts asks the device's alerts instead of its users; graph asks both)")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "per-query deadline; an answer later than this is wrong")
	fs.BoolVar(&o.warmup, "warmup", false, "before the measured run, ask each distinct query of the plan once (answers checked, not measured), so that the run measures the warm path")
	fs.StringVar(&o.profiles.cpu, "cpuprofile", "", "write a CPU profile of the load test's process over the measured run to `file` (in-process: the service and the load generator)")
	fs.StringVar(&o.profiles.trace, "trace", "", "write an execution trace of the load test's process over the measured run to `file` (go tool trace)")
	fs.StringVar(&o.profiles.mutex, "mutexprofile", "", "write a mutex contention profile of the measured run to `file`")
	fs.StringVar(&o.profiles.block, "blockprofile", "", "write a profile of goroutine blocking (10 µs and more) in the measured run to `file`")
	fs.StringVar(&o.profiles.heap, "memprofile", "", "write an allocation profile (since the start of the process) to `file` after the run")
	fs.DurationVar(&o.progress, "progress", 3*time.Second, "interval of the progress line on stderr (0: none)")
	fs.StringVar(&o.cacheTTL, "cache-ttl", "", "the in-process service's CACHE_TTL, a `duration`; 0 disables the cache (default: -env, the environment, or the service's 60s)")
	fs.Var(o.env, "env", "a `KEY=VALUE` setting of the in-process service, e.g. QUOTA_MAX_WAIT=5s (repeatable; wins over the environment, which is read too)")
	fs.DurationVar(&o.latency, "latency", 50*time.Millisecond, "latency the in-process simulator adds to every upstream call")
	fs.IntVar(&o.simPerMinute, "sim-per-minute", simulator.DefaultPerMinute, "the in-process simulator's (Defender's) calls per endpoint per 60 s; negative: unlimited")
	fs.IntVar(&o.replicas, "replicas", 1, "in-process replicas of the service, sharing one simulator and, above 1, one Redis (REDIS_URL from -env or the environment, or a redis-server the load test starts); queries go to them in turn")
	fs.IntVar(&o.simPerHour, "sim-per-hour", simulator.DefaultPerHour, "the in-process simulator's (Defender's) calls per endpoint per 3600 s; negative: unlimited")
	fs.Int64Var(&o.simSeed, "sim-seed", simulator.DefaultSeed, "the simulator's data set seed (the demo data set's by default)")
	fs.IntVar(&o.devices, "devices", 0, fmt.Sprintf("the simulator's device count (default: the demo data set's %d, raised in-process when -m needs more known ids)", simulator.DefaultDevices))
	fs.StringVar(&o.url, "url", "", "a running service's GraphQL endpoint `URL`, e.g. http://127.0.0.1:8080/query (default: start one in-process)")
	fs.StringVar(&o.metricsURL, "metrics-url", "", "with -url, the `URL` of the service's Prometheus metrics (default: /metrics next to -url; \"-\": none)")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	sh, ok := shapes[*shapeName]
	if !ok {
		return options{}, fmt.Errorf("-shape %q: want one of %s", *shapeName, shapeNames())
	}
	o.shape = sh
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if err := o.validate(given); err != nil {
		return options{}, err
	}
	return o, nil
}

func (o *options) validate(given map[string]bool) error {
	var errs []error
	if o.clients < 1 {
		errs = append(errs, fmt.Errorf("-c %d: want at least 1 client", o.clients))
	}
	if o.queries < 1 {
		errs = append(errs, fmt.Errorf("-q %d: want at least 1 query", o.queries))
	}
	if o.ids < 1 {
		errs = append(errs, fmt.Errorf("-m %d: want at least 1 id", o.ids))
	}
	if !(o.unknown >= 0 && o.unknown <= 1) {
		errs = append(errs, fmt.Errorf("-unknown %v: want a fraction from 0 to 1", o.unknown))
	}
	if !(o.zipf > 1) {
		errs = append(errs, fmt.Errorf("-zipf %v: want s > 1 (math/rand/v2's Zipf requires it)", o.zipf))
	}
	if o.timeout <= 0 {
		errs = append(errs, fmt.Errorf("-timeout must be positive"))
	}
	if o.latency < 0 || o.progress < 0 {
		errs = append(errs, fmt.Errorf("-latency and -progress must not be negative"))
	}
	if o.simPerMinute == 0 || o.simPerHour == 0 {
		errs = append(errs, fmt.Errorf("-sim-per-minute and -sim-per-hour must not be 0 (negative: unlimited)"))
	}
	if o.replicas < 1 {
		errs = append(errs, fmt.Errorf("-replicas %d: want at least 1", o.replicas))
	}
	if o.devices < 0 {
		errs = append(errs, fmt.Errorf("-devices %d: must not be negative", o.devices))
	}
	if o.url != "" {
		if u, err := url.Parse(o.url); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("-url %q: want an absolute http(s) URL such as http://127.0.0.1:8080/query", o.url))
		}
		for _, name := range []string{"cache-ttl", "env", "latency", "sim-per-minute", "sim-per-hour", "replicas"} {
			if given[name] {
				errs = append(errs, fmt.Errorf("-%s configures the in-process service; with -url, configure the target itself", name))
			}
		}
		if o.metricsURL == "" {
			if u, err := url.Parse(o.url); err == nil {
				// The service serves /metrics beside /query, also behind a path prefix.
				u.Path, u.RawQuery = strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), "/query")+"/metrics", ""
				o.metricsURL = u.String()
			}
		}
	} else if given["metrics-url"] {
		errs = append(errs, fmt.Errorf("-metrics-url goes with -url"))
	}
	if o.metricsURL == "-" {
		o.metricsURL = ""
	}
	return errors.Join(errs...)
}
