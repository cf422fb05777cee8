package upstreamauth

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/mdegraph/mdegraph/internal/principal"
	"github.com/mdegraph/mdegraph/internal/simulator"
)

// oboSetup starts the simulator as Entra ID and returns an OnBehalfOf with its credentials
// (secret, when not empty, replaces the right one).
func oboSetup(t *testing.T, opts OnBehalfOfOptions, secret string) (*OnBehalfOf, *simulator.Simulator) {
	t.Helper()
	sim := simulator.New(simulator.Options{})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	sim.SetAuthority(srv.URL)
	if secret == "" {
		secret = sim.ClientSecret()
	}
	opts.Credentials = ClientCredentials{TenantID: sim.TenantID(), ClientID: sim.ClientID(), ClientSecret: secret,
		TokenURL: srv.URL + "/" + sim.TenantID() + "/oauth2/v2.0/token", Scope: scope}
	return NewOnBehalfOf(t.Context(), opts), sim
}

// callerContext is a request context of the demo person signed in with token.
func callerContext(t *testing.T, sim *simulator.Simulator, person, token string) context.Context {
	t.Helper()
	p, ok := sim.Person(person)
	if !ok {
		t.Fatalf("no demo person %s", person)
	}
	ctx := principal.NewContext(t.Context(), principal.Principal{Kind: principal.KindUser, TenantID: sim.TenantID(), ObjectID: p.OID})
	return principal.WithAssertion(ctx, principal.Assertion(token))
}

// signedIn is callerContext with a fresh sign-in of person.
func signedIn(t *testing.T, sim *simulator.Simulator, person string) context.Context {
	t.Helper()
	tok, err := sim.SignIn(person)
	if err != nil {
		t.Fatal(err)
	}
	return callerContext(t, sim, person, tok)
}

// tokenFor is the Defender token obo gives the caller of ctx; it fails the test on an error.
func tokenFor(t *testing.T, obo *OnBehalfOf, ctx context.Context) *oauth2.Token {
	t.Helper()
	tok, err := obo.TokenContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// exchanges counts the tokens the simulator issued on-behalf-of each person, by object id.
func exchanges(sim *simulator.Simulator) map[string]int {
	return sim.Stats()[simulator.EndpointToken].ByIdentity
}

func TestOnBehalfOf_OneExchangePerPerson(t *testing.T) {
	t.Parallel()
	obo, sim := oboSetup(t, OnBehalfOfOptions{}, "")
	megan, grady := signedIn(t, sim, "megan"), signedIn(t, sim, "grady")
	m1 := tokenFor(t, obo, megan)
	// Many concurrent requests of the same person share the token, or its one exchange.
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if tok, err := obo.TokenContext(signedIn(t, sim, "megan")); err != nil || tok.AccessToken != m1.AccessToken {
				t.Errorf("megan again: %v (same token: %v)", err, err == nil && tok.AccessToken == m1.AccessToken)
			}
		})
	}
	wg.Wait()
	if g := tokenFor(t, obo, grady); g.AccessToken == m1.AccessToken {
		t.Fatal("grady got megan's token")
	}
	mp, _ := sim.Person("megan")
	gp, _ := sim.Person("grady")
	got := exchanges(sim)
	assertEqual(t, "exchanges for megan", got[mp.OID], 1)
	assertEqual(t, "exchanges for grady", got[gp.OID], 1)
	assertEqual(t, "application tokens", got[simulator.IdentityApp], 0)
	assertEqual(t, "persons kept", obo.Persons(), 2)
}

