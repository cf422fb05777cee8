// Package config reads the service's configuration from environment variables and the
// command-line flags of the same names, validates it, and resolves the Defender cloud.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mdegraph/mdegraph/internal/callerauth"
	"github.com/mdegraph/mdegraph/internal/defender"
	"github.com/mdegraph/mdegraph/internal/querylimit"
	"github.com/mdegraph/mdegraph/internal/redisstore"
)

// Config is the validated configuration.
type Config struct {
	// Addr is the listen address.
	Addr string
	// Demo is true when no credentials were given: the embedded simulator is the upstream.
	Demo bool

	TenantID, ClientID string
	// ClientSecret prints as [redacted]; Reveal gives the value.
	ClientSecret Secret
	// Cloud is the resolved cloud (MDE_CLOUD).
	Cloud defender.Cloud
	// APIURL, TokenURL and Scope are resolved: the cloud's unless overridden.
	APIURL, TokenURL, Scope string

	// LimitPerMinute and LimitPerHour are the upstream's quota per endpoint family.
	LimitPerMinute, LimitPerHour int
	// QuotaMaxWait is the longest a call waits in line for quota before RATE_LIMITED.
	QuotaMaxWait time.Duration
	// CallerLimitPerMinute is the most GraphQL operations one caller may send in any 60 s
	// window; 0 means no limit.
	CallerLimitPerMinute int
	// CacheTTL is how long upstream answers are reused; 0 disables the cache.
	CacheTTL time.Duration
	// NotFoundTTL is how long a 404 is reused (never longer than CacheTTL).
	NotFoundTTL time.Duration
	// StaleTTL is how long after Defender gave it an answer may stand in, marked stale, for a
	// fresh one that cannot be had; 0 turns stale answers off.
	StaleTTL time.Duration
	// ResponseCacheBytes bounds the answers kept whole for repeated operations (their data,
	// in bytes); 0 keeps none.
	ResponseCacheBytes int
	// MaxUpstreamCalls is the most upstream calls one GraphQL operation may need.
	MaxUpstreamCalls int
	// RequestTimeout bounds one GraphQL request.
	RequestTimeout time.Duration
	// MaxBodyBytes bounds a POST body.
	MaxBodyBytes int64
	// QueryLimits bound each query before it is parsed (MAX_QUERY_*).
	QueryLimits querylimit.Limits
	// Introspection answers schema queries and suggests field names in errors.
	Introspection bool
	// ShutdownDelay is how long the service keeps accepting requests after the first stop
	// signal, /readyz answering 503, before it closes the listener.
	ShutdownDelay time.Duration
	// ShutdownGrace is how long requests in flight may finish once the listener is closed.
	ShutdownGrace time.Duration

	// CORSOrigins are the browser origins allowed to call /query ("*" for any).
	CORSOrigins []string
	// APQCacheSize bounds the automatic persisted query cache (entries).
	APQCacheSize int

	// LogLevel and LogFormat shape the logs.
	LogLevel  slog.Level
	LogFormat string

	// DemoLatency is added to every simulated upstream call in demo mode.
	DemoLatency time.Duration

	// AuthMode is how callers sign in (AUTH_MODE).
	AuthMode callerauth.Mode
	// APIKeys are the accepted API keys (API_KEYS and API_KEYS_FILE): names and hashes only.
	APIKeys []callerauth.APIKey
	// APIKeysFile is API_KEYS_FILE's path, for the startup log.
	APIKeysFile string
	// Entra are the settings of AUTH_MODE=entra as given (AUTH_TENANT_ID defaulted to
	// MDE_TENANT_ID), checked when AUTH_MODE=entra outside demo mode; in demo mode the
	// simulator is the Entra ID and only RequiredRole applies.
	Entra callerauth.EntraSettings
	// UpstreamIdentity is whom Defender is asked as: UpstreamApp or UpstreamUser.
	UpstreamIdentity string
	// MetricsAddr, when not empty, is the listen address of a listener serving only /metrics,
	// which the main listener then does not serve.
	MetricsAddr string
	// Redis, when URL is set, shares the quota, pauses, cache and calls in flight between
	// replicas (REDIS_*, REPLICAS).
	Redis Redis
	// Pprof serves Go's profiles (net/http/pprof, under /debug/pprof/) on the METRICS_ADDR
	// listener; it needs METRICS_ADDR, so that profiles are never on ADDR.
	Pprof bool

	// Warnings are settings accepted but adjusted (NOT_FOUND_TTL above CACHE_TTL): one line
	// each, naming the variable, for the startup log.
	Warnings []string
}

