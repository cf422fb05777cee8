package callerauth

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mdegraph/mdegraph/internal/logtest"
	"github.com/mdegraph/mdegraph/internal/principal"
	"github.com/mdegraph/mdegraph/internal/simulator"
)

const otherTenant = "99999999-8888-4777-8666-555555555555"

// reSign signs the claims of a valid token again, with method and key, keeping its kid: the
// algorithm-confusion attacks.
func reSign(t *testing.T, valid string, method jwt.SigningMethod, key any) string {
	t.Helper()
	var claims jwt.MapClaims
	orig, _, err := jwt.NewParser().ParseUnverified(valid, &claims)
	if err != nil {
		t.Fatal(err)
	}
	tok := jwt.NewWithClaims(method, claims)
	tok.Header["kid"] = orig.Header["kid"]
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tamper replaces the payload of a valid token with edited claims, keeping its signature.
func tamper(t *testing.T, valid string, edit func(jwt.MapClaims)) string {
	t.Helper()
	var claims jwt.MapClaims
	if _, _, err := jwt.NewParser().ParseUnverified(valid, &claims); err != nil {
		t.Fatal(err)
	}
	edit(claims)
	forged := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	seg, err := forged.SigningString()
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(valid, ".")
	return parts[0] + "." + strings.Split(seg, ".")[1] + "." + parts[2]
}

func TestEntraVerify(t *testing.T) {
	t.Parallel()
	sim := newSim(t, testAuthority)
	v := newVerifier(t, t.Context(), sim, nil)
	now := time.Now()
	valid := mint(t, sim, simulator.TokenClaims{Person: "megan"})

	pub := publicKey(t, v, sim.SigningKeyIDs()[0])
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: mustPKIX(t, pub)})
	attackerKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}

	megan, _ := sim.Person("megan")
	tests := []struct {
		name   string
		token  string
		status int // 0: accepted
		reason Reason
		want   principal.Principal // when accepted
	}{
		{name: "valid v2 token", token: valid,
			want: principal.Principal{Kind: principal.KindUser, TenantID: simulator.DemoTenantID, ObjectID: megan.OID, Name: megan.UPN}},
		{name: "app-only token", token: mint(t, sim, simulator.TokenClaims{AppOnly: true}),
			want: principal.Principal{Kind: principal.KindUser, TenantID: simulator.DemoTenantID, ObjectID: simulator.DemoDaemonObjectID, Name: "app:" + simulator.DemoClientAppID}},
		{name: "role as a delegated scope", token: mint(t, sim, simulator.TokenClaims{Person: "lee", Scopes: []string{"access_as_user", simulator.AppRoleRead}}),
			want: principal.Principal{Kind: principal.KindUser, TenantID: simulator.DemoTenantID, ObjectID: "14be5b72-9673-41ec-924b-98e03081ebc8", Name: "lee.gu@contoso.com"}},
		{name: "expired within the leeway", token: mint(t, sim, simulator.TokenClaims{Person: "megan", IssuedAt: now.Add(-time.Hour), ExpiresAt: now.Add(-30 * time.Second)}),
			want: principal.Principal{Kind: principal.KindUser, TenantID: simulator.DemoTenantID, ObjectID: megan.OID, Name: megan.UPN}},

		{name: "forged: payload changed", token: tamper(t, valid, func(c jwt.MapClaims) { c["oid"] = "f0c6e41f-d5c2-446a-b548-9e7ea4125d73" }),
			status: 401, reason: ReasonSignature},
		{name: "forged: signed with another key under the tenant's kid", token: reSign(t, valid, jwt.SigningMethodRS256, attackerKey),
			status: 401, reason: ReasonSignature},
		{name: "expired", token: mint(t, sim, simulator.TokenClaims{Person: "megan", IssuedAt: now.Add(-2 * time.Hour), ExpiresAt: now.Add(-time.Hour)}),
			status: 401, reason: ReasonExpired},
		{name: "not yet valid", token: mint(t, sim, simulator.TokenClaims{Person: "megan", NotBefore: now.Add(10 * time.Minute), ExpiresAt: now.Add(time.Hour)}),
			status: 401, reason: ReasonNotYetValid},
		{name: "issued in the future", token: mint(t, sim, simulator.TokenClaims{Person: "megan", IssuedAt: now.Add(10 * time.Minute)}),
			status: 401, reason: ReasonNotYetValid},
		{name: "wrong audience", token: mint(t, sim, simulator.TokenClaims{Person: "megan", Audience: "api://another-api"}),
			status: 401, reason: ReasonAudience},
		{name: "wrong issuer", token: mint(t, sim, simulator.TokenClaims{Person: "megan", Issuer: "https://evil.example/" + simulator.DemoTenantID + "/v2.0"}),
			status: 401, reason: ReasonIssuer},
		{name: "v1 issuer while AUTH_ISSUER pins the simulator's", token: mint(t, sim, simulator.TokenClaims{Person: "megan", Version: "1.0"}),
			status: 401, reason: ReasonIssuer},
		{name: "another tenant's token", token: mint(t, sim, simulator.TokenClaims{Person: "megan", TenantID: otherTenant}),
			status: 401, reason: ReasonTenant},
		{name: "another tenant's tid under our issuer", token: mint(t, sim, simulator.TokenClaims{Person: "megan", TenantID: otherTenant, Issuer: sim.Issuer()}),
			status: 401, reason: ReasonTenant},
		{name: "alg none", token: reSign(t, valid, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType),
			status: 401, reason: ReasonAlgorithm},
		{name: "HS256 keyed with the public key (PEM)", token: reSign(t, valid, jwt.SigningMethodHS256, pubPEM),
			status: 401, reason: ReasonAlgorithm},
		{name: "HS256 keyed with the public key (DER)", token: reSign(t, valid, jwt.SigningMethodHS256, mustPKIX(t, pub)),
			status: 401, reason: ReasonAlgorithm},
		{name: "RS512", token: reSign(t, valid, jwt.SigningMethodRS512, attackerKey),
			status: 401, reason: ReasonAlgorithm},
		{name: "unknown kid", token: mint(t, sim, simulator.TokenClaims{Person: "megan", KeyID: "not-a-published-kid"}),
			status: 401, reason: ReasonUnknownKey},
		{name: "missing role", token: mint(t, sim, simulator.TokenClaims{Person: "lee"}),
			status: 403, reason: ReasonRole},
		{name: "no oid", token: mint(t, sim, simulator.TokenClaims{Person: "megan", Extra: map[string]any{"oid": nil}}),
			status: 401, reason: ReasonClaims},
		{name: "no tid", token: mint(t, sim, simulator.TokenClaims{Person: "megan", Extra: map[string]any{"tid": nil}}),
			status: 401, reason: ReasonClaims},
		{name: "no exp", token: mint(t, sim, simulator.TokenClaims{Person: "megan", Extra: map[string]any{"exp": nil}}),
			status: 401, reason: ReasonClaims},
		{name: "neither scp nor roles (not an access token)", token: mint(t, sim, simulator.TokenClaims{Person: "megan", Scopes: []string{}, Roles: []string{}}),
			status: 401, reason: ReasonClaims},
		{name: "not a JWT", token: "not-a-jwt", status: 401, reason: ReasonMalformed},
		{name: "JWT with garbage payload", token: strings.Split(valid, ".")[0] + ".e30x." + strings.Split(valid, ".")[2], status: 401, reason: ReasonMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := v.Verify(t.Context(), tt.token)
			if tt.status == 0 {
				if err != nil {
					t.Fatalf("Verify: %v, want accepted", err)
				}
				if p != tt.want {
					t.Errorf("principal = %+v, want %+v", p, tt.want)
				}
				return
			}
			e := wantRefusal(t, err, tt.status, tt.reason)
			if strings.Contains(e.Message, tt.token) {
				t.Errorf("message repeats the token: %s", e.Message)
			}
		})
	}
}

