package callerauth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/mdegraph/mdegraph/internal/simulator"
)

// simTransport answers every request in-process with the simulator, whatever its host, so
// tests can use Entra ID's real URLs, run inside a synctest bubble, and need no socket.
type simTransport struct{ sim *simulator.Simulator }

func (t simTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.Host, r.RequestURI, r.RemoteAddr = req.URL.Host, req.URL.RequestURI(), "127.0.0.1:50000"
	if r.Body == nil {
		r.Body = http.NoBody
	}
	rec := httptest.NewRecorder()
	t.sim.ServeHTTP(rec, r)
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	return rec.Result(), nil
}

// testAuthority is the simulator's base URL in tests that use simTransport.
const testAuthority = "http://127.0.0.1:9"

// newSim returns a simulator whose Entra ID is at authority.
func newSim(t *testing.T, authority string) *simulator.Simulator {
	t.Helper()
	sim := simulator.New(simulator.Options{Devices: 1, TenantID: simulator.DemoTenantID})
	sim.SetAuthority(authority)
	return sim
}

// entraOptions are the options of a verifier that trusts sim (reached through simTransport)
// as the simulator's demo tenant wants: audience api://mdegraph, role Mdegraph.Read.
func entraOptions(sim *simulator.Simulator) EntraOptions {
	return EntraOptions{
		TenantID:     simulator.DemoTenantID,
		Issuer:       sim.Issuer(),
		Audiences:    []string{simulator.DefaultAudience},
		RequiredRole: simulator.AppRoleRead,
		HTTPClient:   &http.Client{Transport: simTransport{sim}},
	}
}

// newVerifier builds a verifier over sim, with edit applied to the options, ending its
// background refresh with ctx.
func newVerifier(t *testing.T, ctx context.Context, sim *simulator.Simulator, edit func(*EntraOptions)) *EntraVerifier {
	t.Helper()
	opts := entraOptions(sim)
	if edit != nil {
		edit(&opts)
	}
	v, err := NewEntraVerifier(ctx, opts)
	if err != nil {
		t.Fatalf("NewEntraVerifier: %v", err)
	}
	return v
}

// mint mints a token or fails the test.
func mint(t *testing.T, sim *simulator.Simulator, c simulator.TokenClaims) string {
	t.Helper()
	tok, err := sim.MintAccessToken(c)
	if err != nil {
		t.Fatalf("MintAccessToken(%+v): %v", c, err)
	}
	return tok
}

// jwksCalls is how many times sim's key set was fetched.
func jwksCalls(sim *simulator.Simulator) int { return sim.Stats()[simulator.EndpointJWKS].Calls }

// wantRefusal checks that err is an *Error with this status and reason.
func wantRefusal(t *testing.T, err error, status int, reason Reason) *Error {
	t.Helper()
	e, ok := err.(*Error)
	if !ok {
		t.Fatalf("error %v (%T), want an *Error with status %d, reason %s", err, err, status, reason)
	}
	if e.Status != status || e.Reason != reason {
		t.Fatalf("refused with %d %s (%q), want %d %s", e.Status, e.Reason, e.Message, status, reason)
	}
	return e
}