// Redis is the shared state's configuration.
type Redis struct {
	// URL is REDIS_URL (it may carry a password); empty keeps everything in process.
	URL Secret
	// Prefix starts every key (REDIS_PREFIX).
	Prefix string
	// Timeout bounds dialing and each command (REDIS_TIMEOUT).
	Timeout time.Duration
	// FallbackLocal starts degraded when Redis is unreachable at start (REDIS_FALLBACK=local)
	// instead of failing.
	FallbackLocal bool
	// Replicas is how many replicas share the Redis (REPLICAS): while it is unreachable each
	// keeps to the limits divided by it.
	Replicas int
}

// Setting documents one configuration variable; Settings drives the flags, the environment
// lookup and the README table alike.
type Setting struct {
	Env     string
	Default string
	Usage   string
}

// Flag is the command-line flag of the same setting: ADDR → -addr, MDE_CLIENT_ID → -mde-client-id.
func (s Setting) Flag() string { return strings.ToLower(strings.ReplaceAll(s.Env, "_", "-")) }

// Type names the kind of value the setting takes, as -h shows it: duration, count, url, ...
func (s Setting) Type() string {
	if t := types[s.Env]; t != "" {
		return t
	}
	return "string"
}

// types are the settings' value kinds for -h (flag.UnquoteUsage shows a back-quoted word of the
// usage as the flag's type; without one, every setting read "string").
var types = map[string]string{
	"ADDR": "host:port", "MDE_TENANT_ID": "tenant", "MDE_CLIENT_ID": "id", "MDE_CLIENT_SECRET": "secret",
	"MDE_CLOUD": "cloud", "MDE_API_URL": "url", "MDE_TOKEN_URL": "url", "MDE_SCOPE": "scope",
	"MDE_LIMIT_PER_MINUTE": "count", "MDE_LIMIT_PER_HOUR": "count", "QUOTA_MAX_WAIT": "duration",
	"CACHE_TTL": "duration", "NOT_FOUND_TTL": "duration", "MAX_UPSTREAM_CALLS_PER_QUERY": "count", "CALLER_LIMIT_PER_MINUTE": "count",
	"REQUEST_TIMEOUT": "duration", "CORS_ORIGINS": "origins", "APQ_CACHE_SIZE": "count",
	"LOG_LEVEL": "level", "LOG_FORMAT": "format", "DEMO_LATENCY": "duration",
	"MAX_BODY_BYTES": "bytes", "MAX_QUERY_TOKENS": "count", "MAX_QUERY_ALIASES": "count", "MAX_QUERY_DEPTH": "count",
	"MAX_QUERY_FIELDS": "count", "MAX_QUERY_DIRECTIVES": "count", "INTROSPECTION": "auto|true|false",
	"SHUTDOWN_DELAY": "duration", "SHUTDOWN_GRACE": "duration", "STALE_TTL": "duration", "RESPONSE_CACHE_BYTES": "bytes", "PPROF": "true|false",
	"AUTH_MODE": "none|apikey|entra", "API_KEYS": "name:sha256hex,...", "API_KEYS_FILE": "path", "AUTH_TENANT_ID": "tenant",
	"AUTH_ISSUER": "url", "AUTH_AUDIENCE": "audiences", "AUTH_REQUIRED_ROLE": "role", "UPSTREAM_IDENTITY": "auto|app|user",
	"METRICS_ADDR": "host:port",
	"REDIS_URL":    "url", "REDIS_PREFIX": "prefix", "REDIS_TIMEOUT": "duration", "REDIS_FALLBACK": "fail|local", "REPLICAS": "count",
}

// Whom Defender is asked as (UPSTREAM_IDENTITY, resolved).
const (
	// UpstreamApp: the application's own token (client credentials), for every caller.
	UpstreamApp = "app"
	// UpstreamUser: each signed-in person's token, exchanged on-behalf-of the person, so that
	// Defender's device-group RBAC applies to each.
	UpstreamUser = "user"
)

// value is a setting's flag: a string, parsed with the others after the environment is read.
// It is not a flag.Value of package flag's own, so -h prints its default unquoted.
type value string

func (v *value) String() string     { return string(*v) }
func (v *value) Set(s string) error { *v = value(s); return nil }

