package config_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mdegraph/mdegraph/internal/config"
	"github.com/mdegraph/mdegraph/internal/querylimit"
)

const (
	tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	client = "00000000-1111-2222-3333-444444444444"
	secret = "Zx8Q~s3cr3t.Value_9-Unique"
)

// env returns a getenv over kv.
func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

// withCreds returns kv plus a full set of credentials.
func withCreds(kv map[string]string) map[string]string {
	out := map[string]string{"MDE_TENANT_ID": tenant, "MDE_CLIENT_ID": client, "MDE_CLIENT_SECRET": secret}
	for k, v := range kv {
		out[k] = v
	}
	return out
}

func load(t *testing.T, args []string, kv map[string]string) (config.Config, error) {
	t.Helper()
	var out bytes.Buffer
	cfg, err := config.Load(args, env(kv), &out)
	if strings.Contains(out.String(), secret) {
		t.Errorf("Load wrote the secret to its output:\n%s", out.String())
	}
	return cfg, err
}

func mustLoad(t *testing.T, args []string, kv map[string]string) config.Config {
	t.Helper()
	cfg, err := load(t, args, kv)
	if err != nil {
		t.Fatalf("Load(%q, %v): %v", args, kv, err)
	}
	return cfg
}

func assertEqual[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s: got %v, want %v", what, got, want)
	}
}

func TestDefaults_DemoMode(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, nil, nil)
	assertEqual(t, "Demo", cfg.Demo, true)
	assertEqual(t, "Addr", cfg.Addr, "127.0.0.1:8080")
	assertEqual(t, "Cloud", cfg.Cloud.Name, "commercial")
	assertEqual(t, "APIURL (the simulator's, set later)", cfg.APIURL, "")
	assertEqual(t, "TokenURL", cfg.TokenURL, "")
	assertEqual(t, "secret", cfg.ClientSecret.Reveal(), "")
	assertEqual(t, "LimitPerMinute", cfg.LimitPerMinute, 100)
	assertEqual(t, "LimitPerHour", cfg.LimitPerHour, 1500)
	assertEqual(t, "QuotaMaxWait", cfg.QuotaMaxWait, 10*time.Second)
	assertEqual(t, "CallerLimitPerMinute (off)", cfg.CallerLimitPerMinute, 0)
	assertEqual(t, "CacheTTL", cfg.CacheTTL, 60*time.Second)
	assertEqual(t, "NotFoundTTL", cfg.NotFoundTTL, 10*time.Second)
	assertEqual(t, "MaxUpstreamCalls", cfg.MaxUpstreamCalls, 50)
	assertEqual(t, "RequestTimeout", cfg.RequestTimeout, 30*time.Second)
	assertEqual(t, "CORSOrigins", len(cfg.CORSOrigins), 0)
	assertEqual(t, "APQCacheSize", cfg.APQCacheSize, 1000)
	assertEqual(t, "LogLevel", cfg.LogLevel, slog.LevelInfo)
	assertEqual(t, "LogFormat", cfg.LogFormat, "text")
	assertEqual(t, "DemoLatency", cfg.DemoLatency, time.Duration(0))
}

func TestCredentials_ResolveCloud(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cloud, api, tokenURL, scope string
	}{
		{"", "https://api.securitycenter.microsoft.com", "https://login.microsoftonline.com/" + tenant + "/oauth2/v2.0/token", "https://api.securitycenter.microsoft.com/.default"},
		{"eu", "https://eu.api.security.microsoft.com", "https://login.microsoftonline.com/" + tenant + "/oauth2/v2.0/token", "https://api.securitycenter.microsoft.com/.default"},
		{"gcc", "https://api-gcc.securitycenter.microsoft.us", "https://login.microsoftonline.com/" + tenant + "/oauth2/v2.0/token", "https://api-gcc.securitycenter.microsoft.us/.default"},
		{"GCC-High", "https://api-gov.securitycenter.microsoft.us", "https://login.microsoftonline.us/" + tenant + "/oauth2/v2.0/token", "https://api-gov.securitycenter.microsoft.us/.default"},
		{"dod", "https://api-gov.securitycenter.microsoft.us", "https://login.microsoftonline.us/" + tenant + "/oauth2/v2.0/token", "https://api-gov.securitycenter.microsoft.us/.default"},
	}
	for _, tt := range tests {
		cfg := mustLoad(t, nil, withCreds(map[string]string{"MDE_CLOUD": tt.cloud}))
		assertEqual(t, tt.cloud+": Demo", cfg.Demo, false)
		assertEqual(t, tt.cloud+": APIURL", cfg.APIURL, tt.api)
		assertEqual(t, tt.cloud+": TokenURL", cfg.TokenURL, tt.tokenURL)
		assertEqual(t, tt.cloud+": Scope", cfg.Scope, tt.scope)
		if !strings.Contains(cfg.TokenURL, "/"+tenant+"/") {
			t.Errorf("%s: token URL %q does not name the tenant", tt.cloud, cfg.TokenURL)
		}
		assertEqual(t, tt.cloud+": TenantID", cfg.TenantID, tenant)
		assertEqual(t, tt.cloud+": ClientID", cfg.ClientID, client)
		assertEqual(t, tt.cloud+": secret", cfg.ClientSecret.Reveal(), secret)
	}
}