func publicKey(t *testing.T, v *EntraVerifier, kid string) *rsa.PublicKey {
	t.Helper()
	k, err := v.keys.Storage().KeyRead(t.Context(), kid)
	if err != nil {
		t.Fatal(err)
	}
	pub, ok := k.Key().(*rsa.PublicKey)
	if !ok {
		t.Fatalf("key %s is %T", kid, k.Key())
	}
	return pub
}

func mustPKIX(t *testing.T, pub *rsa.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestEntraMessages checks that refusals say what is wrong in words a caller can act on.
func TestEntraMessages(t *testing.T) {
	t.Parallel()
	sim := newSim(t, testAuthority)
	v := newVerifier(t, t.Context(), sim, nil)
	tests := []struct {
		claims simulator.TokenClaims
		want   []string
	}{
		{simulator.TokenClaims{Person: "megan", Audience: "api://another-api"}, []string{`"api://another-api"`, "api://mdegraph", "AUTH_AUDIENCE"}},
		{simulator.TokenClaims{Person: "megan", ExpiresAt: time.Unix(1_700_000_000, 0), IssuedAt: time.Unix(1_699_990_000, 0)}, []string{"expired at 2023-11-14T22:13:20Z"}},
		{simulator.TokenClaims{Person: "lee"}, []string{"Mdegraph.Read"}},
		{simulator.TokenClaims{Person: "megan", TenantID: otherTenant}, []string{otherTenant, simulator.DemoTenantID}},
	}
	for _, tt := range tests {
		_, err := v.Verify(t.Context(), mint(t, sim, tt.claims))
		if err == nil {
			t.Fatalf("%+v accepted", tt.claims)
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("message %q does not mention %q", err, w)
			}
		}
	}
}