// TestOnBehalfOf_Request: the exchange is the form Entra ID documents (../shared/UPSTREAM.md).
func TestOnBehalfOf_Request(t *testing.T) {
	t.Parallel()
	endpoint := &tokenEndpoint{expiresIn: 3600}
	srv := httptest.NewServer(endpoint)
	t.Cleanup(srv.Close)
	obo := NewOnBehalfOf(t.Context(), OnBehalfOfOptions{Credentials: ClientCredentials{
		TenantID: tenant, ClientID: client, ClientSecret: secret, TokenURL: srv.URL + "/token", Scope: scope}})
	ctx := principal.NewContext(t.Context(), principal.Principal{Kind: principal.KindUser, TenantID: tenant, ObjectID: "o1"})
	if _, err := obo.TokenContext(principal.WithAssertion(ctx, "the.callers.token")); err != nil {
		t.Fatal(err)
	}
	form := endpoint.forms[0]
	for k, want := range map[string]string{
		"grant_type": GrantJWTBearer, "assertion": "the.callers.token", "requested_token_use": "on_behalf_of",
		"scope": scope, "client_id": client, "client_secret": secret,
	} {
		assertEqual(t, k, form.Get(k), want)
	}
}

// TestOnBehalfOf_Refusals: what Entra ID (the simulator) answers for each kind of trouble, and
// whose doing each is.
func TestOnBehalfOf_Refusals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		person      string
		claims      *simulator.TokenClaims // nil: a fresh sign-in
		secret      string
		wantRefusal Refusal
		wantAADSTS  int
		wantHint    string
	}{
		{"consent missing", "pradeep", nil, "", RefusedConsent, 65001, "admin consent"},
		{"expired assertion", "megan", &simulator.TokenClaims{Person: "megan", IssuedAt: time.Now().Add(-3 * time.Hour)}, "", RefusedCallerToken, 500133, "sign in again"},
		{"assertion for another API", "megan", &simulator.TokenClaims{Person: "megan", Audience: "api://another"}, "", RefusedCallerToken, 50013, "sign in again"},
		{"wrong client secret", "megan", nil, "not-the-secret", RefusedService, 7000215, "MDE_CLIENT_SECRET"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			obo, sim := oboSetup(t, OnBehalfOfOptions{}, tt.secret)
			ctx := signedIn(t, sim, tt.person)
			if tt.claims != nil {
				tok, err := sim.MintAccessToken(*tt.claims)
				if err != nil {
					t.Fatal(err)
				}
				ctx = callerContext(t, sim, tt.person, tok)
			}
			_, err := obo.TokenContext(ctx)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("got %v, want an *Error", err)
			}
			assertEqual(t, "Kind", e.Kind, Refused)
			assertEqual(t, "Refusal", e.Refusal, tt.wantRefusal)
			assertEqual(t, "AADSTS", e.AADSTS(), tt.wantAADSTS)
			if !strings.Contains(e.Hint(), tt.wantHint) {
				t.Errorf("hint %q, want one saying %q", e.Hint(), tt.wantHint)
			}
			assertion, _ := principal.AssertionFrom(ctx)
			if strings.Contains(e.Error(), assertion.Reveal()) || strings.Contains(fmt.Sprintf("%+v", e), assertion.Reveal()) {
				t.Errorf("the error repeats the caller's token: %v", e)
			}
		})
	}
}