func TestCredentials_Overrides(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, nil, withCreds(map[string]string{
		"MDE_API_URL":   "https://eu.api.security.microsoft.com/",
		"MDE_TOKEN_URL": "http://127.0.0.1:9999/t/oauth2/v2.0/token",
		"MDE_SCOPE":     "api://custom/.default",
	}))
	assertEqual(t, "APIURL (trailing slash trimmed)", cfg.APIURL, "https://eu.api.security.microsoft.com")
	assertEqual(t, "TokenURL", cfg.TokenURL, "http://127.0.0.1:9999/t/oauth2/v2.0/token")
	assertEqual(t, "Scope", cfg.Scope, "api://custom/.default")
}

func TestCredentials_Partial(t *testing.T) {
	t.Parallel()
	all := []string{"MDE_TENANT_ID", "MDE_CLIENT_ID", "MDE_CLIENT_SECRET"}
	values := map[string]string{"MDE_TENANT_ID": tenant, "MDE_CLIENT_ID": client, "MDE_CLIENT_SECRET": secret}
	// Every proper, non-empty subset of the three.
	for mask := 1; mask < 7; mask++ {
		kv := map[string]string{}
		var given, missing []string
		for i, name := range all {
			if mask&(1<<i) != 0 {
				kv[name] = values[name]
				given = append(given, name)
			} else {
				missing = append(missing, name)
			}
		}
		t.Run(strings.Join(given, "+"), func(t *testing.T) {
			t.Parallel()
			_, err := load(t, nil, kv)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if strings.Contains(msg, secret) {
				t.Errorf("error %q contains the secret", msg)
			}
			// "... A, B set but C missing ..." : the part between "but" and "missing" names
			// exactly the missing variables.
			_, after, ok := strings.Cut(msg, " but ")
			named, _, ok2 := strings.Cut(after, " missing")
			if !ok || !ok2 {
				t.Fatalf("error %q: want \"... set but X missing\"", msg)
			}
			got := strings.Split(named, ", ")
			slices.Sort(got)
			want := slices.Sorted(slices.Values(missing))
			if !slices.Equal(got, want) {
				t.Errorf("error %q names %v as missing, want %v", msg, got, want)
			}
		})
	}
}

func TestDemoMode_RejectsUpstreamSettings(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"MDE_API_URL", "MDE_TOKEN_URL", "MDE_SCOPE"} {
		_, err := load(t, nil, map[string]string{name: "https://api.securitycenter.microsoft.com"})
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s without credentials: got %v, want an error naming it", name, err)
		}
	}
}

func TestFlagOverridesEnv(t *testing.T) {
	t.Parallel()
	kv := withCreds(map[string]string{"ADDR": "0.0.0.0:1111", "AUTH_MODE": "none", "CACHE_TTL": "5m", "LOG_LEVEL": "warn", "MDE_CLOUD": "eu"})

	cfg := mustLoad(t, nil, kv)
	assertEqual(t, "Addr from env", cfg.Addr, "0.0.0.0:1111")
	assertEqual(t, "CacheTTL from env", cfg.CacheTTL, 5*time.Minute)
	assertEqual(t, "LogLevel from env", cfg.LogLevel, slog.LevelWarn)

	cfg = mustLoad(t, []string{"-addr", "127.0.0.1:2222", "-cache-ttl=90s", "--log-level", "debug", "-mde-cloud=gcc",
		"-mde-client-secret", "from-flag"}, kv)
	assertEqual(t, "Addr from flag", cfg.Addr, "127.0.0.1:2222")
	assertEqual(t, "CacheTTL from flag", cfg.CacheTTL, 90*time.Second)
	assertEqual(t, "LogLevel from flag", cfg.LogLevel, slog.LevelDebug)
	assertEqual(t, "Cloud from flag", cfg.Cloud.Name, "gcc")
	assertEqual(t, "secret from flag", cfg.ClientSecret.Reveal(), "from-flag")
	assertEqual(t, "ClientID still from env", cfg.ClientID, client)

	// A flag given as empty wins over the environment too.
	_, err := load(t, []string{"-addr="}, kv)
	if err == nil || !strings.Contains(err.Error(), "ADDR") {
		t.Errorf("-addr= : got %v, want an ADDR error", err)
	}
}

func TestFlagsOnly(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, []string{"-mde-tenant-id", tenant, "-mde-client-id", client, "-mde-client-secret", secret}, nil)
	assertEqual(t, "Demo", cfg.Demo, false)
	assertEqual(t, "secret", cfg.ClientSecret.Reveal(), secret)
}

func TestBadValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, value string
		creds       bool
	}{
		{"ADDR", "8080", false},
		{"ADDR", "localhost", false},
		{"ADDR", "[::1", false},
		{"MDE_CLOUD", "mars", false},
		{"MDE_CLOUD", "mars", true},
		{"MDE_API_URL", "api.securitycenter.microsoft.com", true},
		{"MDE_API_URL", "ftp://api.example.com", true},
		{"MDE_API_URL", "https://api.securitycenter.microsoft.com/api", true},
		{"MDE_TOKEN_URL", "/oauth2/v2.0/token", true},
		{"MDE_TOKEN_URL", "https://", true},
		{"MDE_LIMIT_PER_MINUTE", "0", false},
		{"MDE_LIMIT_PER_MINUTE", "ten", false},
		{"MDE_LIMIT_PER_MINUTE", "1.5", false},
		{"MDE_LIMIT_PER_HOUR", "-1", false},
		{"MAX_UPSTREAM_CALLS_PER_QUERY", "many", false},
		{"APQ_CACHE_SIZE", "0", false},
		{"QUOTA_MAX_WAIT", "soon", false},
		{"QUOTA_MAX_WAIT", "-5s", false},
		{"QUOTA_MAX_WAIT", "-1", false},
		{"QUOTA_MAX_WAIT", "NaN", false},
		{"CALLER_LIMIT_PER_MINUTE", "-1", false},
		{"CALLER_LIMIT_PER_MINUTE", "lots", false},
		{"CACHE_TTL", "Inf", false},
		{"CACHE_TTL", "1e300", false},
		{"CACHE_TTL", "10 s", false},
		{"NOT_FOUND_TTL", "x", false},
		{"STALE_TTL", "-1h", false},
		{"REQUEST_TIMEOUT", "0", false},
		{"REQUEST_TIMEOUT", "0s", false},
		{"DEMO_LATENCY", "fast", false},
		{"DEMO_LATENCY", "50", false},
		{"QUOTA_MAX_WAIT", "10", false},
		{"CORS_ORIGINS", "app.example.com", false},
		{"CORS_ORIGINS", "https://app.example.com/path", false},
		{"CORS_ORIGINS", "https://ok.example.com, null", false},
		{"LOG_LEVEL", "verbose", false},
		{"LOG_FORMAT", "xml", false},
		{"AUTH_MODE", "maybe", false},
		{"AUTH_MODE", "apikey", false}, // without a key
		{"API_KEYS", "frontend", false},
		{"API_KEYS_FILE", "/nonexistent/keys", false},
		{"AUTH_REQUIRED_ROLE", "a b", false},
		{"UPSTREAM_IDENTITY", "person", false},
		{"UPSTREAM_IDENTITY", "user", true}, // AUTH_MODE none: no person's token to exchange
		{"METRICS_ADDR", "9100", false},
		{"REDIS_URL", "http://127.0.0.1:6379", false},
		{"REDIS_URL", "redis://127.0.0.1:6379/zero", false},
		{"REDIS_PREFIX", "a{b}", false},
		{"REDIS_TIMEOUT", "0", false},
		{"REDIS_FALLBACK", "maybe", false},
		{"REPLICAS", "0", false},
		{"RESPONSE_CACHE_BYTES", "-1", false},
		{"RESPONSE_CACHE_BYTES", "32MB", false},
		{"PPROF", "yes", false},
		{"PPROF", "true", false}, // without METRICS_ADDR: profiles must never be on ADDR
	}
	for _, tt := range tests {
		kv := map[string]string{tt.name: tt.value}
		if tt.creds {
			kv = withCreds(kv)
		}
		_, err := load(t, nil, kv)
		if err == nil {
			t.Errorf("%s=%q: no error", tt.name, tt.value)
			continue
		}
		if !strings.Contains(err.Error(), tt.name) {
			t.Errorf("%s=%q: error %q does not name the variable", tt.name, tt.value, err)
		}
		// One mistake, one message, showing the value (CORS_ORIGINS shows the bad origin).
		if n := strings.Count(err.Error(), "\n") + 1; n != 1 {
			t.Errorf("%s=%q: %d errors, want 1:\n%v", tt.name, tt.value, n, err)
		}
		// CORS_ORIGINS shows the bad origin; API_KEYS never repeats its value, which may hold a key.
		quiet := tt.name == "CORS_ORIGINS" || tt.name == "API_KEYS" || tt.name == "AUTH_MODE" && tt.value == "apikey"
		shown := strconv.Quote(tt.value)
		if tt.name == "API_KEYS_FILE" {
			shown = tt.value // as the operating system's error names it
		}
		if !quiet && !strings.Contains(err.Error(), shown) {
			t.Errorf("%s=%q: error %q does not show the value", tt.name, tt.value, err)
		}
		// The same value given as a flag fails the same way.
		flagName := "-" + strings.ToLower(strings.ReplaceAll(tt.name, "_", "-"))
		var flagKV map[string]string
		if tt.creds {
			flagKV = withCreds(nil)
		}
		if _, err := load(t, []string{flagName + "=" + tt.value}, flagKV); err == nil || !strings.Contains(err.Error(), tt.name) {
			t.Errorf("%s=%q: got %v, want an error naming %s", flagName, tt.value, err, tt.name)
		}
	}
}

func TestSeveralErrorsAtOnce(t *testing.T) {
	t.Parallel()
	_, err := load(t, nil, map[string]string{"ADDR": "x", "LOG_LEVEL": "loud", "CACHE_TTL": "y"})
	for _, name := range []string{"ADDR", "LOG_LEVEL", "CACHE_TTL"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("got %v, want every bad variable named, %s included", err, name)
		}
	}
}

func TestDurations(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"1m", "60s", " 1m ", "60000ms"} {
		cfg := mustLoad(t, nil, map[string]string{"CACHE_TTL": v})
		assertEqual(t, "CACHE_TTL="+v, cfg.CacheTTL, time.Minute)
	}
}

func TestParseDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"0", 0, false},
		{"0.0", 0, false},
		{"60", 0, true}, // seconds or milliseconds? A unit is required
		{"50", 0, true},
		{"1.5", 0, true},
		{"0.001", 0, true},
		{"1m30s", 90 * time.Second, false},
		{"250ms", 250 * time.Millisecond, false},
		{"2h", 2 * time.Hour, false},
		{"0s", 0, false},
		{"9223372036", 0, true},
		{"2562047h", 2562047 * time.Hour, false},
		{"", 0, true},
		{"-1", 0, true},
		{"-1s", 0, true},
		{"soon", 0, true},
		{"60 s", 0, true},
		{"NaN", 0, true},
		{"Inf", 0, true},
		{"+Inf", 0, true},
		{"1e300", 0, true},
		{"9223372037", 0, true}, // just past the largest Duration
		{"1e999", 0, true},
		{"3000000h", 0, true},
	}
	for _, tt := range tests {
		got, err := config.ParseDuration(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseDuration(%q) = %v, %v; want error: %v", tt.in, got, err, tt.wantErr)
			continue
		}
		if got < 0 {
			t.Errorf("ParseDuration(%q) = %v: negative", tt.in, got)
		}
		assertEqual(t, "ParseDuration("+tt.in+")", got, tt.want)
	}
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"0", "60", "1m", "1.5", "-1", "NaN", "Inf", "1e300", "9223372037", "0x1p62", "1m30s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if d, err := config.ParseDuration(s); err == nil && d < 0 {
			t.Errorf("ParseDuration(%q) = %v: negative", s, d)
		}
	})
}

func TestNotFoundTTL_AtMostCacheTTL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cache, notFound string
		want            time.Duration
	}{
		{"60s", "10s", 10 * time.Second},
		{"5s", "10s", 5 * time.Second},
		{"0", "10s", 0},
	}
	for _, tt := range tests {
		cfg := mustLoad(t, nil, map[string]string{"CACHE_TTL": tt.cache, "NOT_FOUND_TTL": tt.notFound})
		assertEqual(t, fmt.Sprintf("NotFoundTTL(%s, %s)", tt.cache, tt.notFound), cfg.NotFoundTTL, tt.want)
		// Clamped on purpose: a warning says so, naming both settings.
		clamped := tt.want != 10*time.Second
		if got := len(cfg.Warnings) == 1 && strings.Contains(cfg.Warnings[0], "NOT_FOUND_TTL") && strings.Contains(cfg.Warnings[0], "CACHE_TTL"); got != clamped {
			t.Errorf("CACHE_TTL=%s NOT_FOUND_TTL=%s: warnings %q, want one: %v", tt.cache, tt.notFound, cfg.Warnings, clamped)
		}
	}
	// The default NOT_FOUND_TTL with the cache off is no mistake: clamped without a word.
	cfg := mustLoad(t, nil, map[string]string{"CACHE_TTL": "0"})
	assertEqual(t, "NotFoundTTL with CACHE_TTL=0", cfg.NotFoundTTL, 0)
	assertEqual(t, "warnings with CACHE_TTL=0", len(cfg.Warnings), 0)
}

// TestBareNumberDuration: DEMO_LATENCY=50 was 50 seconds without a word; now it is refused
// with a message naming the variable and the two readings.
func TestBareNumberDuration(t *testing.T) {
	t.Parallel()
	_, err := load(t, nil, map[string]string{"DEMO_LATENCY": "50"})
	if err == nil || !strings.Contains(err.Error(), "DEMO_LATENCY") || !strings.Contains(err.Error(), "50s or 50ms") {
		t.Errorf("DEMO_LATENCY=50: got %v, want an error naming it and suggesting 50s or 50ms", err)
	}
	for _, v := range []string{"0", "0s"} {
		if cfg := mustLoad(t, nil, map[string]string{"DEMO_LATENCY": v}); cfg.DemoLatency != 0 {
			t.Errorf("DEMO_LATENCY=%s: %v, want 0", v, cfg.DemoLatency)
		}
	}
}

func TestLogFormatOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		env  string
		want string
	}{
		{nil, "", "text"},
		{nil, "json", "json"},
		{nil, " JSON ", "json"},
		{nil, "xml", "text"},
		{[]string{"-log-format=json"}, "", "json"},
		{[]string{"--log-format", "json"}, "", "json"},
		{[]string{"-cache-ttl", "soon", "-log-format", "JSON"}, "", "json"},
		{[]string{"-log-format=text"}, "json", "text"},
		{[]string{"-log-format"}, "json", "json"},
		{[]string{"serve", "-log-format=json"}, "", "text"}, // flags end at the first argument
		{[]string{"--", "-log-format=json"}, "", "text"},
	}
	for _, tt := range tests {
		got := config.LogFormatOf(tt.args, env(map[string]string{"LOG_FORMAT": tt.env}))
		assertEqual(t, fmt.Sprintf("LogFormatOf(%q, LOG_FORMAT=%q)", tt.args, tt.env), got, tt.want)
	}
}

// TestRedisSettings: REDIS_URL needs REPLICAS (the fallback budget), and its password never
// reaches the log.
func TestRedisSettings(t *testing.T) {
	t.Parallel()
	_, err := config.Load(nil, env(map[string]string{"REDIS_URL": "redis://127.0.0.1:6379"}), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "REPLICAS") {
		t.Errorf("REDIS_URL without REPLICAS: error %v, want one naming REPLICAS", err)
	}
	cfg := mustLoad(t, nil, map[string]string{"REDIS_URL": "rediss://app:s3cret@cache.example.com:6380/2", "REPLICAS": "3"})
	var buf strings.Builder
	slog.New(slog.NewTextHandler(&buf, nil)).Info("configuration", "config", cfg)
	if strings.Contains(buf.String(), "s3cret") || !strings.Contains(buf.String(), "config.redis_url=rediss://cache.example.com:6380/2") {
		t.Errorf("log line %q: want the Redis host and database, never the password", buf.String())
	}
	assertEqual(t, "replicas", fmt.Sprint(cfg.Redis.Replicas), "3")
}

