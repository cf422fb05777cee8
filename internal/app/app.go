// Package app assembles the service from its configuration: the upstream (Defender, or the
// embedded simulator in demo mode), who may call (AUTH_MODE, the CSRF check) and as whom
// Defender is asked (UPSTREAM_IDENTITY: the application's token source, or each person's
// on-behalf-of), the quota limiter, the client, the loaders, the GraphQL handler, the web pages
// and the metrics. server.go routes and serves
// what it builds; the load test and the end-to-end tests build the same thing in-process.
// Outside demo mode it also checks the credentials once at startup, in the background, and
// logs the outcome.
package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/oauth2"

	"github.com/mdegraph/mdegraph/internal/callerauth"
	"github.com/mdegraph/mdegraph/internal/callerlimit"
	"github.com/mdegraph/mdegraph/internal/config"
	"github.com/mdegraph/mdegraph/internal/csrf"
	"github.com/mdegraph/mdegraph/internal/defender"
	"github.com/mdegraph/mdegraph/internal/drain"
	"github.com/mdegraph/mdegraph/internal/gqlhttp"
	"github.com/mdegraph/mdegraph/internal/loaders"
	"github.com/mdegraph/mdegraph/internal/metrics"
	"github.com/mdegraph/mdegraph/internal/quietlog"
	"github.com/mdegraph/mdegraph/internal/quota"
	"github.com/mdegraph/mdegraph/internal/simulator"
	"github.com/mdegraph/mdegraph/internal/tracing"
	"github.com/mdegraph/mdegraph/internal/upstreamauth"
	"github.com/mdegraph/mdegraph/internal/web"
	"github.com/mdegraph/mdegraph/resolvers"
)

// QuotaMargin widens Defender's windows a little: Defender counts calls when they arrive, and
// two calls sent exactly a window apart can arrive closer together.
const QuotaMargin = time.Second

// CredentialCheckTimeout bounds how long the startup credential check waits for a token.
const CredentialCheckTimeout = 15 * time.Second

// The token source is what the client asks for its bearer token before it takes quota.
var _ defender.TokenSource = (*upstreamauth.Source)(nil)

// App is the assembled service.
type App struct {
	// GraphQL serves /query, in this order: the HTTP server span when tracing is on (OTEL_*
	// variables, package tracing), CORS (which answers preflights), the CSRF check, Drain
	// (which at the end of a shutdown's grace answers what is still running SHUTTING_DOWN), the
	// sign-in (AUTH_MODE: the caller's principal, or 401/403), CALLER_LIMIT_PER_MINUTE when
	// set, REQUEST_TIMEOUT, per-request loaders keyed by the upstream identity, and the gqlgen
	// handler. A request refused on the way reaches nothing after it: no quota is spent,
	// Defender is not called.
	GraphQL http.Handler
	// Playground, Example and Static are the web pages (Static expects the /static prefix stripped).
	Playground, Example, Static http.Handler
	// Health answers while the process runs; Ready once a Defender token can be had, and
	// 503 again from the first stop signal (Drain.Begin).
	Health, Ready http.Handler
	// Drain stops the service gracefully; server.go calls its Shutdown at a stop signal.
	Drain *drain.Drain
	// Metrics serves Prometheus metrics: as they are when METRICS_ADDR is set (server.go serves
	// them there alone), else behind the sign-in, for ADDR.
	Metrics http.Handler
	// Profiles serves Go's runtime profiles under /debug/pprof/ with PPROF=true (nil
	// otherwise), for the METRICS_ADDR listener only: configuration refuses PPROF without it.
	Profiles http.Handler

	// UpstreamURL is the Defender API base URL in use.
	UpstreamURL string
	// Simulator is the embedded upstream in demo mode, nil otherwise.
	Simulator *simulator.Simulator
	// ExampleDevice prefills the playground and the example page ("" outside demo mode).
	ExampleDevice string
	// Quota is the upstream limiter: in process, or shared through Redis (REDIS_URL).
	Quota Quota

	close            func()
	credentialsCheck chan struct{}
	tracing          *tracing.Provider
}