// TestOnBehalfOf_NewTokenAfterRefusal: a refusal of the caller's token is not held against the
// next token it presents; a missing consent is remembered (FailureTTL), as any failure is.
func TestOnBehalfOf_NewTokenAfterRefusal(t *testing.T) {
	t.Parallel()
	obo, sim := oboSetup(t, OnBehalfOfOptions{}, "")
	expired, err := sim.MintAccessToken(simulator.TokenClaims{Person: "megan", IssuedAt: time.Now().Add(-3 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := obo.TokenContext(callerContext(t, sim, "megan", expired)); err == nil {
		t.Fatal("an expired assertion was exchanged")
	}
	if _, err := obo.TokenContext(callerContext(t, sim, "megan", expired)); err == nil {
		t.Fatal("the same expired assertion was exchanged")
	}
	if _, err := obo.TokenContext(signedIn(t, sim, "megan")); err != nil {
		t.Fatalf("a fresh sign-in after a refused token: %v", err)
	}

	pradeep, _ := sim.Person("pradeep")
	before := sim.Stats()[simulator.EndpointToken].Calls
	for range 3 {
		if _, err := obo.TokenContext(signedIn(t, sim, "pradeep")); err == nil {
			t.Fatal("pradeep's token was exchanged")
		}
	}
	assertEqual(t, "token requests for pradeep (remembered for FailureTTL)", sim.Stats()[simulator.EndpointToken].Calls-before, 1)
	assertEqual(t, "tokens issued for pradeep", exchanges(sim)[pradeep.OID], 0)
}

// TestOnBehalfOf_NoCallerToken: without a caller token the application's token is used only
// when a Fallback is configured (the demo's anonymous callers).
func TestOnBehalfOf_NoCallerToken(t *testing.T) {
	t.Parallel()
	obo, sim := oboSetup(t, OnBehalfOfOptions{}, "")
	anon := principal.NewContext(t.Context(), principal.Anonymous("192.0.2.1:1234"))
	_, err := obo.TokenContext(anon)
	var e *Error
	if !errors.As(err, &e) || e.Refusal != RefusedCallerToken || !errors.Is(err, ErrNoCallerToken) {
		t.Fatalf("no caller token, no fallback: got %v, want ErrNoCallerToken refused as the caller's", err)
	}
	assertEqual(t, "token requests", sim.Stats()[simulator.EndpointToken].Calls, 0)

	app := TokenSource(t.Context(), ClientCredentials{ClientID: sim.ClientID(), ClientSecret: sim.ClientSecret(),
		TokenURL: obo.opts.Credentials.TokenURL, Scope: scope})
	withFallback := NewOnBehalfOf(t.Context(), OnBehalfOfOptions{Credentials: obo.opts.Credentials, Fallback: app})
	tok, err := withFallback.TokenContext(anon)
	if err != nil {
		t.Fatal(err)
	}
	appTok, _ := app.TokenContext(t.Context())
	assertEqual(t, "anonymous caller's token", tok.AccessToken, appTok.AccessToken)
	assertEqual(t, "application tokens", exchanges(sim)[simulator.IdentityApp], 1)
}

// TestOnBehalfOf_RejectIsPerPerson: a token Defender refuses is replaced for its person only.
func TestOnBehalfOf_RejectIsPerPerson(t *testing.T) {
	t.Parallel()
	obo, sim := oboSetup(t, OnBehalfOfOptions{}, "")
	megan, grady := signedIn(t, sim, "megan"), signedIn(t, sim, "grady")
	m1, g1 := tokenFor(t, obo, megan), tokenFor(t, obo, grady)
	m2, err := obo.Reject(megan, m1)
	if err != nil {
		t.Fatal(err)
	}
	if m2.AccessToken == m1.AccessToken {
		t.Error("Reject returned the refused token")
	}
	g2, err := obo.TokenContext(grady)
	if err != nil || g2.AccessToken != g1.AccessToken {
		t.Errorf("grady's token changed with megan's rejection: %v", err)
	}
	mp, _ := sim.Person("megan")
	assertEqual(t, "exchanges for megan", exchanges(sim)[mp.OID], 2)
}

func TestOnBehalfOf_Bounded(t *testing.T) {
	t.Parallel()
	obo, sim := oboSetup(t, OnBehalfOfOptions{MaxPrincipals: 2}, "")
	for _, p := range []string{"adele", "megan", "grady", "adele"} {
		if _, err := obo.TokenContext(signedIn(t, sim, p)); err != nil {
			t.Fatal(err)
		}
	}
	assertEqual(t, "persons kept", obo.Persons(), 2)
	ap, _ := sim.Person("adele")
	assertEqual(t, "exchanges for adele (dropped, then asked again)", exchanges(sim)[ap.OID], 2)
}

func TestAADSTS(t *testing.T) {
	t.Parallel()
	for desc, want := range map[string]int{
		"AADSTS65001: The user or administrator has not consented":   65001,
		"AADSTS500133: Assertion is not within its valid time range": 500133,
		"AADSTS7000215":     7000215,
		"":                  0,
		"Invalid client":    0,
		"AADSTSx: whatever": 0,
	} {
		assertEqual(t, desc, (&Error{Description: desc}).AADSTS(), want)
	}
}

var _ interface {
	TokenContext(context.Context) (*oauth2.Token, error)
	Reject(context.Context, *oauth2.Token) (*oauth2.Token, error)
} = (*OnBehalfOf)(nil)