// TestLogValueHasEverySetting: the startup log shows the effective value of every setting
// (the secret only as whether it is set).
func TestLogValueHasEverySetting(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, nil, withCreds(map[string]string{"CORS_ORIGINS": "https://a.example.com"}))
	attrs := map[string]string{}
	for _, a := range cfg.LogValue().Group() {
		attrs[a.Key] = a.Value.String()
	}
	for _, s := range config.Settings {
		name := strings.ToLower(strings.TrimPrefix(s.Env, "MDE_"))
		if _, ok := attrs[name]; !ok {
			if _, ok := attrs[name+"_set"]; !ok {
				t.Errorf("setting %s: no %s in the configuration's log value %v", s.Env, name, attrs)
			}
		}
	}
	assertEqual(t, "not_found_ttl", attrs["not_found_ttl"], "10s")
	assertEqual(t, "cors_origins", attrs["cors_origins"], "https://a.example.com")
	assertEqual(t, "client_secret_set", attrs["client_secret_set"], "true")
}

func TestCORSOrigins(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"*", []string{"*"}},
		{"https://app.example.com", []string{"https://app.example.com"}},
		{" https://app.example.com/ , http://localhost:3000,,", []string{"https://app.example.com", "http://localhost:3000"}},
	}
	for _, tt := range tests {
		cfg := mustLoad(t, nil, map[string]string{"CORS_ORIGINS": tt.in})
		if !slices.Equal(cfg.CORSOrigins, tt.want) {
			t.Errorf("CORS_ORIGINS=%q: got %q, want %q", tt.in, cfg.CORSOrigins, tt.want)
		}
	}
}

func TestLogSettings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		level, format string
		wantLevel     slog.Level
		wantFormat    string
	}{
		{"debug", "json", slog.LevelDebug, "json"},
		{"INFO", "TEXT", slog.LevelInfo, "text"},
		{"warn", "Json", slog.LevelWarn, "json"},
		{"error", "text", slog.LevelError, "text"},
	}
	for _, tt := range tests {
		cfg := mustLoad(t, nil, map[string]string{"LOG_LEVEL": tt.level, "LOG_FORMAT": tt.format})
		assertEqual(t, "LOG_LEVEL="+tt.level, cfg.LogLevel, tt.wantLevel)
		assertEqual(t, "LOG_FORMAT="+tt.format, cfg.LogFormat, tt.wantFormat)
	}
}

func TestSecretNeverPrints(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, nil, withCreds(nil))
	assertEqual(t, "Reveal", cfg.ClientSecret.Reveal(), secret)

	var texts []string
	texts = append(texts,
		fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg),
		fmt.Sprintf("%v %+v %#v", &cfg, &cfg, &cfg),
		fmt.Sprint(cfg, cfg.ClientSecret),
		fmt.Sprintf("%v", []any{cfg, map[string]any{"s": cfg.ClientSecret}}),
	)
	// Verbs that do not call String print a string's bytes; vet rightly objects to them, so
	// they come from a variable (as they would through an `any`): a careless %d or %x must
	// still not reveal the secret. (%p is out of reach: fmt formats it before any method.)
	for _, verb := range []string{"%s", "%q", "%x", "%X", "%d", "%10.3v", "%-8s", "%T", "%t"} {
		texts = append(texts, fmt.Sprintf(verb+"|"+verb+"|"+verb, cfg, &cfg, cfg.ClientSecret))
	}
	for _, h := range []func(*bytes.Buffer) slog.Handler{
		func(b *bytes.Buffer) slog.Handler {
			return slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})
		},
		func(b *bytes.Buffer) slog.Handler {
			return slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})
		},
	} {
		var buf bytes.Buffer
		logger := slog.New(h(&buf))
		logger.Info("config", "cfg", cfg, "ptr", &cfg, "secret", cfg.ClientSecret)
		logger.Debug("config", slog.Any("cfg", cfg), slog.Any("secret", cfg.ClientSecret))
		logger.With("cfg", cfg).Info("with")
		texts = append(texts, buf.String())
	}
	for _, text := range texts {
		if strings.Contains(text, secret) {
			t.Errorf("the secret printed: %s", text)
		}
	}
	if !strings.Contains(texts[0], "[redacted]") {
		t.Errorf("%%v of the config: want [redacted] where the secret is, got %s", texts[0])
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	// Credentials in the environment must not show up as the flags' defaults in the usage.
	_, err := config.Load([]string{"-h"}, env(withCreds(map[string]string{"ADDR": "0.0.0.0:1"})), &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: got %v, want flag.ErrHelp", err)
	}
	usage := out.String()
	if strings.Contains(usage, secret) {
		t.Errorf("usage shows the client secret:\n%s", usage)
	}
	for _, s := range config.Settings {
		if !strings.Contains(usage, "-"+s.Flag()+" "+s.Type()+"\n") || !strings.Contains(usage, "env "+s.Env) {
			t.Errorf("usage does not document -%s %s (env %s)", s.Flag(), s.Type(), s.Env)
		}
	}
	for _, want := range []string{"-quota-max-wait duration\n", "-mde-limit-per-minute count\n", "-mde-api-url url\n", "(default 10s)"} {
		if !strings.Contains(usage, want) {
			t.Errorf("usage lacks %q:\n%s", want, usage)
		}
	}
	if strings.Contains(usage, " string\n") || strings.Contains(usage, `(default "`) {
		t.Errorf("usage shows a setting as a string:\n%s", usage)
	}
}