// Settings lists every configuration variable, in README order.
var Settings = []Setting{
	{"ADDR", "127.0.0.1:8080", "listen address (loopback by default; use :8080 to listen on all interfaces)"},
	{"MDE_TENANT_ID", "", "Entra ID tenant of the Defender tenant: its id (a GUID) or its domain (contoso.onmicrosoft.com); with no credentials at all the service runs in demo mode"},
	{"MDE_CLIENT_ID", "", "application (client) id of the Entra ID app registration"},
	{"MDE_CLIENT_SECRET", "", "client secret of that app registration"},
	{"MDE_CLOUD", "commercial", "Defender cloud: " + strings.Join(defender.CloudNames(), ", ")},
	{"MDE_API_URL", "", "API base URL without /api (default: the cloud's, e.g. https://api.securitycenter.microsoft.com)"},
	{"MDE_TOKEN_URL", "", "OAuth2 token URL (default: the cloud's login host + /{tenant}/oauth2/v2.0/token)"},
	{"MDE_SCOPE", "", "OAuth2 scope (default: the cloud's API host + /.default)"},
	{"MDE_LIMIT_PER_MINUTE", "100", "upstream calls allowed per endpoint family in any 60 s window"},
	{"MDE_LIMIT_PER_HOUR", "1500", "upstream calls allowed per endpoint family in any 3600 s window"},
	{"QUOTA_MAX_WAIT", "10s", "longest a call waits in line for quota before the field fails with RATE_LIMITED"},
	{"CALLER_LIMIT_PER_MINUTE", "0", "GraphQL operations one caller (client address, API key or person) may send in any 60 s window, refused beyond with HTTP 429 and RATE_LIMITED; 0 for no limit"},
	{"CACHE_TTL", "60s", "how long upstream answers are reused; 0 disables the cache"},
	{"NOT_FOUND_TTL", "10s", "how long an upstream 404 is reused (at most CACHE_TTL)"},
	{"STALE_TTL", "1h", "when no fresh answer can be had (quota spent, Defender failing or unreachable), the last good one younger than this is served, marked in extensions.stale; 0 turns this off"},
	{"RESPONSE_CACHE_BYTES", "33554432", "answers kept whole, by bytes of data, for operations repeated by the same upstream identity while every upstream answer in them is fresh: such an operation is answered without running its resolvers (extensions.quota still read for it); 0 keeps none"},
	{"MAX_UPSTREAM_CALLS_PER_QUERY", "50", "a query that could need more upstream calls is rejected before any call; calls only the answers reveal (each logon user's machines) are refused past it, field by field, with QUERY_TOO_EXPENSIVE"},
	{"REQUEST_TIMEOUT", "30s", "longest one GraphQL request may take"},
	{"MAX_BODY_BYTES", "65536", "bytes a POST body or a GET's query string may hold (65536 is 64 KiB); more is refused before it is decoded (413, 414)"},
	{"MAX_QUERY_TOKENS", "5000", "a query of more lexical tokens (names, punctuation, values, comments) is refused before it is parsed"},
	{"MAX_QUERY_ALIASES", "100", "a query with more aliases in one operation (fragments expanded) is refused before it is parsed"},
	{"MAX_QUERY_DEPTH", "20", "a query whose selections nest deeper (fragments expanded) is refused before it is parsed"},
	{"MAX_QUERY_FIELDS", "2000", "a query selecting more fields in one operation (fragments expanded) is refused before it is parsed"},
	{"MAX_QUERY_DIRECTIVES", "50", "a query with more directives in one operation (fragments expanded) is refused before it is parsed"},
	{"INTROSPECTION", "auto", "true: answer schema queries (the playground's docs) and suggest field names in errors; false: refuse them; auto: true in demo mode, false with credentials"},
	{"SHUTDOWN_DELAY", "0s", "after the first stop signal, keep accepting requests for this long while /readyz answers 503, so load balancers stop sending new requests, then close the listener and let requests in flight finish within SHUTDOWN_GRACE"},
	{"SHUTDOWN_GRACE", "", "how long requests in flight may finish once the listener is closed, before they are answered SHUTTING_DOWN (default: REQUEST_TIMEOUT)"},
	{"CORS_ORIGINS", "", "comma-separated browser origins allowed to call /query, or * for any (default: same origin only)"},
	{"APQ_CACHE_SIZE", "1000", "automatic persisted queries kept in memory"},
	{"LOG_LEVEL", "info", "debug, info, warn or error (debug logs one line per upstream call)"},
	{"LOG_FORMAT", "text", "text or json"},
	{"DEMO_LATENCY", "0s", "latency the embedded simulator adds to each call in demo mode"},
	{"AUTH_MODE", "none", "how callers sign in: none (only on a loopback ADDR, or when set explicitly, which logs a warning), apikey, entra"},
	{"API_KEYS", "", "API keys for AUTH_MODE=apikey: comma-separated name:sha256hex pairs, the SHA-256 of each key (go run ./cmd/mdegraph-apikey NAME makes a key and its pair)"},
	{"API_KEYS_FILE", "", "a file of API keys: one name:sha256hex pair per line, # comments"},
	{"AUTH_TENANT_ID", "", "Entra ID tenant whose access tokens AUTH_MODE=entra accepts: its id, or its domain when AUTH_ISSUER is empty (default: MDE_TENANT_ID)"},
	{"AUTH_ISSUER", "", "exact issuer of the accepted tokens (default: Entra ID's public cloud, v1 and v2 issuers of the tenant); https, or http on loopback"},
	{"AUTH_AUDIENCE", "", "audiences of the accepted tokens, comma-separated: the API's client id and/or App ID URI (api://...); required with AUTH_MODE=entra"},
	{"AUTH_REQUIRED_ROLE", "", "app role (or delegated scope) every signed-in caller needs, e.g. Mdegraph.Read (in demo mode: Mdegraph.Read)"},
	{"UPSTREAM_IDENTITY", "auto", "whom Defender is asked as: app (this service's token, every device) or user (each person's token on-behalf-of them, so Defender's device groups apply; needs AUTH_MODE=entra); auto: user in demo mode, app otherwise"},
	{"METRICS_ADDR", "", "serve /metrics on this address only, without sign-in (default: on ADDR, behind AUTH_MODE)"},
	{"REDIS_URL", "", "redis:// or rediss:// (TLS) URL, [user:password@]host:port[/db], of a Redis the replicas share: one quota, one 429 pause, one cache, one set of calls in flight; empty keeps them in memory, per replica (a restart forgets them)"},
	{"REDIS_PREFIX", "mdegraph", "prefix of every Redis key and channel, so that several deployments can share one Redis"},
	{"REDIS_TIMEOUT", "1s", "longest a connection to Redis or one command may take"},
	{"REDIS_FALLBACK", "fail", "when Redis cannot be reached at start: fail (the service does not start), or local (it starts degraded, on local state, and joins Redis when it answers)"},
	{"REPLICAS", "", "how many replicas share REDIS_URL (required with it): while Redis is unreachable each keeps to the limits divided by this"},
	{"PPROF", "false", "true: also serve Go's runtime profiles (net/http/pprof) under /debug/pprof/ on METRICS_ADDR, which it requires; never on ADDR"},
}