func TestEntraAudiences(t *testing.T) {
	t.Parallel()
	const clientID = "6e2a4c1f-52f8-4b7e-9d0a-3c4b5d6e7f80"
	sim := newSim(t, testAuthority)
	v := newVerifier(t, t.Context(), sim, func(o *EntraOptions) { o.Audiences = []string{clientID, simulator.DefaultAudience} })
	for _, aud := range []string{clientID, simulator.DefaultAudience} {
		if _, err := v.Verify(t.Context(), mint(t, sim, simulator.TokenClaims{Person: "megan", Audience: aud})); err != nil {
			t.Errorf("audience %s: %v", aud, err)
		}
	}
	_, err := v.Verify(t.Context(), mint(t, sim, simulator.TokenClaims{Person: "megan", Audience: "api://mdegraph-staging"}))
	wantRefusal(t, err, 401, ReasonAudience)
}

func TestEntraNoRequiredRole(t *testing.T) {
	t.Parallel()
	sim := newSim(t, testAuthority)
	v := newVerifier(t, t.Context(), sim, func(o *EntraOptions) { o.RequiredRole = "" })
	if _, err := v.Verify(t.Context(), mint(t, sim, simulator.TokenClaims{Person: "lee"})); err != nil {
		t.Errorf("lee without a required role: %v", err)
	}
}

// TestEntraPublicCloud runs the default configuration (AUTH_ISSUER empty) against the
// simulator standing in for login.microsoftonline.com: keys come from the real URLs, and both
// the v1 and the v2 issuer of the tenant are accepted.
func TestEntraPublicCloud(t *testing.T) {
	t.Parallel()
	sim := newSim(t, "https://login.microsoftonline.com")
	var seen []string
	client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		seen = append(seen, r.URL.String())
		return simTransport{sim}.RoundTrip(r)
	})}
	v := newVerifier(t, t.Context(), sim, func(o *EntraOptions) { o.Issuer, o.HTTPClient = "", client })
	wantURLs := []string{
		"https://login.microsoftonline.com/" + simulator.DemoTenantID + "/v2.0/.well-known/openid-configuration",
		"https://login.microsoftonline.com/" + simulator.DemoTenantID + "/discovery/v2.0/keys",
	}
	if strings.Join(seen, " ") != strings.Join(wantURLs, " ") {
		t.Errorf("fetched %v, want %v", seen, wantURLs)
	}
	for _, version := range []string{"2.0", "1.0"} {
		p, err := v.Verify(t.Context(), mint(t, sim, simulator.TokenClaims{Person: "grady", Version: version}))
		if err != nil || p.ObjectID != "25c0d6b9-b0d9-4825-b7a2-58f6c1c082dc" || p.Name != "grady.archie@contoso.com" {
			t.Errorf("v%s token: %+v, %v", version, p, err)
		}
	}
	_, err := v.Verify(t.Context(), mint(t, sim, simulator.TokenClaims{Person: "grady", Issuer: "https://login.microsoftonline.com/" + simulator.DemoTenantID + "/"}))
	wantRefusal(t, err, 401, ReasonIssuer)
}