// Options change how New builds the App, for tests and the load test.
type Options struct {
	// Simulator, when not nil, configures the demo-mode simulator (its Latency and Logger are
	// taken from the configuration when zero).
	Simulator *simulator.Options
	// Client, when not nil, is applied to the client options before the client is built
	// (tests shorten retry delays with it).
	Client func(*defender.Options)
	// BatchWait, when not zero, replaces loaders.DefaultBatchWait (tests that count list calls
	// lengthen it, so that a slow scheduler cannot split a batch).
	BatchWait time.Duration
	// QuotaWindows, when not empty, replace the windows made of MDE_LIMIT_PER_MINUTE and
	// MDE_LIMIT_PER_HOUR (tests use windows of a second, to see queues fill and drain).
	QuotaWindows []quota.Window
	// TracerProvider, when not nil, makes the service's spans instead of the provider the
	// OTEL_* variables describe (tests pass an SDK provider with an in-memory exporter); New
	// neither makes it global nor shuts it down.
	TracerProvider trace.TracerProvider
	// Upstream, when not nil in demo mode, is the simulator to use instead of a new one:
	// replicas in tests and the load test share one upstream, as they share Defender.
	Upstream *simulator.Simulator
}

// DefenderLimitPerMinute and DefenderLimitPerHour are the limits Defender publishes for each
// endpoint family; configuring more only earns 429s.
const (
	DefenderLimitPerMinute = 100
	DefenderLimitPerHour   = 1500
)