// Load reads the configuration from args (without the program name) and getenv; a flag wins
// over its environment variable. Errors name the variable at fault; flag.ErrHelp is returned
// for -h after the usage was written to out.
func Load(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	fs := flag.NewFlagSet("mdegraph", flag.ContinueOnError)
	fs.SetOutput(out)
	values := make(map[string]*value, len(Settings))
	for _, s := range Settings {
		// The flag's default is the documented one, not the environment's value: the usage
		// text prints defaults, and MDE_CLIENT_SECRET must never appear there.
		v := value(s.Default)
		values[s.Env] = &v
		fs.Var(&v, s.Flag(), s.Usage+" (`"+s.Type()+"`; env "+s.Env+")")
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	given := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	set := make(map[string]bool)
	for _, s := range Settings {
		if v := getenv(s.Env); v != "" && !given[s.Flag()] {
			*values[s.Env] = value(v)
		}
		set[s.Env] = given[s.Flag()] || getenv(s.Env) != ""
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q (settings are flags like -addr or environment variables like ADDR)", fs.Arg(0))
	}
	get := func(env string) string { return strings.TrimSpace(string(*values[env])) }
	return parse(get, func(env string) bool { return set[env] })
}

// parse validates the settings get returns; set says which were given rather than defaulted.
func parse(get func(string) string, set func(string) bool) (Config, error) {
	var errs []error
	c := Config{
		Addr:         get("ADDR"),
		TenantID:     get("MDE_TENANT_ID"),
		ClientID:     get("MDE_CLIENT_ID"),
		ClientSecret: Secret(get("MDE_CLIENT_SECRET")),
		LogFormat:    strings.ToLower(get("LOG_FORMAT")),
	}
	if _, port, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("ADDR %q: want host:port, e.g. 127.0.0.1:8080", c.Addr))
	} else if n, err := strconv.ParseUint(port, 10, 16); err != nil && port != "" || n > 65535 {
		errs = append(errs, fmt.Errorf("ADDR %q: the port must be a number from 0 to 65535", c.Addr))
	}
	if c.TenantID != "" && !validTenant(c.TenantID) {
		errs = append(errs, fmt.Errorf("MDE_TENANT_ID %q: want the tenant's GUID or its domain (contoso.onmicrosoft.com)", c.TenantID))
	}

	// Credentials: all three or none.
	creds := map[string]string{"MDE_TENANT_ID": c.TenantID, "MDE_CLIENT_ID": c.ClientID, "MDE_CLIENT_SECRET": c.ClientSecret.Reveal()}
	var missing, given []string
	for _, name := range []string{"MDE_TENANT_ID", "MDE_CLIENT_ID", "MDE_CLIENT_SECRET"} {
		if creds[name] == "" {
			missing = append(missing, name)
		} else {
			given = append(given, name)
		}
	}
	switch {
	case len(given) == 0:
		c.Demo = true
	case len(missing) > 0:
		errs = append(errs, fmt.Errorf("incomplete credentials: %s set but %s missing (set all three, or none for demo mode)",
			strings.Join(given, ", "), strings.Join(missing, ", ")))
	}

	cloud, err := defender.LookupCloud(get("MDE_CLOUD"))
	if err != nil {
		errs = append(errs, fmt.Errorf("MDE_CLOUD: %w", err))
	}
	cloudKnown := err == nil // else the URLs it would give are not checked: that is one mistake, not three
	c.Cloud = cloud
	c.APIURL, c.TokenURL, c.Scope = get("MDE_API_URL"), get("MDE_TOKEN_URL"), get("MDE_SCOPE")
	if c.Demo {
		for _, name := range []string{"MDE_API_URL", "MDE_TOKEN_URL", "MDE_SCOPE"} {
			if get(name) != "" {
				errs = append(errs, fmt.Errorf("%s is set but no credentials are: set MDE_TENANT_ID, MDE_CLIENT_ID and MDE_CLIENT_SECRET too (unset %s for demo mode)", name, name))
			}
		}
	} else {
		if c.APIURL == "" {
			c.APIURL = cloud.APIURL
		}
		if c.TokenURL == "" {
			c.TokenURL = cloud.TokenURL(c.TenantID)
		}
		if c.Scope == "" {
			c.Scope = cloud.Scope
		}
		c.APIURL = strings.TrimRight(c.APIURL, "/")
		if cloudKnown || get("MDE_API_URL") != "" {
			if err := checkURL(c.APIURL); err != nil {
				errs = append(errs, fmt.Errorf("MDE_API_URL: %w", err))
			} else if strings.HasSuffix(c.APIURL, "/api") {
				errs = append(errs, fmt.Errorf("MDE_API_URL %q: give the base URL without /api", c.APIURL))
			}
		}
		if cloudKnown || get("MDE_TOKEN_URL") != "" {
			if err := checkURL(c.TokenURL); err != nil {
				errs = append(errs, fmt.Errorf("MDE_TOKEN_URL: %w", err))
			}
		}
	}

	intVar := func(name string, minimum int) int {
		n, err := strconv.Atoi(get(name))
		if err != nil || n < minimum {
			errs = append(errs, fmt.Errorf("%s %q: want a whole number of at least %d", name, get(name), minimum))
		}
		return n
	}
	durVar := func(name string) time.Duration {
		d, err := ParseDuration(get(name))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %w", name, err))
		}
		return d
	}
	c.LimitPerMinute = intVar("MDE_LIMIT_PER_MINUTE", 1)
	c.LimitPerHour = intVar("MDE_LIMIT_PER_HOUR", 1)
	c.QuotaMaxWait = durVar("QUOTA_MAX_WAIT")
	c.CallerLimitPerMinute = intVar("CALLER_LIMIT_PER_MINUTE", 0)
	c.CacheTTL = durVar("CACHE_TTL")
	c.NotFoundTTL = durVar("NOT_FOUND_TTL")
	if c.NotFoundTTL > c.CacheTTL {
		// A 404 is an answer like any other: it is not kept longer than answers are. With the
		// cache off (CACHE_TTL=0) the default NOT_FOUND_TTL is moot; one set on purpose is worth
		// a word.
		if set("NOT_FOUND_TTL") {
			c.Warnings = append(c.Warnings, fmt.Sprintf("NOT_FOUND_TTL %v is above CACHE_TTL %v: not-found answers are reused for %v, as long as any answer",
				c.NotFoundTTL, c.CacheTTL, c.CacheTTL))
		}
		c.NotFoundTTL = c.CacheTTL
	}
	c.StaleTTL = durVar("STALE_TTL")
	c.ResponseCacheBytes = intVar("RESPONSE_CACHE_BYTES", 0)
	c.MaxUpstreamCalls = intVar("MAX_UPSTREAM_CALLS_PER_QUERY", 1)
	c.RequestTimeout = durVar("REQUEST_TIMEOUT")
	if c.RequestTimeout <= 0 {
		errs = append(errs, fmt.Errorf("REQUEST_TIMEOUT %q: must be more than 0", get("REQUEST_TIMEOUT")))
	}
	c.MaxBodyBytes = int64(intVar("MAX_BODY_BYTES", 1024))
	c.QueryLimits = querylimit.Limits{Tokens: intVar("MAX_QUERY_TOKENS", 1), Aliases: intVar("MAX_QUERY_ALIASES", 1),
		Depth: intVar("MAX_QUERY_DEPTH", 1), Fields: intVar("MAX_QUERY_FIELDS", 1), Directives: intVar("MAX_QUERY_DIRECTIVES", 1)}
	switch v := strings.ToLower(get("INTROSPECTION")); v {
	case "auto":
		c.Introspection = c.Demo
	case "true", "false":
		c.Introspection = v == "true"
	default:
		errs = append(errs, fmt.Errorf("INTROSPECTION %q: want auto, true or false", get("INTROSPECTION")))
	}
	c.ShutdownDelay = durVar("SHUTDOWN_DELAY")
	c.ShutdownGrace = c.RequestTimeout
	if get("SHUTDOWN_GRACE") != "" {
		c.ShutdownGrace = durVar("SHUTDOWN_GRACE")
	}
	c.APQCacheSize = intVar("APQ_CACHE_SIZE", 1)
	c.DemoLatency = durVar("DEMO_LATENCY")
	errs = append(errs, c.parseAuth(get, set)...)
	c.Redis = parseRedis(get, intVar, durVar, &errs)
	for o := range strings.SplitSeq(get("CORS_ORIGINS"), ",") {
		if o = strings.TrimSpace(o); o == "" {
			continue
		}
		if o != "*" {
			if u, err := url.Parse(o); err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") {
				errs = append(errs, fmt.Errorf("CORS_ORIGINS: %q is not an origin like https://app.example.com", o))
				continue
			}
			o = strings.TrimSuffix(o, "/")
		}
		c.CORSOrigins = append(c.CORSOrigins, o)
	}
	if err := c.LogLevel.UnmarshalText([]byte(get("LOG_LEVEL"))); err != nil {
		errs = append(errs, fmt.Errorf("LOG_LEVEL %q: want debug, info, warn or error", get("LOG_LEVEL")))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("LOG_FORMAT %q: want text or json", c.LogFormat))
	}
	return c, errors.Join(errs...)
}

