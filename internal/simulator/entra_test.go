package simulator

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestDiscovery(t *testing.T) {
	t.Parallel()
	s, _ := newTestSim(t, Options{TenantID: DemoTenantID}) // no Authority: derived from the request
	base := "http://example.com/" + DemoTenantID
	tests := []struct {
		name, path                     string
		issuer, jwksURI, tokenEndpoint string
	}{
		{"v2", "/" + DemoTenantID + "/v2.0/.well-known/openid-configuration", base + "/v2.0", base + "/discovery/v2.0/keys", base + "/oauth2/v2.0/token"},
		{"v2 path case", "/" + strings.ToUpper(DemoTenantID) + "/V2.0/.Well-Known/OpenID-Configuration", base + "/v2.0", base + "/discovery/v2.0/keys", base + "/oauth2/v2.0/token"},
		{"v1", "/" + DemoTenantID + "/.well-known/openid-configuration", "https://sts.windows.net/" + DemoTenantID + "/", base + "/discovery/keys", base + "/oauth2/token"},
		{"common", "/common/v2.0/.well-known/openid-configuration", "http://example.com/{tenantid}/v2.0",
			"http://example.com/common/discovery/v2.0/keys", "http://example.com/common/oauth2/v2.0/token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := get(t, s, tt.path, "")
			wantStatus(t, rec, http.StatusOK)
			doc := decode[discoveryDocument](t, rec)
			if doc.Issuer != tt.issuer || doc.JWKSURI != tt.jwksURI || doc.TokenEndpoint != tt.tokenEndpoint {
				t.Errorf("issuer, jwks_uri, token_endpoint:\ngot  %s %s %s\nwant %s %s %s",
					doc.Issuer, doc.JWKSURI, doc.TokenEndpoint, tt.issuer, tt.jwksURI, tt.tokenEndpoint)
			}
			if !slices.Equal(doc.IDTokenSigningAlgValuesSupported, []string{"RS256"}) || doc.AuthorizationEndpoint == "" {
				t.Errorf("algorithms %v, authorization_endpoint %q", doc.IDTokenSigningAlgValuesSupported, doc.AuthorizationEndpoint)
			}
			if got := rec.Header().Get("Access-Control-Allow-Origin"); got != "*" {
				t.Errorf("Access-Control-Allow-Origin: got %q, want *", got)
			}
		})
	}
	errs := []struct {
		name, method, path string
		status             int
		oauth              string
	}{
		{"other tenant", http.MethodGet, "/another-tenant/v2.0/.well-known/openid-configuration", 400, "invalid_tenant"},
		{"other tenant keys", http.MethodGet, "/another-tenant/discovery/v2.0/keys", 400, "invalid_tenant"},
		{"POST", http.MethodPost, "/" + DemoTenantID + "/v2.0/.well-known/openid-configuration", 405, "invalid_request"},
	}
	for _, tt := range errs {
		rec := call(t, s, tt.method, tt.path, "")
		wantStatus(t, rec, tt.status)
		if e := decode[oauthErrorBody](t, rec); e.Error != tt.oauth {
			t.Errorf("%s: error %q, want %q", tt.name, e.Error, tt.oauth)
		}
	}
	if got := s.Stats()[EndpointDiscovery].Calls; got != len(tests)+2 {
		t.Errorf("discovery calls: got %d, want %d", got, len(tests)+2)
	}
}

// TestTokenVerifiesAgainstServedJWKS follows the path a resource server takes over real HTTP:
// discovery from the issuer, the JWKS from jwks_uri, then golang-jwt validation of a token.
func TestTokenVerifiesAgainstServedJWKS(t *testing.T) {
	t.Parallel()
	s, clk := newTestSim(t, Options{})
	srv := httptest.NewServer(s)
	defer srv.Close()
	s.SetAuthority(srv.URL)
	issuer := s.Issuer()
	if want := srv.URL + "/" + DemoTenantID + "/v2.0"; issuer != want {
		t.Fatalf("Issuer: got %q, want %q", issuer, want)
	}
	var doc discoveryDocument
	getJSON(t, srv, issuer+"/.well-known/openid-configuration", &doc)
	if doc.Issuer != issuer || !strings.HasPrefix(doc.JWKSURI, srv.URL+"/") {
		t.Fatalf("discovery: issuer %q jwks_uri %q", doc.Issuer, doc.JWKSURI)
	}
	keys := fetchJWKS(t, s, strings.TrimPrefix(doc.JWKSURI, srv.URL))

	tok, err := s.SignIn("megan.bowen@contoso.com")
	if err != nil {
		t.Fatal(err)
	}
	claims, err := verify(tok, keys, jwt.WithTimeFunc(clk.Now), jwt.WithIssuer(doc.Issuer), jwt.WithAudience(DefaultAudience))
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	megan, _ := s.Person("megan")
	for name, want := range map[string]any{
		"tid": DemoTenantID, "oid": megan.OID, "name": "Megan Bowen", "preferred_username": "megan.bowen@contoso.com",
		"scp": ScopeAccessAsUser, "ver": "2.0", "azp": DemoClientAppID, "aud": DefaultAudience,
	} {
		if claims[name] != want {
			t.Errorf("claim %s: got %v, want %v", name, claims[name], want)
		}
	}
	if roles, _ := claims["roles"].([]any); len(roles) != 1 || roles[0] != AppRoleRead {
		t.Errorf("roles: got %v, want [%s]", claims["roles"], AppRoleRead)
	}
	if sub, _ := claims["sub"].(string); sub == "" || sub == megan.OID {
		t.Errorf("sub %q: want a pairwise subject, not the oid", sub)
	}
	iat, _ := claims.GetIssuedAt()
	exp, _ := claims.GetExpirationTime()
	if exp.Sub(iat.Time) != DefaultTokenTTL.Truncate(time.Second) {
		t.Errorf("lifetime: got %v, want %v", exp.Sub(iat.Time), DefaultTokenTTL)
	}
}