func TestUnknownFlagAndArguments(t *testing.T) {
	t.Parallel()
	kv := withCreds(nil)
	if _, err := load(t, []string{"-no-such-flag"}, kv); err == nil {
		t.Error("unknown flag: no error")
	}
	_, err := load(t, []string{"serve"}, nil)
	if err == nil || !strings.Contains(err.Error(), `"serve"`) {
		t.Errorf("positional argument: got %v, want an error naming it", err)
	}
}

func TestSettings(t *testing.T) {
	t.Parallel()
	envs := map[string]bool{}
	flags := map[string]bool{}
	for _, s := range config.Settings {
		if s.Env == "" || strings.ToUpper(s.Env) != s.Env || strings.ContainsAny(s.Env, " -") {
			t.Errorf("setting %+v: Env must be an UPPER_SNAKE name", s)
		}
		if strings.TrimSpace(s.Usage) == "" {
			t.Errorf("setting %s: empty Usage", s.Env)
		}
		if s.Type() == "string" {
			t.Errorf("setting %s: no type for -h (add it to config's types)", s.Env)
		}
		if envs[s.Env] {
			t.Errorf("setting %s listed twice", s.Env)
		}
		envs[s.Env] = true
		if flags[s.Flag()] {
			t.Errorf("flag -%s used by two settings", s.Flag())
		}
		flags[s.Flag()] = true
	}
	assertEqual(t, "flag of MDE_CLIENT_ID", config.Setting{Env: "MDE_CLIENT_ID"}.Flag(), "mde-client-id")
	// Every documented default loads (the defaults are demo mode).
	mustLoad(t, nil, nil)
}

// TestSettingsAreRead: every setting changes the configuration when given, so none is
// documented but ignored.
func TestSettingsAreRead(t *testing.T) {
	t.Parallel()
	changed := map[string]string{
		"ADDR": ":9090", "MDE_TENANT_ID": "t2", "MDE_CLIENT_ID": "c2", "MDE_CLIENT_SECRET": "s2", "MDE_CLOUD": "eu",
		"MDE_API_URL": "https://x.example.com", "MDE_TOKEN_URL": "https://y.example.com/token", "MDE_SCOPE": "z",
		"MDE_LIMIT_PER_MINUTE": "7", "MDE_LIMIT_PER_HOUR": "8", "QUOTA_MAX_WAIT": "3s", "CALLER_LIMIT_PER_MINUTE": "12", "CACHE_TTL": "4s",
		"NOT_FOUND_TTL": "2s", "STALE_TTL": "12s", "MAX_UPSTREAM_CALLS_PER_QUERY": "9", "REQUEST_TIMEOUT": "5s",
		"CORS_ORIGINS": "*", "APQ_CACHE_SIZE": "11", "LOG_LEVEL": "error", "LOG_FORMAT": "json", "DEMO_LATENCY": "6s",
		"MAX_BODY_BYTES": "2048", "MAX_QUERY_TOKENS": "12", "MAX_QUERY_ALIASES": "13", "MAX_QUERY_DEPTH": "14", "MAX_QUERY_FIELDS": "15",
		"MAX_QUERY_DIRECTIVES": "16", "INTROSPECTION": "true", "SHUTDOWN_DELAY": "5s", "SHUTDOWN_GRACE": "17s",
		"AUTH_MODE": "apikey", "API_KEYS": "a:" + strings.Repeat("0", 64), "API_KEYS_FILE": keysFile(t, "b:"+strings.Repeat("1", 64)),
		"AUTH_TENANT_ID": "contoso.onmicrosoft.com", "AUTH_ISSUER": "https://login.microsoftonline.us/" + tenant + "/v2.0",
		"AUTH_AUDIENCE": "api://other", "AUTH_REQUIRED_ROLE": "Mdegraph.Read", "UPSTREAM_IDENTITY": "user", "METRICS_ADDR": "127.0.0.1:9100",
		"REDIS_URL": "redis://127.0.0.1:6390/1", "REDIS_PREFIX": "p2", "REDIS_TIMEOUT": "2s", "REDIS_FALLBACK": "local", "REPLICAS": "3",
		"RESPONSE_CACHE_BYTES": "0", "PPROF": "true",
	}
	// Settings that take effect only along with others are compared with those others set.
	entra := map[string]string{"AUTH_MODE": "entra", "AUTH_AUDIENCE": "api://mdegraph"}
	along := map[string]map[string]string{
		"ADDR":           {"AUTH_MODE": "none"},
		"AUTH_MODE":      {"API_KEYS": "a:" + strings.Repeat("0", 64)},
		"AUTH_TENANT_ID": entra, "AUTH_ISSUER": entra, "AUTH_AUDIENCE": entra, "UPSTREAM_IDENTITY": entra,
		"REDIS_URL": {"REPLICAS": "3"}, // REDIS_URL requires REPLICAS
		"PPROF":     {"METRICS_ADDR": "127.0.0.1:9100"},
	}
	for _, s := range config.Settings {
		v, ok := changed[s.Env]
		if !ok {
			t.Errorf("setting %s: no test value", s.Env)
			continue
		}
		base := mustLoad(t, nil, withCreds(along[s.Env]))
		kv := withCreds(maps.Clone(along[s.Env]))
		kv[s.Env] = v
		cfg := mustLoad(t, nil, kv)
		if fmt.Sprintf("%+v|%s|%s", cfg, cfg.ClientSecret.Reveal(), cfg.Redis.URL.Reveal()) ==
			fmt.Sprintf("%+v|%s|%s", base, base.ClientSecret.Reveal(), base.Redis.URL.Reveal()) {
			t.Errorf("setting %s=%q changed nothing", s.Env, v)
		}
	}
}