// parseAuth reads the caller sign-in settings and UPSTREAM_IDENTITY and METRICS_ADDR. Every
// error names its variable. In demo mode the simulator is the Entra ID, so AUTH_TENANT_ID,
// AUTH_ISSUER and AUTH_AUDIENCE may not be set.
func (c *Config) parseAuth(get func(string) string, set func(string) bool) []error {
	var errs []error
	mode, err := callerauth.ParseMode(get("AUTH_MODE"))
	if err != nil {
		errs = append(errs, err)
	}
	c.AuthMode = mode
	if _, _, addrErr := net.SplitHostPort(c.Addr); addrErr == nil && err == nil {
		warning, err := callerauth.CheckMode(mode, set("AUTH_MODE"), c.Addr)
		errs = append(errs, err)
		if warning != "" {
			c.Warnings = append(c.Warnings, warning)
		}
	}
	c.APIKeysFile = get("API_KEYS_FILE")
	c.APIKeys, err = callerauth.LoadAPIKeys(get("API_KEYS"), c.APIKeysFile)
	errs = append(errs, err)
	switch {
	case err != nil:
	case mode == callerauth.ModeAPIKey && len(c.APIKeys) == 0:
		errs = append(errs, errors.New("API_KEYS: AUTH_MODE=apikey needs at least one key in API_KEYS or API_KEYS_FILE (go run ./cmd/mdegraph-apikey NAME makes one)"))
	case mode != callerauth.ModeAPIKey && len(c.APIKeys) > 0:
		c.Warnings = append(c.Warnings, fmt.Sprintf("API_KEYS or API_KEYS_FILE is set but AUTH_MODE is %s: the keys are ignored", mode))
	}

	c.Entra = callerauth.EntraSettings{TenantID: get("AUTH_TENANT_ID"), Issuer: get("AUTH_ISSUER"),
		Audience: get("AUTH_AUDIENCE"), RequiredRole: get("AUTH_REQUIRED_ROLE")}
	entraOnly := []string{"AUTH_TENANT_ID", "AUTH_ISSUER", "AUTH_AUDIENCE"}
	if c.Demo || mode != callerauth.ModeEntra {
		// In entra mode Entra.Parse checks it with the other settings: one mistake, one message.
		if _, err := callerauth.ParseRequiredRole(c.Entra.RequiredRole); err != nil {
			errs = append(errs, err)
		}
	}
	switch {
	case c.Demo:
		for _, name := range entraOnly {
			if get(name) != "" {
				errs = append(errs, fmt.Errorf("%s is set but no MDE_* credentials are: in demo mode the simulator is the Entra ID (unset %s, or set the credentials)", name, name))
			}
		}
	case mode == callerauth.ModeEntra:
		if c.Entra.TenantID == "" {
			c.Entra.TenantID = c.TenantID
		}
		if _, err := c.Entra.Parse(); err != nil {
			errs = append(errs, err)
		}
	default:
		for _, name := range entraOnly {
			if get(name) != "" {
				c.Warnings = append(c.Warnings, fmt.Sprintf("%s is set but AUTH_MODE is %s: it is ignored", name, mode))
			}
		}
	}

	switch v := strings.ToLower(get("UPSTREAM_IDENTITY")); {
	case v == "auto" && c.Demo && mode != callerauth.ModeAPIKey:
		c.UpstreamIdentity = UpstreamUser // the demo's signed-in persons see their own device groups
	case v == "auto", v == UpstreamApp:
		c.UpstreamIdentity = UpstreamApp
	case v != UpstreamUser:
		errs = append(errs, fmt.Errorf("UPSTREAM_IDENTITY %q: want auto, app or user", get("UPSTREAM_IDENTITY")))
	case mode == callerauth.ModeEntra, c.Demo && mode == callerauth.ModeNone:
		c.UpstreamIdentity = UpstreamUser
	default:
		errs = append(errs, fmt.Errorf("UPSTREAM_IDENTITY %q: needs AUTH_MODE=entra, whose callers' tokens can be exchanged on-behalf-of them (AUTH_MODE is %s)", get("UPSTREAM_IDENTITY"), mode))
	}

	c.MetricsAddr = get("METRICS_ADDR")
	if c.MetricsAddr != "" {
		if _, port, err := net.SplitHostPort(c.MetricsAddr); err != nil || port == "" {
			errs = append(errs, fmt.Errorf("METRICS_ADDR %q: want host:port, e.g. 127.0.0.1:9100", c.MetricsAddr))
		}
	}
	switch v := strings.ToLower(get("PPROF")); {
	case v != "true" && v != "false":
		errs = append(errs, fmt.Errorf("PPROF %q: want true or false", get("PPROF")))
	case v == "true" && c.MetricsAddr == "":
		// The profiles show the service's code paths and memory, and serving one costs
		// seconds of CPU: never on the listener callers reach.
		errs = append(errs, fmt.Errorf("PPROF %q needs METRICS_ADDR: the profiles are served on that listener only, never on ADDR (set METRICS_ADDR=127.0.0.1:9100, say)", get("PPROF")))
	default:
		c.Pprof = v == "true"
	}
	return errs
}

