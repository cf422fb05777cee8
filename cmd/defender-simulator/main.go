// Command defender-simulator serves the Microsoft Defender for Endpoint API simulator on its own
// port: for running mdegraph without credentials, and for building other clients against a
// deterministic, rate-limited stand-in of the upstream and of the Entra ID tenant in front of it.
//
// Every flag can also be set with an environment variable, SIM_ and the flag name in upper case
// with - as _ (SIM_ADDR, SIM_CLIENT_SECRET, ...); a flag on the command line wins.
//
//	go run ./cmd/defender-simulator -addr 127.0.0.1:9090 -seed 1 -devices 300 -latency 50ms
//
// Besides the Defender routes it serves Entra ID's OIDC discovery
// (/{tenant}/v2.0/.well-known/openid-configuration), JWKS (/{tenant}/discovery/v2.0/keys) and
// token endpoint (client credentials and on-behalf-of), with the issuer
// http://{addr}/{tenant}/v2.0. Demo persons, each allowed different device groups, sign in
// without a browser, for a token for the service's API (audience -audience):
//
//	curl -s http://127.0.0.1:9090/demo/persons
//	curl -s -d person=megan http://127.0.0.1:9090/demo/signin
//	go run ./cmd/defender-simulator -print-tokens    # also prints one token per person on stdout
//
// /demo/* exists only in the simulator. Paging quirks (-next-link), the answer for a device
// outside a person's groups (-forbid-hidden-devices) and an empty tenant (-devices 0) are flags.
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
	"strings"
	"syscall"
	"time"

	"github.com/mdegraph/mdegraph/internal/simulator"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return // -h asked for the usage, which was printed
		}
		fmt.Fprintln(os.Stderr, "defender-simulator:", err)
		os.Exit(1)
	}
}

// config is the command's configuration, from flags and SIM_* variables.
type config struct {
	addr                   string
	seed                   int64
	devices                int
	latency                time.Duration
	tenant                 string
	clientID, clientSecret string
	perMinute, perHour     int
	verbose                bool
	audience               string
	tokenTTL               time.Duration
	printTokens            bool
	forbidHidden           bool
	nextLink               string
	pageSize               int
}

// nextLinkModes are the values of -next-link.
var nextLinkModes = map[string]simulator.NextLinkMode{
	"normal": simulator.NextLinkNormal, "missing": simulator.NextLinkMissing, "repeat": simulator.NextLinkRepeat,
}

// run parses the configuration, listens, and serves until ctx ends. Tokens asked for with
// -print-tokens go to stdout, logs to stderr.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	level := slog.LevelInfo
	if cfg.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("listen on %s (SIM_ADDR): %w", cfg.addr, err)
	}
	return serve(ctx, ln, cfg, log, stdout)
}

// envName is the variable that sets a flag: -client-secret is SIM_CLIENT_SECRET.
func envName(flagName string) string {
	return "SIM_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	cfg := config{}
	fs := flag.NewFlagSet("defender-simulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.addr, "addr", "127.0.0.1:9090", "listen address; loopback by default")
	fs.Int64Var(&cfg.seed, "seed", simulator.DefaultSeed, "data set seed")
	fs.IntVar(&cfg.devices, "devices", simulator.DefaultDevices, "number of devices; 0 serves a tenant without devices")
	fs.DurationVar(&cfg.latency, "latency", 0, "latency added to every API call, e.g. 80ms")
	fs.StringVar(&cfg.tenant, "tenant-id", simulator.DemoTenantID, "the tenant id the token endpoint accepts")
	fs.StringVar(&cfg.clientID, "client-id", simulator.DefaultClientID, "the client id the token endpoint accepts")
	fs.StringVar(&cfg.clientSecret, "client-secret", simulator.DefaultClientSecret, "the client secret the token endpoint accepts")
	fs.IntVar(&cfg.perMinute, "per-minute", simulator.DefaultPerMinute, "calls per endpoint in any 60 s; negative: unlimited")
	fs.IntVar(&cfg.perHour, "per-hour", simulator.DefaultPerHour, "calls per endpoint in any 3600 s; negative: unlimited")
	fs.BoolVar(&cfg.verbose, "verbose", false, "log every call")
	fs.StringVar(&cfg.audience, "audience", simulator.DefaultAudience, "the audience (App ID URI) of the demo persons' tokens for the service's API")
	fs.DurationVar(&cfg.tokenTTL, "token-ttl", simulator.DefaultTokenTTL, "lifetime of issued tokens")
	fs.BoolVar(&cfg.printTokens, "print-tokens", false, "print an access token for every demo person on stdout once listening")
	fs.BoolVar(&cfg.forbidHidden, "forbid-hidden-devices", false, "answer 403 instead of 404 when a person asks for a device outside their groups")
	fs.StringVar(&cfg.nextLink, "next-link", "normal", "paging of GET /api/machines without $top: normal, missing (never a nextLink) or repeat (the same page forever)")
	fs.IntVar(&cfg.pageSize, "page-size", simulator.MaxTop, "devices per page of GET /api/machines without $top")
	fs.VisitAll(func(f *flag.Flag) { f.Usage += " (" + envName(f.Name) + ")" })

	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if v := getenv(envName(f.Name)); v != "" && envErr == nil {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("%s=%q: %w", envName(f.Name), v, err)
			}
		}
	})
	if envErr != nil {
		return config{}, envErr
	}
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	_, knownNextLink := nextLinkModes[cfg.nextLink]
	switch {
	case fs.NArg() > 0:
		return config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	case cfg.devices < 0:
		return config{}, fmt.Errorf("-devices (SIM_DEVICES) must not be negative, got %d", cfg.devices)
	case cfg.pageSize <= 0 || cfg.pageSize > simulator.MaxTop:
		return config{}, fmt.Errorf("-page-size (SIM_PAGE_SIZE) must be 1 to %d, got %d", simulator.MaxTop, cfg.pageSize)
	case cfg.tokenTTL <= 0:
		return config{}, fmt.Errorf("-token-ttl (SIM_TOKEN_TTL) must be positive, got %v", cfg.tokenTTL)
	case !knownNextLink:
		return config{}, fmt.Errorf("-next-link (SIM_NEXT_LINK) must be normal, missing or repeat, got %q", cfg.nextLink)
	case cfg.latency < 0:
		return config{}, fmt.Errorf("-latency (SIM_LATENCY) must not be negative, got %v", cfg.latency)
	case cfg.perMinute == 0 || cfg.perHour == 0:
		return config{}, errors.New("-per-minute (SIM_PER_MINUTE) and -per-hour (SIM_PER_HOUR) must not be 0; use a negative value for unlimited")
	case cfg.tenant == "" || cfg.clientID == "" || cfg.clientSecret == "" || cfg.audience == "":
		return config{}, errors.New("-tenant-id (SIM_TENANT_ID), -client-id (SIM_CLIENT_ID), -client-secret (SIM_CLIENT_SECRET) and -audience (SIM_AUDIENCE) must not be empty")
	}
	return cfg, nil
}