func TestAddrAndTenantChecks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		env     map[string]string
		wantErr string
	}{
		{map[string]string{"ADDR": "127.0.0.1:abc"}, "ADDR"},
		{map[string]string{"ADDR": "127.0.0.1:70000"}, "ADDR"},
		{map[string]string{"ADDR": ":0"}, "AUTH_MODE"}, // every interface, and nobody signs in
		{map[string]string{"ADDR": ":0", "AUTH_MODE": "none"}, ""},
		{map[string]string{"ADDR": "localhost:0"}, ""},
		{map[string]string{"ADDR": "[::1]:8080"}, ""},
		{map[string]string{"MDE_TENANT_ID": "../../evil", "MDE_CLIENT_ID": "c", "MDE_CLIENT_SECRET": "s"}, "MDE_TENANT_ID"},
		{map[string]string{"MDE_TENANT_ID": "contoso.onmicrosoft.com", "MDE_CLIENT_ID": "c", "MDE_CLIENT_SECRET": "s"}, ""},
		{map[string]string{"MDE_TENANT_ID": "72f988bf-86f1-41af-91ab-2d7cd011db47", "MDE_CLIENT_ID": "c", "MDE_CLIENT_SECRET": "s"}, ""},
	}
	for _, tt := range tests {
		_, err := config.Load(nil, func(k string) string { return tt.env[k] }, io.Discard)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%v: unexpected error %v", tt.env, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%v: error %v, want one naming %s", tt.env, err, tt.wantErr)
		}
	}
}