// parseRedis reads the REDIS_* settings and REPLICAS, which matter only with REDIS_URL.
func parseRedis(get func(string) string, intVar func(string, int) int, durVar func(string) time.Duration, errs *[]error) Redis {
	r := Redis{URL: Secret(get("REDIS_URL")), Prefix: get("REDIS_PREFIX"), Timeout: durVar("REDIS_TIMEOUT")}
	switch get("REDIS_FALLBACK") {
	case "fail":
	case "local":
		r.FallbackLocal = true
	default:
		*errs = append(*errs, fmt.Errorf("REDIS_FALLBACK %q: want fail or local", get("REDIS_FALLBACK")))
	}
	if r.Timeout <= 0 {
		*errs = append(*errs, fmt.Errorf("REDIS_TIMEOUT %q: must be more than 0", get("REDIS_TIMEOUT")))
	}
	if err := redisstore.CheckPrefix(r.Prefix); err != nil {
		*errs = append(*errs, err)
	}
	if get("REPLICAS") != "" {
		r.Replicas = intVar("REPLICAS", 1)
	}
	if r.URL == "" {
		return r
	}
	if err := redisstore.CheckURL(r.URL.Reveal()); err != nil {
		*errs = append(*errs, err)
	} else if get("REPLICAS") == "" {
		*errs = append(*errs, errors.New("REPLICAS is required with REDIS_URL: the number of replicas sharing it (while Redis is unreachable, each keeps to the limits divided by it)"))
	}
	return r
}