// serve runs the simulator on ln until ctx ends, then shuts down gracefully. With -print-tokens
// it writes one line per demo person to stdout: id, UPN, token.
func serve(ctx context.Context, ln net.Listener, cfg config, log *slog.Logger, stdout io.Writer) error {
	base := "http://" + dialable(ln.Addr())
	sim := simulator.New(simulator.Options{
		Seed:                cfg.seed,
		Devices:             cfg.devices,
		NoDevices:           cfg.devices == 0,
		TenantID:            cfg.tenant,
		ClientID:            cfg.clientID,
		ClientSecret:        cfg.clientSecret,
		Latency:             cfg.latency,
		PerMinute:           cfg.perMinute,
		PerHour:             cfg.perHour,
		TokenTTL:            cfg.tokenTTL,
		Audience:            cfg.audience,
		Authority:           base,
		ForbidHiddenDevices: cfg.forbidHidden,
		NextLink:            nextLinkModes[cfg.nextLink],
		PageSize:            cfg.pageSize,
		Logger:              log,
	})
	srv := &http.Server{
		Handler:           sim,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("defender simulator listening",
		"url", base, "devices", cfg.devices, "seed", cfg.seed, "per_minute", cfg.perMinute, "per_hour", cfg.perHour,
		"latency", cfg.latency, "example_machine_id", sim.ExampleMachineID(), "example_machine_name", sim.ExampleMachineName())
	// The secret is the simulator's own public demo secret: printing it is the point.
	log.Info("point mdegraph at the simulator with", "env", fmt.Sprintf(
		"MDE_API_URL=%s MDE_TOKEN_URL=%s/%s/oauth2/v2.0/token MDE_TENANT_ID=%s MDE_CLIENT_ID=%s MDE_CLIENT_SECRET=%s",
		base, base, cfg.tenant, cfg.tenant, cfg.clientID, cfg.clientSecret))
	log.Info("entra id", "issuer", sim.Issuer(), "discovery", sim.Issuer()+"/.well-known/openid-configuration",
		"jwks", base+"/"+cfg.tenant+"/discovery/v2.0/keys", "audience", cfg.audience,
		"demo_persons", base+"/demo/persons", "demo_signin", "curl -d person=megan "+base+"/demo/signin")
	if cfg.printTokens {
		for _, p := range sim.Persons() {
			tok, err := sim.SignIn(p.ID)
			if err != nil {
				return fmt.Errorf("sign in %s: %w", p.ID, err)
			}
			// Demo tokens for a demo tenant: printing them is the point of the flag.
			fmt.Fprintf(stdout, "%s\t%s\t%s\n", p.ID, p.UPN, tok)
		}
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second+cfg.latency)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// dialable turns a listen address into one a client can dial: 0.0.0.0 and :: become loopback.
func dialable(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return addr.String()
	}
	return net.JoinHostPort("127.0.0.1", fmt.Sprint(tcp.Port))
}