func getJSON(t *testing.T, srv *httptest.Server, u string, v any) {
	t.Helper()
	resp, err := srv.Client().Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d", u, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}

func TestRotateSigningKey(t *testing.T) {
	t.Parallel()
	s, clk := newIdentitySim(t, Options{})
	at := jwt.WithTimeFunc(clk.Now)
	const jwksPath = "/" + DemoTenantID + "/discovery/v2.0/keys"
	before := mint(t, s, TokenClaims{Person: "adele"})
	first := s.SigningKeyIDs()
	if len(first) != 1 {
		t.Fatalf("keys before rotation: %v, want one", first)
	}
	cached := fetchJWKS(t, s, jwksPath) // what a validator caches

	kid := s.RotateSigningKey()
	if got := s.SigningKeyIDs(); !slices.Equal(got, []string{first[0], kid}) {
		t.Fatalf("keys after rotation: got %v, want [%s %s]", got, first[0], kid)
	}
	after := mint(t, s, TokenClaims{Person: "adele"})
	if h := header(t, after); h["kid"] != kid {
		t.Errorf("new token's kid: got %v, want the new key %s", h["kid"], kid)
	}
	// The cached set verifies the old token but not the new one: a validator must refresh on
	// the unknown kid, and the refreshed set verifies both.
	if _, err := verify(before, cached, at); err != nil {
		t.Errorf("old token against the cached set: %v", err)
	}
	if _, err := verify(after, cached, at); err == nil || !strings.Contains(err.Error(), "unknown kid") {
		t.Errorf("new token against the cached set: got %v, want unknown kid", err)
	}
	refreshed := fetchJWKS(t, s, jwksPath)
	for name, tok := range map[string]string{"old": before, "new": after} {
		if _, err := verify(tok, refreshed, at); err != nil {
			t.Errorf("%s token against the refreshed set: %v", name, err)
		}
	}
	// Minting with the old kid still works while it is published.
	if h := header(t, mint(t, s, TokenClaims{Person: "adele", KeyID: first[0]})); h["kid"] != first[0] {
		t.Errorf("KeyID %s: header kid %v", first[0], h["kid"])
	}

	s.RemoveOldSigningKeys()
	pruned := fetchJWKS(t, s, jwksPath)
	if len(pruned) != 1 || pruned[kid] == nil {
		t.Fatalf("after RemoveOldSigningKeys: %d keys, want only %s", len(pruned), kid)
	}
	if _, err := verify(before, pruned, at); err == nil {
		t.Error("a token of a removed key still verifies")
	}
	if got := s.Stats()[EndpointJWKS].Calls; got != 3 {
		t.Errorf("JWKS calls: got %d, want 3", got)
	}
}

func header(t *testing.T, tok string) map[string]any {
	t.Helper()
	p, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	return p.Header
}

// TestMintAccessTokenVariants mints each kind of token a validator must refuse (and the valid
// ones it must accept) and checks golang-jwt's verdict against the served key set.
func TestMintAccessTokenVariants(t *testing.T) {
	t.Parallel()
	s, clk := newIdentitySim(t, Options{})
	keys := fetchJWKS(t, s, "/"+DemoTenantID+"/discovery/v2.0/keys")
	now := clk.Now()
	v2 := s.Issuer()
	v1 := "https://sts.windows.net/" + DemoTenantID + "/"
	tests := []struct {
		name    string
		c       TokenClaims
		opts    []jwt.ParserOption
		wantErr error // nil: valid
		check   func(jwt.MapClaims) string
	}{
		{name: "valid v2", c: TokenClaims{Person: "grady"}, opts: []jwt.ParserOption{jwt.WithIssuer(v2), jwt.WithAudience(DefaultAudience)}},
		{name: "expired", c: TokenClaims{Person: "grady", IssuedAt: now.Add(-2 * time.Hour)}, wantErr: jwt.ErrTokenExpired},
		{name: "not yet valid", c: TokenClaims{Person: "grady", NotBefore: now.Add(time.Hour)}, wantErr: jwt.ErrTokenNotValidYet},
		{name: "wrong audience", c: TokenClaims{Person: "grady", Audience: "api://someone-else"},
			opts: []jwt.ParserOption{jwt.WithAudience(DefaultAudience)}, wantErr: jwt.ErrTokenInvalidAudience},
		{name: "other tenant", c: TokenClaims{Person: "grady", TenantID: "99999999-0000-4000-8000-000000000000"},
			opts: []jwt.ParserOption{jwt.WithIssuer(v2)}, wantErr: jwt.ErrTokenInvalidIssuer},
		{name: "unknown kid", c: TokenClaims{Person: "grady", KeyID: "never-published"}, wantErr: jwt.ErrTokenUnverifiable},
		{name: "no role", c: TokenClaims{Person: "lee"}, check: func(c jwt.MapClaims) string {
			if _, ok := c["roles"]; ok {
				return "Lee Gu's token carries roles"
			}
			return ""
		}},
		{name: "roles removed", c: TokenClaims{Person: "grady", Roles: []string{}}, check: func(c jwt.MapClaims) string {
			if _, ok := c["roles"]; ok {
				return "an empty Roles still wrote the claim"
			}
			return ""
		}},
		{name: "v1", c: TokenClaims{Person: "megan", Version: "1.0"}, opts: []jwt.ParserOption{jwt.WithIssuer(v1)}, check: func(c jwt.MapClaims) string {
			if c["ver"] != "1.0" || c["upn"] != "megan.bowen@contoso.com" || c["appid"] != DemoClientAppID || c["azp"] != nil {
				return "v1 claims: want ver 1.0, upn, appid and no azp"
			}
			return ""
		}},
		{name: "production issuer", c: TokenClaims{Person: "megan", Issuer: "https://login.microsoftonline.com/" + DemoTenantID + "/v2.0"},
			opts: []jwt.ParserOption{jwt.WithIssuer("https://login.microsoftonline.com/" + DemoTenantID + "/v2.0")}},
		{name: "app only", c: TokenClaims{AppOnly: true}, check: func(c jwt.MapClaims) string {
			if c["idtyp"] != "app" || c["scp"] != nil || c["oid"] != DemoDaemonObjectID || c["sub"] != DemoDaemonObjectID || c["name"] != nil {
				return "app-only claims: want idtyp app, no scp, oid = sub, no name"
			}
			return ""
		}},
		{name: "extra and removed claims", c: TokenClaims{Person: "adele", Extra: map[string]any{"scp": nil, "wids": []string{"x"}}},
			check: func(c jwt.MapClaims) string {
				if c["scp"] != nil || c["wids"] == nil {
					return "Extra did not remove scp or add wids"
				}
				return ""
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			claims, err := verify(mint(t, s, tt.c), keys, append([]jwt.ParserOption{jwt.WithTimeFunc(clk.Now)}, tt.opts...)...)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("verify: got %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			if tt.check != nil {
				if msg := tt.check(claims); msg != "" {
					t.Errorf("%s: %v", msg, claims)
				}
			}
		})
	}
}

func TestMintAccessTokenErrors(t *testing.T) {
	t.Parallel()
	s, _ := newIdentitySim(t, Options{})
	noAuthority, _ := newTestSim(t, Options{})
	tests := []struct {
		name string
		s    *Simulator
		c    TokenClaims
		want string
	}{
		{"unknown person", s, TokenClaims{Person: "mallory"}, "no demo person"},
		{"nobody", s, TokenClaims{}, "needs a Person"},
		{"bad version", s, TokenClaims{Person: "adele", Version: "3.0"}, "neither 2.0 nor 1.0"},
		{"no authority", noAuthority, TokenClaims{Person: "adele"}, ErrNoAuthority.Error()},
	}
	for _, tt := range tests {
		if _, err := tt.s.MintAccessToken(tt.c); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want %q", tt.name, err, tt.want)
		}
	}
	if _, err := noAuthority.MintAccessToken(TokenClaims{Person: "adele", Version: "1.0"}); err != nil {
		t.Errorf("a v1 token needs no authority: %v", err)
	}
}