// New builds the service described by cfg. ctx is the application's lifetime: the token
// source, the demo simulator and the startup credential check live on it. Close releases what
// New started.
//
// Outside demo mode New starts the credential check and returns without waiting for it: it
// fetches a token (waiting at most CredentialCheckTimeout) and logs one INFO line if Entra ID
// gave one, one WARN line naming the problem otherwise; the service starts either way, and
// queries share the check's token, or its failure for upstreamauth.FailureTTL.
func New(ctx context.Context, cfg config.Config, logger *slog.Logger, opts Options) (*App, error) {
	a := &App{close: func() {}, credentialsCheck: make(chan struct{}), Drain: drain.New()}
	creds, err := a.upstream(ctx, cfg, logger, opts)
	if err != nil {
		return nil, err
	}
	if a.tracing, err = newTracing(ctx, logger, opts); err != nil {
		a.Close()
		return nil, err
	}

	if cfg.LimitPerMinute > DefenderLimitPerMinute || cfg.LimitPerHour > DefenderLimitPerHour {
		logger.Warn("quota limits above Defender's published ones: Defender will answer 429 before the service holds calls back",
			"limit_per_minute", cfg.LimitPerMinute, "defender_per_minute", DefenderLimitPerMinute,
			"limit_per_hour", cfg.LimitPerHour, "defender_per_hour", DefenderLimitPerHour)
	}
	windows := []quota.Window{
		{Limit: cfg.LimitPerMinute, Per: time.Minute + QuotaMargin},
		{Limit: cfg.LimitPerHour, Per: time.Hour + QuotaMargin},
	}
	if len(opts.QuotaWindows) > 0 {
		windows = opts.QuotaWindows
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := metrics.New(reg)
	var sh *shared
	readyNote := func() string { return "" }
	if cfg.Redis.URL != "" {
		if sh, err = openShared(ctx, cfg, windows, logger, metrics.NewRedis(reg)); err != nil {
			a.Close()
			return nil, err
		}
		sh.limiter.OnWait = m.ObserveWait
		a.Quota, readyNote = sh.limiter, sh.readyNote(cfg.Redis.Replicas)
		closeUpstream := a.close
		a.close = func() { sh.store.Close(); closeUpstream() }
	} else {
		set := quota.NewSet(cfg.QuotaMaxWait, windows...)
		for _, f := range families() {
			set.Limiter(f)
		}
		set.OnWait = m.ObserveWait
		a.Quota = set
	}
	reg.MustRegister(metrics.NewQuotaCollector(a.Quota))
	refused := metrics.NewRefusals(reg)

	auth, err := signIn(ctx, cfg, a.Simulator, logger, refused.SignIn)
	if err != nil {
		a.Close()
		return nil, err
	}
	guard, err := csrf.New(csrf.Options{TrustedOrigins: cfg.CORSOrigins, Logger: logger, OnRefusal: refused.CSRF})
	if err != nil {
		a.Close()
		return nil, err
	}
	appTokens := upstreamauth.TokenSource(ctx, creds)
	appTokens.Observe = m.ObserveTokenRequest
	tokens, identity := upstreamTokens(ctx, cfg, creds, appTokens, m.ObserveTokenRequest)
	logger.Info("callers", "auth_mode", cfg.AuthMode, "upstream_identity", cfg.UpstreamIdentity,
		"demo_sign_in", cfg.Demo && cfg.AuthMode != callerauth.ModeAPIKey, "metrics_addr", cfg.MetricsAddr)
	clientOpts := defender.Options{
		BaseURL: a.UpstreamURL,
		Tokens:  tokens, // asked before the limiter: a sign-in failure takes no quota
		Limiter: a.Quota,
		Logger:  logger,
		Observe: m.ObserveCall,
	}
	if opts.Client != nil {
		opts.Client(&clientOpts)
	}
	client, err := defender.New(clientOpts)
	if err != nil {
		a.Close()
		return nil, err
	}
	var answers *gqlhttp.ResponseCache // nil keeps none: off, or nothing is ever fresh (CACHE_TTL=0)
	if cfg.ResponseCacheBytes > 0 && cfg.CacheTTL > 0 {
		answers = gqlhttp.NewResponseCache(cfg.ResponseCacheBytes, m.ObserveResponseCache)
	}
	loaderOpts := loaders.Options{
		Source:      loaders.FromClient(client),
		CacheTTL:    cfg.CacheTTL,
		NotFoundTTL: cfg.NotFoundTTL,
		StaleTTL:    cfg.StaleTTL,
		CallTimeout: cfg.RequestTimeout,
		BatchWait:   opts.BatchWait,
		Observer:    m,
		Logger:      logger,
		Forgotten:   answers.Forget,
	}
	if sh != nil {
		sh.loaders(&loaderOpts)
	}
	fetcher := loaders.NewFetcher(loaderOpts)
	gql := gqlhttp.New(gqlhttp.Options{
		Resolver:         &resolvers.Resolver{Quota: a.Quota, Logger: logger},
		MaxUpstreamCalls: cfg.MaxUpstreamCalls,
		MaxBodyBytes:     cfg.MaxBodyBytes,
		Limits:           cfg.QueryLimits,
		Introspection:    cfg.Introspection,
		APQCacheSize:     cfg.APQCacheSize,
		Logger:           logger,
		ObserveOperation: m.ObserveOperation,
		CacheMaxAge:      cfg.CacheTTL,
		AuthMode:         cfg.AuthMode,
		ResponseCache:    answers,
	})
	h := withTimeout(cfg.RequestTimeout, loaders.Middleware(fetcher, identity, gql))
	if cfg.CallerLimitPerMinute > 0 { // per principal, before anything is read
		h = callerlimit.New(callerlimit.Options{Limit: cfg.CallerLimitPerMinute, OnRefuse: m.ObserveCallerLimit, Logger: logger}).Handler(h)
	}
	a.GraphQL = a.tracing.Handler(gqlhttp.CORS(cfg.CORSOrigins)(guard.Handler(a.Drain.Requests(auth.Handler(h), gqlhttp.ShuttingDown))))

	playground := web.PlaygroundOptions{
		Endpoint:        "/query",
		Title:           "mdegraph",
		Query:           web.DefaultQuery,
		Variables:       web.DeviceVariables(a.ExampleDevice),
		NoIntrospection: !cfg.Introspection,
		AuthHint:        auth.Hint(),
	}
	if cfg.Demo && cfg.AuthMode != callerauth.ModeAPIKey {
		playground.DemoPersons, playground.DemoSignIn = demoPersons(a.Simulator, cfg.UpstreamIdentity), a.Simulator.SignIn
	}
	a.Playground = web.Playground(playground)
	a.Example = web.Example(web.ExampleOptions{Endpoint: "/query", DeviceID: a.ExampleDevice})
	a.Static = web.Static()
	a.Health = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	a.Ready = a.Drain.Ready(readiness(appTokens, logger, readyNote))
	a.Metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	if cfg.MetricsAddr == "" {
		a.Metrics = auth.Handler(a.Metrics)
	}
	if cfg.Pprof {
		a.Profiles = profiles()
	}

	if cfg.Demo {
		close(a.credentialsCheck) // the simulator's credentials are right by construction
	} else {
		go func() {
			defer close(a.credentialsCheck)
			checkCredentials(ctx, appTokens, creds, logger, CredentialCheckTimeout)
		}()
	}
	return a, nil
}

// Close stops the demo simulator, if one runs, and exports the spans not yet exported.
func (a *App) Close() {
	a.close()
	a.tracing.Close()
}

// newTracing returns opts.TracerProvider's tracing, or the one the OTEL_* variables describe,
// made the process's global one when on.
func newTracing(ctx context.Context, logger *slog.Logger, opts Options) (*tracing.Provider, error) {
	if opts.TracerProvider != nil {
		return tracing.Using(opts.TracerProvider), nil
	}
	t, err := tracing.FromEnvironment(ctx, logger)
	t.SetGlobal()
	return t, err
}

// CredentialsChecked is closed once the startup credential check has logged its line; in demo
// mode, which has no check, it is closed from the start.
func (a *App) CredentialsChecked() <-chan struct{} { return a.credentialsCheck }

// upstream points the App at Defender from cfg, or in demo mode starts the embedded simulator
// on a loopback port, and returns the credentials to use.
func (a *App) upstream(ctx context.Context, cfg config.Config, logger *slog.Logger, opts Options) (upstreamauth.ClientCredentials, error) {
	if !cfg.Demo {
		a.UpstreamURL = cfg.APIURL
		return upstreamauth.ClientCredentials{TenantID: cfg.TenantID, ClientID: cfg.ClientID,
			ClientSecret: cfg.ClientSecret.Reveal(), TokenURL: cfg.TokenURL, Scope: cfg.Scope}, nil
	}
	simOpts := simulator.Options{}
	if opts.Simulator != nil {
		simOpts = *opts.Simulator
	}
	if simOpts.Latency == 0 {
		simOpts.Latency = cfg.DemoLatency
	}
	if simOpts.Logger == nil {
		simOpts.Logger = logger.With("component", "simulator")
	}
	sim := opts.Upstream
	if sim == nil {
		sim = simulator.New(simOpts)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return upstreamauth.ClientCredentials{}, fmt.Errorf("demo mode: start the simulator: %w", err)
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	go func() { _ = srv.Serve(ln) }()
	a.close = func() { _ = srv.Close() }
	a.Simulator = sim
	a.UpstreamURL = "http://" + ln.Addr().String()
	sim.SetAuthority(a.UpstreamURL) // the simulator's Entra ID issues the demo persons' tokens
	a.ExampleDevice = sim.ExampleMachineID()
	logger.Info("demo mode: no MDE_* credentials set, so the upstream is the embedded Defender simulator (deterministic demo data, Defender's real rate limits)",
		"simulator", a.UpstreamURL, "example_device", a.ExampleDevice)
	return upstreamauth.ClientCredentials{TenantID: simulator.DemoTenantID, ClientID: sim.ClientID(),
		ClientSecret: sim.ClientSecret(), TokenURL: a.UpstreamURL + "/" + simulator.DemoTenantID + "/oauth2/v2.0/token",
		Scope: "https://api.securitycenter.microsoft.com/.default"}, nil
}

// profiles serves net/http/pprof's handlers under /debug/pprof/ (the index, cmdline, profile,
// symbol, trace, and every runtime profile by name: heap, goroutine, mutex, block, allocs, ...).
// Mutex and block profiles record nothing until their rates are set: ?debug=1 shows that;
// the CPU profile and the trace take ?seconds=N.
func profiles() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return mux
}

// withTimeout bounds each request, so nothing waits past REQUEST_TIMEOUT.
func withTimeout(d time.Duration, next http.Handler) http.Handler {
	cause := fmt.Errorf("the request took longer than REQUEST_TIMEOUT (%v)", d) // once, not per request
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeoutCause(r.Context(), d, cause)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// tokenGetter is what readiness and the credential check ask: a token now (upstreamauth.Source).
type tokenGetter interface {
	TokenContext(ctx context.Context) (*oauth2.Token, error)
}

// readiness answers 200 once the service can get a token for Defender; it spends no API quota.
// A failure is the token source's remembered one within upstreamauth.FailureTTL, so frequent probes do
// not hammer the token endpoint. note adds to "ready" what a probe's reader should know (Redis
// unreachable).
func readiness(tokens tokenGetter, logger *slog.Logger, note func() string) http.Handler {
	repeats := quietlog.New(time.Minute) // a probe every few seconds must not flood the log
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := tokens.TokenContext(r.Context()); err != nil {
			level, lowered := repeats.Level(err.Error(), slog.LevelWarn)
			logger.Log(r.Context(), level, "not ready: no token for Defender", "error", err.Error(), "repeats_since_last_warning", lowered)
			http.Error(w, "not ready: cannot get a token for Defender (see the service log)", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready"+note())
	})
}

// checkCredentials fetches a token from tokens, waiting at most timeout, and logs one line:
// INFO if Entra ID gave one, WARN otherwise, saying which failure it was (outcome: refused,
// throttled, unavailable, timeout) and so what queries will answer meanwhile. A refusal names
// the setting to check. The line carries Entra ID's error code and description (AADSTS...),
// never the secret.
func checkCredentials(ctx context.Context, tokens tokenGetter, creds upstreamauth.ClientCredentials, logger *slog.Logger, timeout time.Duration) {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tok, err := tokens.TokenContext(cctx)
	attrs := []slog.Attr{slog.String("tenant", creds.TenantID), slog.String("client_id", creds.ClientID),
		slog.String("token_url", creds.TokenURL)}
	switch {
	case err == nil:
		if !tok.Expiry.IsZero() {
			attrs = append(attrs, slog.Duration("token_expires_in", time.Until(tok.Expiry).Round(time.Second)))
		}
		logger.LogAttrs(ctx, slog.LevelInfo, "credentials checked: Entra ID issued a token for Defender", attrs...)
		return
	case ctx.Err() != nil:
		return // shutting down before the check finished: nothing worth saying
	case errors.Is(err, context.DeadlineExceeded):
		attrs = append(attrs, slog.String("outcome", "timeout"), slog.Duration("timeout", timeout))
		logger.LogAttrs(ctx, slog.LevelWarn, "credentials not checked: Entra ID's token endpoint did not answer in time; "+
			"queries wait for it (up to REQUEST_TIMEOUT) and answer UPSTREAM_UNAVAILABLE if it stays silent", attrs...)
		return
	}
	e := upstreamauth.Classify(err, time.Now())
	attrs = append(attrs, slog.String("outcome", e.Kind.String()))
	if e.StatusCode != 0 {
		attrs = append(attrs, slog.Int("status", e.StatusCode))
	}
	if e.Code != "" || e.StatusCode == 0 {
		attrs = append(attrs, slog.String("error", redact(cmp.Or(e.Code, e.Error()), creds.ClientSecret)))
	}
	if e.Description != "" {
		attrs = append(attrs, slog.String("error_description", redact(e.Description, creds.ClientSecret)))
	}
	switch e.Kind {
	case upstreamauth.Refused:
		attrs = append(attrs, slog.String("hint", e.Hint()))
		logger.LogAttrs(ctx, slog.LevelWarn, "credentials refused: Entra ID would not issue a token for Defender, "+
			"so every query will fail with UPSTREAM_UNAUTHORIZED until the configuration is fixed", attrs...)
	case upstreamauth.Throttled:
		attrs = append(attrs, slog.Duration("retry_after", time.Until(e.RetryAt).Round(time.Second)))
		logger.LogAttrs(ctx, slog.LevelWarn, "credentials not checked: Entra ID's token endpoint is throttling this service (429); "+
			"queries answer RATE_LIMITED until it may be asked again", attrs...)
	default:
		logger.LogAttrs(ctx, slog.LevelWarn, "credentials not checked: Entra ID's token endpoint failed or could not be reached (not a credentials problem); "+
			"queries answer UPSTREAM_UNAVAILABLE and will try again", attrs...)
	}
}

// redact removes secret from s, in case a token endpoint ever echoes it back.
func redact(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, "[redacted]")
}
