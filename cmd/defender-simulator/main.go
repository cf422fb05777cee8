// Command defender-simulator serves the Microsoft Defender for Endpoint API simulator on its own
// port: for running mdegraph without credentials, and for building other clients against a
// deterministic, rate-limited stand-in of the upstream.
//
// Every flag can also be set with an environment variable, SIM_ and the flag name in upper case
// with - as _ (SIM_ADDR, SIM_CLIENT_SECRET, ...); a flag on the command line wins.
//
//	go run ./cmd/defender-simulator -addr 127.0.0.1:9090 -seed 1 -devices 300 -latency 50ms
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
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stderr); err != nil {
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
}

// run parses the configuration, listens, and serves until ctx ends.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
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
	return serve(ctx, ln, cfg, log)
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
	fs.IntVar(&cfg.devices, "devices", simulator.DefaultDevices, "number of devices")
	fs.DurationVar(&cfg.latency, "latency", 0, "latency added to every API call, e.g. 80ms")
	fs.StringVar(&cfg.tenant, "tenant-id", simulator.DemoTenantID, "the tenant id the token endpoint accepts")
	fs.StringVar(&cfg.clientID, "client-id", simulator.DefaultClientID, "the client id the token endpoint accepts")
	fs.StringVar(&cfg.clientSecret, "client-secret", simulator.DefaultClientSecret, "the client secret the token endpoint accepts")
	fs.IntVar(&cfg.perMinute, "per-minute", simulator.DefaultPerMinute, "calls per endpoint in any 60 s; negative: unlimited")
	fs.IntVar(&cfg.perHour, "per-hour", simulator.DefaultPerHour, "calls per endpoint in any 3600 s; negative: unlimited")
	fs.BoolVar(&cfg.verbose, "verbose", false, "log every call")
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
	switch {
	case fs.NArg() > 0:
		return config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	case cfg.devices <= 0:
		return config{}, fmt.Errorf("-devices (SIM_DEVICES) must be positive, got %d", cfg.devices)
	case cfg.latency < 0:
		return config{}, fmt.Errorf("-latency (SIM_LATENCY) must not be negative, got %v", cfg.latency)
	case cfg.perMinute == 0 || cfg.perHour == 0:
		return config{}, errors.New("-per-minute (SIM_PER_MINUTE) and -per-hour (SIM_PER_HOUR) must not be 0; use a negative value for unlimited")
	case cfg.tenant == "" || cfg.clientID == "" || cfg.clientSecret == "":
		return config{}, errors.New("-tenant-id (SIM_TENANT_ID), -client-id (SIM_CLIENT_ID) and -client-secret (SIM_CLIENT_SECRET) must not be empty")
	}
	return cfg, nil
}

// serve runs the simulator on ln until ctx ends, then shuts down gracefully.
func serve(ctx context.Context, ln net.Listener, cfg config, log *slog.Logger) error {
	sim := simulator.New(simulator.Options{
		Seed:         cfg.seed,
		Devices:      cfg.devices,
		TenantID:     cfg.tenant,
		ClientID:     cfg.clientID,
		ClientSecret: cfg.clientSecret,
		Latency:      cfg.latency,
		PerMinute:    cfg.perMinute,
		PerHour:      cfg.perHour,
		Logger:       log,
	})
	srv := &http.Server{
		Handler:           sim,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	base := "http://" + dialable(ln.Addr())
	log.Info("defender simulator listening",
		"url", base, "devices", cfg.devices, "seed", cfg.seed, "per_minute", cfg.perMinute, "per_hour", cfg.perHour,
		"latency", cfg.latency, "example_machine_id", sim.ExampleMachineID(), "example_machine_name", sim.ExampleMachineName())
	// The secret is the simulator's own public demo secret: printing it is the point.
	log.Info("point mdegraph at the simulator with", "env", fmt.Sprintf(
		"MDE_API_URL=%s MDE_TOKEN_URL=%s/%s/oauth2/v2.0/token MDE_TENANT_ID=%s MDE_CLIENT_ID=%s MDE_CLIENT_SECRET=%s",
		base, base, cfg.tenant, cfg.tenant, cfg.clientID, cfg.clientSecret))

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
