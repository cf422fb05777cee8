package app

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/mdegraph/mdegraph/internal/callerauth"
	"github.com/mdegraph/mdegraph/internal/config"
	"github.com/mdegraph/mdegraph/internal/defender"
	"github.com/mdegraph/mdegraph/internal/principal"
	"github.com/mdegraph/mdegraph/internal/simulator"
	"github.com/mdegraph/mdegraph/internal/upstreamauth"
	"github.com/mdegraph/mdegraph/internal/web"
)

// The sign-in of callers (AUTH_MODE) and the choice of the upstream identity
// (UPSTREAM_IDENTITY), as the service wires them.

// With UPSTREAM_IDENTITY=user the client asks the on-behalf-of source, which picks each
// request's person from its context.
var _ defender.TokenSource = (*upstreamauth.OnBehalfOf)(nil)

// signIn builds the sign-in of callers described by cfg. In demo mode the simulator is the
// Entra ID (its issuer and audience, AUTH_REQUIRED_ROLE defaulting to simulator.AppRoleRead),
// and with AUTH_MODE=none signing in is optional: anyone may call, and a demo person who
// presents a token from the simulator is served as that person. NewEntraVerifier fetches the
// discovery document and the signing keys now, so that a wrong setting stops the start.
func signIn(ctx context.Context, cfg config.Config, sim *simulator.Simulator, logger *slog.Logger, onRefusal func(callerauth.Reason)) (*callerauth.Authenticator, error) {
	opts := callerauth.Options{Mode: cfg.AuthMode, APIKeys: cfg.APIKeys, Logger: logger, OnRefusal: onRefusal}
	settings := cfg.Entra
	if cfg.Demo {
		settings = callerauth.EntraSettings{TenantID: sim.TenantID(), Issuer: sim.Issuer(), Audience: sim.Audience(),
			RequiredRole: cmp.Or(cfg.Entra.RequiredRole, simulator.AppRoleRead)}
		if opts.Mode == callerauth.ModeNone {
			opts.Mode, opts.Optional = callerauth.ModeEntra, true
		}
	}
	if opts.Mode == callerauth.ModeEntra {
		eo, err := settings.Parse()
		if err != nil {
			return nil, err
		}
		eo.Logger = logger
		if opts.Tokens, err = callerauth.NewEntraVerifier(ctx, eo); err != nil {
			return nil, err
		}
	}
	return callerauth.New(opts)
}

// upstreamTokens returns the token source the Defender client asks and the identity each
// request's answers are kept under (loaders.Middleware). With UPSTREAM_IDENTITY=app both are
// the application's. With user, a caller who presented a token is served on-behalf-of it, and
// its answers are keyed by its principal, so no layer (cache, 404s, stale fallbacks, shared
// calls) hands one person's answer to another; a caller without a token is served with the
// application's token in the demo (optional sign-in), and refused (by the token source, before
// any call) otherwise, under an identity of its own that nothing else shares.
func upstreamTokens(ctx context.Context, cfg config.Config, creds upstreamauth.ClientCredentials, app *upstreamauth.Source,
	observe func(error)) (tokens defender.TokenSource, identity func(*http.Request) string) {
	appIdentity := creds.Identity()
	if cfg.UpstreamIdentity != config.UpstreamUser {
		return app, func(*http.Request) string { return appIdentity }
	}
	demo := cfg.Demo && cfg.AuthMode == callerauth.ModeNone
	opts := upstreamauth.OnBehalfOfOptions{Credentials: creds, Observe: observe}
	if demo {
		opts.Fallback = app
	}
	obo := upstreamauth.NewOnBehalfOf(ctx, opts)
	return obo, func(r *http.Request) string {
		p, _ := principal.FromContext(r.Context())
		switch _, signedIn := principal.AssertionFrom(r.Context()); {
		case signedIn:
			return p.ID() // "user:{tid}/{oid}"; the application's is "app:{tenant}/{client}"
		case demo:
			return appIdentity
		}
		return "unauthenticated:" + p.ID()
	}
}

// demoPersons are the playground's demo sign-in choices, each labelled with what Defender
// shows that person (when upstream is "user") and why some cannot use the service.
func demoPersons(sim *simulator.Simulator, upstream string) []web.DemoPerson {
	var out []web.DemoPerson
	for _, p := range sim.Persons() {
		var notes []string
		switch {
		case !slices.ContainsFunc(p.AppRoles, func(r string) bool { return strings.EqualFold(r, simulator.AppRoleRead) }):
			notes = append(notes, "lacks the app role "+simulator.AppRoleRead+": FORBIDDEN")
		case p.ConsentMissing && upstream == config.UpstreamUser:
			notes = append(notes, "nobody consented to Defender on her behalf: FORBIDDEN")
		}
		groups := make([]string, len(p.RBACGroupIDs))
		for i, g := range p.RBACGroupIDs {
			groups[i] = strconv.Itoa(g)
		}
		sees := "device groups " + strings.Join(groups, ", ")
		if len(groups) == 0 {
			sees = "no device group"
		}
		if upstream != config.UpstreamUser {
			sees = "every device (Defender is asked as the service: UPSTREAM_IDENTITY=app)"
		}
		label := fmt.Sprintf("%s (%s): %s", p.Name, p.ID, sees)
		if len(notes) > 0 {
			label += "; " + strings.Join(notes, "; ")
		}
		out = append(out, web.DemoPerson{ID: p.ID, Label: label})
	}
	return out
}