// TestEntraTenantDomain: AUTH_TENANT_ID may be a domain, as MDE_TENANT_ID may; the tenant id
// comes from the discovery document and is what tid must be.
func TestEntraTenantDomain(t *testing.T) {
	t.Parallel()
	sim := simulator.New(simulator.Options{Devices: 1}) // serves any tenant path, tid DemoTenantID
	sim.SetAuthority("https://login.microsoftonline.com")
	var seen []string
	client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		seen = append(seen, r.URL.Path)
		return simTransport{sim}.RoundTrip(r)
	})}
	v := newVerifier(t, t.Context(), sim, func(o *EntraOptions) { o.TenantID, o.Issuer, o.HTTPClient = "contoso.onmicrosoft.com", "", client })
	if len(seen) == 0 || seen[0] != "/contoso.onmicrosoft.com/v2.0/.well-known/openid-configuration" {
		t.Errorf("fetched %v, want the domain's discovery document first", seen)
	}
	p, err := v.Verify(t.Context(), mint(t, sim, simulator.TokenClaims{Person: "megan"}))
	if err != nil || p.TenantID != simulator.DemoTenantID {
		t.Errorf("Verify = %+v, %v; want megan of tenant %s", p, err, simulator.DemoTenantID)
	}
	_, err = v.Verify(t.Context(), mint(t, sim, simulator.TokenClaims{Person: "megan", TenantID: otherTenant}))
	wantRefusal(t, err, 401, ReasonTenant)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestEntraOverHTTP uses the simulator on a real loopback port, as AUTH_ISSUER=http://127.0.0.1:…
// does in the demo.
func TestEntraOverHTTP(t *testing.T) {
	t.Parallel()
	sim := simulator.New(simulator.Options{Devices: 1})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	sim.SetAuthority(srv.URL)
	opts, err := EntraSettings{TenantID: simulator.DemoTenantID, Issuer: sim.Issuer(), Audience: simulator.DefaultAudience, RequiredRole: simulator.AppRoleRead}.Parse()
	if err != nil {
		t.Fatal(err)
	}
	var logs logtest.Buffer
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	v, err := NewEntraVerifier(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := sim.SignIn("adele")
	if err != nil {
		t.Fatal(err)
	}
	if p, err := v.Verify(t.Context(), tok); err != nil || p.Name != "adele.vance@contoso.com" {
		t.Errorf("Verify = %+v, %v", p, err)
	}
	for _, want := range []string{"caller sign-in", "keys=1", srv.URL + "/" + simulator.DemoTenantID + "/discovery/v2.0/keys"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("start-up log %q lacks %q", logs.String(), want)
		}
	}
}