// ParseDuration reads a Go duration ("90s", "1m30s", "250ms"), or "0". A bare number other
// than zero is refused: whether DEMO_LATENCY=50 means seconds or milliseconds is a guess, and
// guessing seconds made it 50 s without a word.
func ParseDuration(s string) (time.Duration, error) {
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		switch {
		case n == 0:
			return 0, nil
		case n < 0:
			return 0, fmt.Errorf("%q: must not be negative", s)
		case n != n || math.IsInf(n, 0):
			return 0, fmt.Errorf("%q: want a duration like 60s or 1m30s", s)
		}
		return 0, fmt.Errorf("%q: a duration needs a unit: %ss or %sms", s, s, s)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q: want a duration like 60s or 1m30s", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q: must not be negative", s)
	}
	return d, nil
}

// validTenant accepts what Entra ID takes in the token URL's path: a GUID or a domain name.
func validTenant(s string) bool {
	if len(s) > 253 {
		return false
	}
	for _, r := range s {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '.') {
			return false
		}
	}
	return !strings.HasPrefix(s, ".") && !strings.Contains(s, "..")
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	return nil
}

// LogValue is the effective configuration, every setting as the service uses it (after
// defaults, cloud resolution and adjustments), for the startup log; the secret shows only as
// whether it is set.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("addr", c.Addr),
		slog.Bool("demo", c.Demo),
		slog.String("tenant_id", c.TenantID),
		slog.String("client_id", c.ClientID),
		slog.Bool("client_secret_set", c.ClientSecret != ""),
		slog.String("cloud", c.Cloud.Name),
		slog.String("api_url", c.APIURL),
		slog.String("token_url", c.TokenURL),
		slog.String("scope", c.Scope),
		slog.Int("limit_per_minute", c.LimitPerMinute),
		slog.Int("limit_per_hour", c.LimitPerHour),
		slog.Duration("quota_max_wait", c.QuotaMaxWait),
		slog.Duration("cache_ttl", c.CacheTTL),
		slog.Duration("not_found_ttl", c.NotFoundTTL),
		slog.Duration("stale_ttl", c.StaleTTL),
		slog.Int("response_cache_bytes", c.ResponseCacheBytes),
		slog.Int("max_upstream_calls_per_query", c.MaxUpstreamCalls),
		slog.Int("caller_limit_per_minute", c.CallerLimitPerMinute),
		slog.Int64("max_body_bytes", c.MaxBodyBytes),
		slog.Int("max_query_tokens", c.QueryLimits.Tokens),
		slog.Int("max_query_aliases", c.QueryLimits.Aliases),
		slog.Int("max_query_depth", c.QueryLimits.Depth),
		slog.Int("max_query_fields", c.QueryLimits.Fields),
		slog.Int("max_query_directives", c.QueryLimits.Directives),
		slog.Bool("introspection", c.Introspection),
		slog.Duration("shutdown_delay", c.ShutdownDelay),
		slog.Duration("shutdown_grace", c.ShutdownGrace),
		slog.Duration("request_timeout", c.RequestTimeout),
		slog.String("cors_origins", strings.Join(c.CORSOrigins, ",")),
		slog.Int("apq_cache_size", c.APQCacheSize),
		slog.String("log_level", c.LogLevel.String()),
		slog.String("log_format", c.LogFormat),
		slog.Duration("demo_latency", c.DemoLatency),
		slog.String("auth_mode", string(c.AuthMode)),
		slog.String("api_keys", apiKeyNames(c.APIKeys)), // names only: the hashes are no use in a log
		slog.String("api_keys_file", c.APIKeysFile),
		slog.String("auth_tenant_id", c.Entra.TenantID),
		slog.String("auth_issuer", c.Entra.Issuer),
		slog.String("auth_audience", c.Entra.Audience),
		slog.String("auth_required_role", c.Entra.RequiredRole),
		slog.String("upstream_identity", c.UpstreamIdentity),
		slog.String("metrics_addr", c.MetricsAddr),
		slog.String("redis_url", c.redisWhere()),
		slog.String("redis_prefix", c.Redis.Prefix),
		slog.Duration("redis_timeout", c.Redis.Timeout),
		slog.String("redis_fallback", map[bool]string{false: "fail", true: "local"}[c.Redis.FallbackLocal]),
		slog.Int("replicas", c.Redis.Replicas),
		slog.Bool("pprof", c.Pprof),
	)
}