func TestSecretHiddenFromJSON(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(config.Config{ClientSecret: "hunter2"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "hunter2") {
		t.Errorf("json.Marshal leaks the secret: %s", b)
	}
}

// keysFile writes an API_KEYS_FILE holding content and returns its path.
func keysFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(p, []byte(content+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestREADMEListsEverySetting keeps the README's configuration table in step with Settings.
func TestREADMEListsEverySetting(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range config.Settings {
		def := ""
		if s.Default != "" {
			def = "`" + s.Default + "`"
		}
		row := strings.ReplaceAll(fmt.Sprintf("| `%s` | %s | %s |", s.Env, def, s.Usage), "|  |", "| |")
		if !strings.Contains(string(readme), row) {
			t.Errorf("README.md lacks the row:\n%s", row)
		}
	}
}

func TestQueryLimitsIntrospectionAndGrace(t *testing.T) {
	t.Parallel()
	demo := mustLoad(t, nil, nil)
	if want := (querylimit.Limits{Tokens: 5000, Aliases: 100, Depth: 20, Fields: 2000, Directives: 50}); demo.QueryLimits != want {
		t.Errorf("QueryLimits = %+v, want %+v", demo.QueryLimits, want)
	}
	if !demo.Introspection || demo.ShutdownGrace != 30*time.Second {
		t.Errorf("demo mode: Introspection %v, ShutdownGrace %v; want true, REQUEST_TIMEOUT (30s)", demo.Introspection, demo.ShutdownGrace)
	}
	tests := []struct {
		kv                map[string]string
		wantIntrospection bool
		wantGrace         time.Duration
	}{
		{withCreds(nil), false, 30 * time.Second},
		{withCreds(map[string]string{"INTROSPECTION": "TRUE", "REQUEST_TIMEOUT": "5s"}), true, 5 * time.Second},
		{map[string]string{"INTROSPECTION": "false", "SHUTDOWN_GRACE": "0"}, false, 0},
		{map[string]string{"SHUTDOWN_GRACE": "2m"}, true, 2 * time.Minute},
	}
	for _, tt := range tests {
		cfg := mustLoad(t, nil, tt.kv)
		if cfg.Introspection != tt.wantIntrospection || cfg.ShutdownGrace != tt.wantGrace {
			t.Errorf("%v: Introspection %v, ShutdownGrace %v; want %v, %v", tt.kv, cfg.Introspection, cfg.ShutdownGrace, tt.wantIntrospection, tt.wantGrace)
		}
	}
	for kv, want := range map[string]string{
		"INTROSPECTION=yes": "INTROSPECTION", "MAX_QUERY_DEPTH=0": "MAX_QUERY_DEPTH", "MAX_QUERY_TOKENS=x": "MAX_QUERY_TOKENS",
		"SHUTDOWN_GRACE=-1s": "SHUTDOWN_GRACE", "SHUTDOWN_DELAY=-1s": "SHUTDOWN_DELAY", "SHUTDOWN_DELAY=15": "SHUTDOWN_DELAY",
	} {
		k, v, _ := strings.Cut(kv, "=")
		if _, err := load(t, nil, map[string]string{k: v}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one naming %s", kv, err, want)
		}
	}
}

// TestAuthSettings: the caller sign-in settings and UPSTREAM_IDENTITY, their defaults, what
// they need from each other, and the errors and warnings naming them.
func TestAuthSettings(t *testing.T) {
	t.Parallel()
	hash := strings.Repeat("ab", 32)
	tests := []struct {
		name         string
		kv           map[string]string
		wantErr      string // a variable the error names; "" for none
		wantMode     string
		wantUpstream string
		wantWarning  string // a word of the one warning; "" for none
	}{
		{"demo defaults: anyone, persons on-behalf-of", nil, "", "none", "user", ""},
		{"credentials: the app", withCreds(nil), "", "none", "app", ""},
		{"none beyond loopback, not asked for", withCreds(map[string]string{"ADDR": "0.0.0.0:8080"}), "AUTH_MODE", "", "", ""},
		{"none beyond loopback, explicitly", withCreds(map[string]string{"ADDR": "0.0.0.0:8080", "AUTH_MODE": "none"}), "", "none", "app", "AUTH_MODE=none"},
		{"apikey", withCreds(map[string]string{"ADDR": ":8080", "AUTH_MODE": "APIKey", "API_KEYS": "web:" + hash}), "", "apikey", "app", ""},
		{"apikey without keys", withCreds(map[string]string{"AUTH_MODE": "apikey"}), "API_KEYS", "", "", ""},
		{"keys while nobody signs in", withCreds(map[string]string{"API_KEYS": "web:" + hash}), "", "none", "app", "API_KEYS"},
		{"apikey cannot be asked on-behalf-of", withCreds(map[string]string{"AUTH_MODE": "apikey", "API_KEYS": "web:" + hash, "UPSTREAM_IDENTITY": "user"}), "UPSTREAM_IDENTITY", "", "", ""},
		{"entra needs an audience", withCreds(map[string]string{"AUTH_MODE": "entra"}), "AUTH_AUDIENCE", "", "", ""},
		{"entra, app", withCreds(map[string]string{"AUTH_MODE": "entra", "AUTH_AUDIENCE": "api://mdegraph"}), "", "entra", "app", ""},
		{"entra, user", withCreds(map[string]string{"AUTH_MODE": "entra", "AUTH_AUDIENCE": "api://mdegraph", "UPSTREAM_IDENTITY": "USER"}), "", "entra", "user", ""},
		{"entra, a multi-tenant issuer", withCreds(map[string]string{"AUTH_MODE": "entra", "AUTH_AUDIENCE": "api://mdegraph",
			"AUTH_ISSUER": "https://login.microsoftonline.com/common/v2.0"}), "AUTH_ISSUER", "", "", ""},
		{"entra settings while nobody signs in", withCreds(map[string]string{"AUTH_AUDIENCE": "api://mdegraph"}), "", "none", "app", "AUTH_AUDIENCE"},
		{"demo: the simulator is the issuer", map[string]string{"AUTH_ISSUER": "https://login.microsoftonline.com/" + tenant + "/v2.0"}, "AUTH_ISSUER", "", "", ""},
		{"demo, sign-in required", map[string]string{"AUTH_MODE": "entra"}, "", "entra", "user", ""},
		{"demo, the app for everyone", map[string]string{"UPSTREAM_IDENTITY": "app"}, "", "none", "app", ""},
		{"demo, API keys", map[string]string{"AUTH_MODE": "apikey", "API_KEYS": "web:" + hash}, "", "apikey", "app", ""},
		{"metrics elsewhere", map[string]string{"METRICS_ADDR": "127.0.0.1:9100"}, "", "none", "user", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := load(t, nil, tt.kv)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			assertEqual(t, "AuthMode", string(cfg.AuthMode), tt.wantMode)
			assertEqual(t, "UpstreamIdentity", cfg.UpstreamIdentity, tt.wantUpstream)
			switch {
			case tt.wantWarning == "" && len(cfg.Warnings) > 0:
				t.Errorf("warnings %q, want none", cfg.Warnings)
			case tt.wantWarning != "" && (len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0], tt.wantWarning)):
				t.Errorf("warnings %q, want one about %s", cfg.Warnings, tt.wantWarning)
			}
		})
	}
	// AUTH_TENANT_ID defaults to MDE_TENANT_ID; the startup log shows key names, never hashes.
	cfg := mustLoad(t, nil, withCreds(map[string]string{"AUTH_MODE": "entra", "AUTH_AUDIENCE": "api://mdegraph", "API_KEYS": "web:" + hash}))
	assertEqual(t, "Entra.TenantID", cfg.Entra.TenantID, tenant)
	if text := fmt.Sprint(cfg.LogValue()); strings.Contains(text, hash) || !strings.Contains(text, "api_keys=web") {
		t.Errorf("log value %s: want the key's name and not its hash", text)
	}
	// A key pasted where its hash belongs is not repeated.
	key := "mdg_" + strings.Repeat("k", 43)
	if _, err := load(t, nil, map[string]string{"API_KEYS": "web:" + key}); err == nil || strings.Contains(err.Error(), key) {
		t.Errorf("API_KEYS with a key instead of its hash: error %v, want one without the key", err)
	}
}

// TestRequiredRoleErrorOnce: with AUTH_MODE=entra a bad AUTH_REQUIRED_ROLE is reported once,
// as in every other mode (the entra settings are checked together, the role among them).
func TestRequiredRoleErrorOnce(t *testing.T) {
	t.Parallel()
	for _, kv := range []map[string]string{
		{"AUTH_REQUIRED_ROLE": "a b"},
		withCreds(map[string]string{"AUTH_REQUIRED_ROLE": "a b"}),
		withCreds(map[string]string{"AUTH_MODE": "entra", "AUTH_AUDIENCE": "api://mdegraph", "AUTH_REQUIRED_ROLE": "a b"}),
	} {
		_, err := load(t, nil, kv)
		if err == nil {
			t.Errorf("%v: no error", kv["AUTH_MODE"])
			continue
		}
		if n := strings.Count(err.Error(), "AUTH_REQUIRED_ROLE"); n != 1 {
			t.Errorf("AUTH_MODE=%q: AUTH_REQUIRED_ROLE named %d times, want once:\n%v", kv["AUTH_MODE"], n, err)
		}
	}
}