func TestNewEntraVerifierErrors(t *testing.T) {
	t.Parallel()
	sim := newSim(t, testAuthority)
	tests := []struct {
		name  string
		edit  func(*EntraOptions)
		fault int // injected on the discovery (0: none) ...
		jwks  int // ... and on the key set
		want  []string
	}{
		{name: "wrong issuer path", edit: func(o *EntraOptions) { o.Issuer = testAuthority + "/nowhere/v2.0" },
			want: []string{"AUTH_ISSUER", "/nowhere/v2.0/.well-known/openid-configuration", "HTTP 400", "not found"}},
		{name: "issuer unlike the discovery document's", edit: func(o *EntraOptions) { o.Issuer += "/" },
			want: []string{"AUTH_ISSUER", "names the issuer"}},
		{name: "discovery down", fault: http.StatusServiceUnavailable, want: []string{"AUTH_ISSUER", "HTTP 503"}},
		{name: "key set down", jwks: http.StatusServiceUnavailable, want: []string{"AUTH_ISSUER", "signing keys", "/discovery/v2.0/keys"}},
		{name: "unreachable", edit: func(o *EntraOptions) { o.HTTPClient = http.DefaultClient; o.Issuer = "http://127.0.0.1:1/x/v2.0" },
			want: []string{"AUTH_ISSUER", "127.0.0.1:1"}},
		{name: "no tenant", edit: func(o *EntraOptions) { o.TenantID = "" }, want: []string{"AUTH_TENANT_ID"}},
		{name: "no audience", edit: func(o *EntraOptions) { o.Audiences = nil }, want: []string{"AUTH_AUDIENCE"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// One simulator per case: faults are per simulator.
			sim := sim
			if tt.fault != 0 || tt.jwks != 0 {
				sim = newSim(t, testAuthority)
				if tt.fault != 0 {
					sim.Inject(simulator.EndpointDiscovery, tt.fault, 1)
				}
				if tt.jwks != 0 {
					sim.Inject(simulator.EndpointJWKS, tt.jwks, 1)
				}
			}
			opts := entraOptions(sim)
			if tt.edit != nil {
				tt.edit(&opts)
			}
			_, err := NewEntraVerifier(t.Context(), opts)
			if err == nil {
				t.Fatal("NewEntraVerifier succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestEntraKeyRotation: after the tenant rotates its signing key, a token signed with the new
// key is accepted after one fetch of the key set; a made-up kid within the minute is refused
// without another fetch; a minute later the key set may be fetched again.
func TestEntraKeyRotation(t *testing.T) {
	t.Parallel()
	sim := newSim(t, testAuthority)
	synctest.Test(t, func(t *testing.T) {
		v := newVerifier(t, t.Context(), sim, nil)
		if got := jwksCalls(sim); got != 1 {
			t.Fatalf("key set fetched %d times at start, want 1", got)
		}
		check := func(step string, c simulator.TokenClaims, wantOK bool, wantFetches int) {
			t.Helper()
			_, err := v.Verify(t.Context(), mint(t, sim, c))
			if wantOK && err != nil {
				t.Errorf("%s: refused: %v", step, err)
			}
			if !wantOK {
				if err == nil {
					t.Errorf("%s: accepted", step)
				} else {
					wantRefusal(t, err, 401, ReasonUnknownKey)
				}
			}
			if got := jwksCalls(sim); got != wantFetches {
				t.Errorf("%s: key set fetched %d times in all, want %d", step, got, wantFetches)
			}
		}
		check("current key", simulator.TokenClaims{Person: "megan"}, true, 1)
		newKid := sim.RotateSigningKey()
		check("rotated key", simulator.TokenClaims{Person: "megan"}, true, 2)
		check("rotated key again", simulator.TokenClaims{Person: "megan", KeyID: newKid}, true, 2)
		check("made-up kid within the minute", simulator.TokenClaims{Person: "megan", KeyID: "made-up"}, false, 2)
		secondKid := sim.RotateSigningKey()
		check("second rotation within the minute", simulator.TokenClaims{Person: "megan", KeyID: secondKid}, false, 2)
		time.Sleep(DefaultUnknownKeyRefresh)
		check("second rotation a minute later", simulator.TokenClaims{Person: "megan", KeyID: secondKid}, true, 3)
		time.Sleep(DefaultUnknownKeyRefresh)
		check("made-up kid a minute later: one refresh", simulator.TokenClaims{Person: "megan", KeyID: "made-up-2"}, false, 4)
		check("made-up kid again: no refresh", simulator.TokenClaims{Person: "megan", KeyID: "made-up-2"}, false, 4)
	})
}

// TestEntraKeyRevocation: keys the tenant unpublishes stop verifying at the next background
// refresh, which happens every KeyRefreshInterval.
func TestEntraKeyRevocation(t *testing.T) {
	t.Parallel()
	sim := newSim(t, testAuthority)
	synctest.Test(t, func(t *testing.T) {
		v := newVerifier(t, t.Context(), sim, nil)
		old := sim.SigningKeyIDs()[0]
		sim.RotateSigningKey()
		time.Sleep(DefaultKeyRefreshInterval + time.Second)
		synctest.Wait()
		if got := jwksCalls(sim); got != 2 {
			t.Fatalf("key set fetched %d times after an hour, want 2", got)
		}
		tok := mint(t, sim, simulator.TokenClaims{Person: "megan", KeyID: old})
		if _, err := v.Verify(t.Context(), tok); err != nil {
			t.Fatalf("token of the old key refused while it is published: %v", err)
		}
		sim.RemoveOldSigningKeys()
		time.Sleep(DefaultKeyRefreshInterval)
		synctest.Wait()
		_, err := v.Verify(t.Context(), tok)
		wantRefusal(t, err, 401, ReasonUnknownKey)
	})
}

// TestEntraKeySetDown: while the key set cannot be fetched, a token with an unknown kid costs
// one attempt a minute, not one per request, and the failure is logged once.
func TestEntraKeySetDown(t *testing.T) {
	t.Parallel()
	sim := newSim(t, testAuthority)
	synctest.Test(t, func(t *testing.T) {
		var logs logtest.Buffer
		v := newVerifier(t, t.Context(), sim, func(o *EntraOptions) {
			o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
		})
		newKid := sim.RotateSigningKey()
		sim.Inject(simulator.EndpointJWKS, http.StatusServiceUnavailable, 100)
		tok := mint(t, sim, simulator.TokenClaims{Person: "megan", KeyID: newKid})
		for range 20 {
			_, err := v.Verify(t.Context(), tok)
			wantRefusal(t, err, 401, ReasonUnknownKey)
		}
		if got := jwksCalls(sim); got != 2 {
			t.Errorf("key set fetched %d times for 20 requests, want 2 (start, one refresh)", got)
		}
		if n := strings.Count(logs.String(), "refreshing Entra ID's signing keys failed"); n != 1 {
			t.Errorf("%d log lines about the failed refresh, want 1:\n%s", n, logs.String())
		}
		sim.ClearFaults()
		time.Sleep(DefaultUnknownKeyRefresh)
		if _, err := v.Verify(t.Context(), tok); err != nil {
			t.Errorf("a minute after the key set is back: %v", err)
		}
	})
}

// TestEntraHangs: a discovery document or key set that never answers holds the start, or a
// request, for FetchTimeout.
func TestEntraHangs(t *testing.T) {
	t.Parallel()
	sim := newSim(t, testAuthority)
	synctest.Test(t, func(t *testing.T) {
		sim.InjectFault(simulator.EndpointDiscovery, simulator.Fault{Hang: true}, 1)
		start := time.Now()
		if _, err := NewEntraVerifier(t.Context(), entraOptions(sim)); err == nil || !strings.Contains(err.Error(), "deadline exceeded") {
			t.Errorf("NewEntraVerifier with a hanging discovery: %v, want a deadline error", err)
		}
		if took := time.Since(start); took != DefaultFetchTimeout {
			t.Errorf("a hanging discovery held the start %v, want %v", took, DefaultFetchTimeout)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		v := newVerifier(t, t.Context(), sim, nil)
		newKid := sim.RotateSigningKey()
		sim.InjectFault(simulator.EndpointJWKS, simulator.Fault{Hang: true}, 1)
		start := time.Now()
		_, err := v.Verify(t.Context(), mint(t, sim, simulator.TokenClaims{Person: "megan", KeyID: newKid}))
		wantRefusal(t, err, 401, ReasonUnknownKey)
		if took := time.Since(start); took != DefaultFetchTimeout {
			t.Errorf("a hanging key set held the request %v, want %v", took, DefaultFetchTimeout)
		}
	})
}

// TestEntraClock: exp and nbf are judged by the injected clock, with the leeway.
func TestEntraClock(t *testing.T) {
	t.Parallel()
	sim := newSim(t, testAuthority)
	iat := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	tok := mint(t, sim, simulator.TokenClaims{Person: "megan", IssuedAt: iat, NotBefore: iat, ExpiresAt: iat.Add(time.Hour)})
	tests := []struct {
		at     time.Time
		reason Reason // "" accepted
	}{
		{iat.Add(-DefaultLeeway - time.Second), ReasonNotYetValid},
		{iat.Add(-DefaultLeeway + time.Second), ""},
		{iat.Add(30 * time.Minute), ""},
		{iat.Add(time.Hour + DefaultLeeway - time.Second), ""},
		{iat.Add(time.Hour + DefaultLeeway + time.Second), ReasonExpired},
	}
	for _, tt := range tests {
		v := newVerifier(t, t.Context(), sim, func(o *EntraOptions) { o.Now = func() time.Time { return tt.at } })
		_, err := v.Verify(t.Context(), tok)
		switch {
		case tt.reason == "" && err != nil:
			t.Errorf("at %v: %v, want accepted", tt.at, err)
		case tt.reason != "":
			wantRefusal(t, err, 401, tt.reason)
		}
	}
}

func TestParseEntraSettings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		s    EntraSettings
		want EntraOptions
		errs []string
	}{
		{s: EntraSettings{TenantID: " 72F988BF-86F1-41AF-91AB-2D7CD011DB47 ", Audience: "api://mdegraph, 6e2a4c1f-52f8-4b7e-9d0a-3c4b5d6e7f80,api://mdegraph", RequiredRole: "Mdegraph.Read"},
			want: EntraOptions{TenantID: "72f988bf-86f1-41af-91ab-2d7cd011db47", Audiences: []string{"api://mdegraph", "6e2a4c1f-52f8-4b7e-9d0a-3c4b5d6e7f80"}, RequiredRole: "Mdegraph.Read"}},
		{s: EntraSettings{TenantID: simulator.DemoTenantID, Issuer: "http://127.0.0.1:8081/" + simulator.DemoTenantID + "/v2.0", Audience: "api://mdegraph"},
			want: EntraOptions{TenantID: simulator.DemoTenantID, Issuer: "http://127.0.0.1:8081/" + simulator.DemoTenantID + "/v2.0", Audiences: []string{"api://mdegraph"}}},
		{s: EntraSettings{TenantID: simulator.DemoTenantID, Issuer: "http://localhost:8081/t/v2.0", Audience: "api://mdegraph"},
			want: EntraOptions{TenantID: simulator.DemoTenantID, Issuer: "http://localhost:8081/t/v2.0", Audiences: []string{"api://mdegraph"}}},
		{s: EntraSettings{TenantID: simulator.DemoTenantID, Issuer: "https://login.microsoftonline.us/" + simulator.DemoTenantID + "/v2.0", Audience: "api://mdegraph"},
			want: EntraOptions{TenantID: simulator.DemoTenantID, Issuer: "https://login.microsoftonline.us/" + simulator.DemoTenantID + "/v2.0", Audiences: []string{"api://mdegraph"}}},
		{s: EntraSettings{}, errs: []string{"AUTH_TENANT_ID: required", "AUTH_AUDIENCE: required"}},
		{s: EntraSettings{TenantID: "common", Audience: "api://x"}, errs: []string{"AUTH_TENANT_ID", "multi-tenant"}},
		{s: EntraSettings{TenantID: "Contoso.onmicrosoft.com", Audience: "api://x"},
			want: EntraOptions{TenantID: "contoso.onmicrosoft.com", Audiences: []string{"api://x"}}},
		{s: EntraSettings{TenantID: "contoso.onmicrosoft.com", Audience: "api://x", Issuer: "https://login.microsoftonline.us/contoso.onmicrosoft.com/v2.0"},
			errs: []string{"AUTH_TENANT_ID", "with AUTH_ISSUER set"}},
		{s: EntraSettings{TenantID: "contoso", Audience: "api://x"}, errs: []string{"AUTH_TENANT_ID", "neither a tenant id GUID"}},
		{s: EntraSettings{TenantID: "-a.b", Audience: "api://x"}, errs: []string{"AUTH_TENANT_ID"}},
		{s: EntraSettings{TenantID: "11111111-2222-4333-8444-55555555555", Audience: "api://x"}, errs: []string{"AUTH_TENANT_ID"}},
		{s: EntraSettings{TenantID: simulator.DemoTenantID, Audience: "mdegraph"}, errs: []string{"AUTH_AUDIENCE", `"mdegraph"`}},
		{s: EntraSettings{TenantID: simulator.DemoTenantID, Audience: "api://x", RequiredRole: "a b"}, errs: []string{"AUTH_REQUIRED_ROLE"}},
		{s: EntraSettings{TenantID: simulator.DemoTenantID, Audience: "api://x", Issuer: "http://login.example.com/t/v2.0"}, errs: []string{"AUTH_ISSUER", "loopback"}},
		{s: EntraSettings{TenantID: simulator.DemoTenantID, Audience: "api://x", Issuer: "http://0.0.0.0:8081/t/v2.0"}, errs: []string{"AUTH_ISSUER", "loopback"}},
		{s: EntraSettings{TenantID: simulator.DemoTenantID, Audience: "api://x", Issuer: "https://login.microsoftonline.com/common/v2.0"}, errs: []string{"AUTH_ISSUER", "multi-tenant"}},
		{s: EntraSettings{TenantID: simulator.DemoTenantID, Audience: "api://x", Issuer: "https://login.microsoftonline.com/{tenantid}/v2.0"}, errs: []string{"AUTH_ISSUER", "multi-tenant"}},
		{s: EntraSettings{TenantID: simulator.DemoTenantID, Audience: "api://x", Issuer: "login.microsoftonline.com/t/v2.0"}, errs: []string{"AUTH_ISSUER", "not an issuer URL"}},
		{s: EntraSettings{TenantID: simulator.DemoTenantID, Audience: "api://x", Issuer: "https://login.example.com/t/v2.0?x=1"}, errs: []string{"AUTH_ISSUER"}},
		{s: EntraSettings{TenantID: simulator.DemoTenantID, Audience: "api://x", Issuer: "ftp://login.example.com/t"}, errs: []string{"AUTH_ISSUER", "scheme"}},
	}
	for _, tt := range tests {
		got, err := tt.s.Parse()
		if len(tt.errs) == 0 {
			if err != nil || !equalOptions(got, tt.want) {
				t.Errorf("%+v.Parse() = %+v, %v; want %+v", tt.s, got, err, tt.want)
			}
			continue
		}
		if err == nil {
			t.Errorf("%+v.Parse() succeeded, want an error mentioning %q", tt.s, tt.errs)
			continue
		}
		for _, w := range tt.errs {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%+v.Parse() error %q lacks %q", tt.s, err, w)
			}
		}
	}
}

func equalOptions(a, b EntraOptions) bool {
	return a.TenantID == b.TenantID && a.Issuer == b.Issuer && a.RequiredRole == b.RequiredRole &&
		strings.Join(a.Audiences, ",") == strings.Join(b.Audiences, ",")
}

// BenchmarkEntraVerify measures what validating a token costs each request: parsing, one RS256
// verification with a cached key, the claim checks.
func BenchmarkEntraVerify(b *testing.B) {
	sim := simulator.New(simulator.Options{Devices: 1, TenantID: simulator.DemoTenantID})
	sim.SetAuthority(testAuthority)
	opts := entraOptions(sim)
	v, err := NewEntraVerifier(b.Context(), opts)
	if err != nil {
		b.Fatal(err)
	}
	tok, err := sim.SignIn("megan")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := v.Verify(b.Context(), tok); err != nil {
			b.Fatal(err)
		}
	}
}