// redisWhere is the Redis in use for the log: its host, port and database, never a password;
// "" when there is none.
func (c Config) redisWhere() string {
	if c.Redis.URL == "" {
		return ""
	}
	return redisstore.Where(c.Redis.URL.Reveal())
}

// apiKeyNames lists the keys' names, comma-separated.
func apiKeyNames(keys []callerauth.APIKey) string {
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = k.Name
	}
	return strings.Join(names, ",")
}

// LogFormatOf is the LOG_FORMAT that args and getenv ask for ("json" or "text"), read without
// validating anything else, so that an error in the rest of the configuration can still be
// reported in the format a log shipper expects.
func LogFormatOf(args []string, getenv func(string) string) string {
	format := getenv("LOG_FORMAT")
	for i := 0; i < len(args) && args[i] != "--" && strings.HasPrefix(args[i], "-"); i++ {
		name, v, hasValue := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		if !hasValue && i+1 < len(args) && name != "h" && name != "help" {
			i++ // every setting's flag takes a value: -name value
			v, hasValue = args[i], true
		}
		if name == "log-format" && hasValue {
			format = v
		}
	}
	if strings.EqualFold(strings.TrimSpace(format), "json") {
		return "json"
	}
	return "text"
}

// Secret is a value that must not appear in logs or errors: it formats as [redacted].
type Secret string

// String hides the value from fmt and log.
func (Secret) String() string { return "[redacted]" }

// Format hides the value from every fmt verb, including those that skip String (%d, %x on a
// struct holding a Secret would otherwise print "%!d(config.Secret=the-secret)").
func (Secret) Format(f fmt.State, _ rune) { io.WriteString(f, "[redacted]") }

// GoString hides the value from %#v.
func (Secret) GoString() string { return "[redacted]" }

// LogValue hides the value from slog.
func (Secret) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// MarshalText hides the value from encoding/json and friends.
func (Secret) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }

// Reveal returns the secret itself, for the one place that sends it.
func (s Secret) Reveal() string { return string(s) }
