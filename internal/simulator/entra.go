package simulator

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
)

// The simulated Entra ID: OpenID Connect discovery, the JSON Web Key Set, and signing keys that
// rotate on demand. The simulator's issuer is {authority}/{tenant}/v2.0, where the authority is
// Options.Authority, SetAuthority's value or, when neither is set, the scheme and host of the
// request (so a discovery document is always consistent with the server that answered it).

// Issuers Entra ID writes into tokens of the two versions, for the tenant id in %s. The
// simulator's own v2 issuer replaces the first with its authority; v1 tokens keep the real
// sts.windows.net issuer, as the simulator cannot stand in for that host.
const (
	entraAuthority = "https://login.microsoftonline.com"
	issuerV1Format = "https://sts.windows.net/%s/"
)

// signingKey is one RSA key of the key set, with its self-signed certificate's thumbprint as
// kid, as Entra ID does (kid equals x5t there).
type signingKey struct {
	kid  string
	priv *rsa.PrivateKey
	jwk  jwkset.JWKMarshal
}

// keyRing is the simulator's signing keys. Keys are generated when first needed, not in New:
// a 2048-bit key costs tens of milliseconds and most simulators never sign anything.
type keyRing struct {
	mu   sync.Mutex
	keys []*signingKey // published, oldest first; the last one signs
}

// newSigningKey generates a key and its certificate. It panics if the platform cannot: crypto/rand
// does not fail on supported platforms, and the template is fixed.
func newSigningKey(now time.Time) *signingKey {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(fmt.Sprintf("simulator: generate a signing key: %v", err))
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "accounts.accesscontrol.windows.net (Defender simulator)"},
		NotBefore:    now.Add(-24 * time.Hour),
		NotAfter:     now.Add(5 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		panic(fmt.Sprintf("simulator: certify a signing key: %v", err))
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		panic(fmt.Sprintf("simulator: parse a signing certificate: %v", err))
	}
	sum := sha1.Sum(der) // x5t is the SHA-1 thumbprint (RFC 7517 4.8)
	kid := base64.RawURLEncoding.EncodeToString(sum[:])
	jwk, err := jwkset.NewJWKFromKey(&priv.PublicKey, jwkset.JWKOptions{
		Metadata: jwkset.JWKMetadataOptions{KID: kid, USE: jwkset.UseSig},
		X509:     jwkset.JWKX509Options{X5C: []*x509.Certificate{cert}},
	})
	if err != nil {
		panic(fmt.Sprintf("simulator: build a JWK: %v", err))
	}
	return &signingKey{kid: kid, priv: priv, jwk: jwk.Marshal()}
}

// current returns the signing key, generating the first one if needed.
func (kr *keyRing) current(now time.Time) *signingKey {
	kr.mu.Lock()
	defer kr.mu.Unlock()
	if len(kr.keys) == 0 {
		kr.keys = append(kr.keys, newSigningKey(now))
	}
	return kr.keys[len(kr.keys)-1]
}

// published returns the published keys, oldest first, generating the first one if needed.
func (kr *keyRing) published(now time.Time) []*signingKey {
	kr.current(now)
	kr.mu.Lock()
	defer kr.mu.Unlock()
	return append([]*signingKey(nil), kr.keys...)
}

// byID returns the published key with this kid.
func (kr *keyRing) byID(kid string) (*signingKey, bool) {
	kr.mu.Lock()
	defer kr.mu.Unlock()
	for _, k := range kr.keys {
		if k.kid == kid {
			return k, true
		}
	}
	return nil, false
}

// RotateSigningKey generates a new signing key, publishes it in the JWKS and signs every token
// minted from now on with it. The previous keys stay published, so tokens they signed still
// verify, until RemoveOldSigningKeys. It returns the new key's kid.
//
// A validator that cached the key set meets the new kid in the next token and must refresh.
func (s *Simulator) RotateSigningKey() string {
	s.keys.current(s.now()) // the first key exists before it is rotated out
	k := newSigningKey(s.now())
	s.keys.mu.Lock()
	defer s.keys.mu.Unlock()
	s.keys.keys = append(s.keys.keys, k)
	return k.kid
}

// RemoveOldSigningKeys unpublishes every key but the current signing key: tokens the old keys
// signed no longer verify against the served JWKS.
func (s *Simulator) RemoveOldSigningKeys() {
	s.keys.current(s.now())
	s.keys.mu.Lock()
	defer s.keys.mu.Unlock()
	s.keys.keys = s.keys.keys[len(s.keys.keys)-1:]
}

// SigningKeyIDs returns the kids of the published keys, oldest first: the last one signs.
func (s *Simulator) SigningKeyIDs() []string {
	keys := s.keys.published(s.now())
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.kid
	}
	return out
}

// SetAuthority sets the base URL the simulator's Entra ID endpoints are reached at (scheme and
// host, e.g. "http://127.0.0.1:9090"), for when it is known only after New, as with
// httptest.NewServer. It decides the issuer of minted tokens and of the discovery documents.
// It is safe to call concurrently with requests.
func (s *Simulator) SetAuthority(baseURL string) {
	s.authorityMu.Lock()
	defer s.authorityMu.Unlock()
	s.authority = strings.TrimSuffix(baseURL, "/")
}

func (s *Simulator) configuredAuthority() string {
	s.authorityMu.Lock()
	defer s.authorityMu.Unlock()
	return s.authority
}

// authorityFor is the authority a request sees: the configured one, else the request's own
// scheme and host.
func (s *Simulator) authorityFor(r *http.Request) string {
	if a := s.configuredAuthority(); a != "" {
		return a
	}
	return requestOrigin(r)
}

// requestOrigin is the scheme and host the request reached this server at, as
// "http://127.0.0.1:9090".
func requestOrigin(r *http.Request) string {
	if r.TLS != nil {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}

// TenantID is the tenant id the simulated Entra ID writes into tokens (the tid claim):
// Options.TenantID, or DemoTenantID when that is empty.
func (s *Simulator) TenantID() string {
	if s.opts.TenantID != "" {
		return s.opts.TenantID
	}
	return DemoTenantID
}

// Issuer is the iss claim of the v2 tokens the simulator mints: {authority}/{tenant}/v2.0, or ""
// while no authority is configured (Options.Authority or SetAuthority).
func (s *Simulator) Issuer() string {
	a := s.configuredAuthority()
	if a == "" {
		return ""
	}
	return issuerV2(a, s.TenantID())
}

// Audience is the audience of the tokens minted for the service's API (Options.Audience).
func (s *Simulator) Audience() string { return s.opts.Audience }

func issuerV2(authority, tenant string) string { return authority + "/" + tenant + "/v2.0" }

// acceptedIssuers are the issuers the simulator's Entra ID recognises as its own for the request:
// its v2 issuer, and the real Entra ID v2 and v1 issuers of its tenant (tokens minted with an
// Issuer override to look like production ones).
func (s *Simulator) acceptedIssuers(r *http.Request) []string {
	t := s.TenantID()
	return []string{issuerV2(s.authorityFor(r), t), issuerV2(entraAuthority, t), fmt.Sprintf(issuerV1Format, t)}
}

// isMultiTenant reports whether a path tenant is one of Entra ID's multi-tenant aliases.
func isMultiTenant(tenant string) bool {
	switch strings.ToLower(tenant) {
	case "common", "organizations", "consumers":
		return true
	}
	return false
}

// checkTenant answers Entra ID's 400 for a path tenant the simulator does not serve: error
// invalid_request from the token endpoint, invalid_tenant from the metadata endpoints.
func (s *Simulator) checkTenant(tenant, oauthCode string) (response, bool) {
	if s.opts.TenantID == "" || strings.EqualFold(tenant, s.opts.TenantID) || (isMultiTenant(tenant) && oauthCode == "invalid_tenant") {
		return response{}, true
	}
	return s.oauthError(http.StatusBadRequest, oauthCode, 90002, fmt.Sprintf(
		"Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.",
		clip(tenant))), false
}

// discoveryDocument is the OpenID Provider Metadata (OpenID Connect Discovery 1.0, section 3) as
// Entra ID writes it, with the fields a validator reads.
type discoveryDocument struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	JWKSURI                           string   `json:"jwks_uri"`
	ResponseModesSupported            []string `json:"response_modes_supported"`
	SubjectTypesSupported             []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported  []string `json:"id_token_signing_alg_values_supported"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	ScopesSupported                   []string `json:"scopes_supported"`
	ClaimsSupported                   []string `json:"claims_supported"`
	RequestURIParameterSupported      bool     `json:"request_uri_parameter_supported"`
	TenantRegionScope                 *string  `json:"tenant_region_scope"`
	CloudInstanceName                 string   `json:"cloud_instance_name"`
}

// serveDiscovery answers GET /{tenant}/v2.0/.well-known/openid-configuration and the v1 form
// /{tenant}/.well-known/openid-configuration. For the multi-tenant aliases (common,
// organizations) the issuer holds the literal placeholder {tenantid}, as Entra ID's does.
func (s *Simulator) serveDiscovery(r *http.Request, rt routed) response {
	if resp, ok := s.entraPreamble(r, rt); !ok {
		return resp
	}
	tenant := s.TenantID()
	issuerTenant := tenant
	if isMultiTenant(rt.id) {
		tenant, issuerTenant = strings.ToLower(rt.id), "{tenantid}"
	}
	base := s.authorityFor(r) + "/" + tenant
	doc := discoveryDocument{
		Issuer:                            issuerV2(s.authorityFor(r), issuerTenant),
		AuthorizationEndpoint:             base + "/oauth2/v2.0/authorize", // not served: the simulator signs in with /demo/signin
		TokenEndpoint:                     base + "/oauth2/v2.0/token",
		TokenEndpointAuthMethodsSupported: []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		JWKSURI:                           base + "/discovery/v2.0/keys",
		ResponseModesSupported:            []string{"query", "fragment", "form_post"},
		SubjectTypesSupported:             []string{"pairwise"},
		IDTokenSigningAlgValuesSupported:  []string{"RS256"},
		ResponseTypesSupported:            []string{"code", "id_token", "code id_token", "id_token token"},
		ScopesSupported:                   []string{"openid", "profile", "email", "offline_access"},
		ClaimsSupported: []string{"sub", "iss", "cloud_instance_name", "aud", "exp", "iat", "auth_time", "acr", "nonce",
			"preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"},
		CloudInstanceName: "microsoftonline.com",
	}
	if rt.variant == "v1" {
		doc.Issuer = fmt.Sprintf(issuerV1Format, issuerTenant)
		doc.AuthorizationEndpoint = base + "/oauth2/authorize"
		doc.TokenEndpoint = base + "/oauth2/token" // not served: the simulator has only the v2 token endpoint
		doc.JWKSURI = base + "/discovery/keys"
	}
	return entraJSON(doc)
}

// publishedKey is one key of the served JWKS: RFC 7517 members plus Entra ID's issuer.
type publishedKey struct {
	jwkset.JWKMarshal
	Issuer string `json:"issuer,omitempty"`
}

type keySet struct {
	Keys []publishedKey `json:"keys"`
}

// serveJWKS answers GET /{tenant}/discovery/v2.0/keys (and the v1 /{tenant}/discovery/keys): the
// published signing keys as a JSON Web Key Set (RFC 7517 section 5): kty RSA, use sig, kid, x5t,
// n, e, x5c, and Entra ID's issuer member.
func (s *Simulator) serveJWKS(r *http.Request, rt routed) response {
	if resp, ok := s.entraPreamble(r, rt); !ok {
		return resp
	}
	issuerTenant := s.TenantID()
	if isMultiTenant(rt.id) {
		issuerTenant = "{tenantid}"
	}
	var set keySet
	for _, k := range s.keys.published(s.now()) {
		set.Keys = append(set.Keys, publishedKey{JWKMarshal: k.jwk, Issuer: issuerV2(s.authorityFor(r), issuerTenant)})
	}
	return entraJSON(set).with("Cache-Control", "max-age=86400, private")
}

// entraPreamble checks what discovery and JWKS requests share: method, injected faults, tenant.
func (s *Simulator) entraPreamble(r *http.Request, rt routed) (response, bool) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return s.oauthError(http.StatusMethodNotAllowed, "invalid_request", 900561,
			fmt.Sprintf("The endpoint only accepts GET requests. Received a %s request.", clip(r.Method))).
			with("Allow", http.MethodGet), false
	}
	if f, ok := s.state(rt.endpoint).takeFault(); ok {
		return s.injectedEntraError(f), false
	}
	return s.checkTenant(rt.id, "invalid_tenant")
}

// entraJSON is a successful Entra ID answer; browsers may read it from any origin, as from
// login.microsoftonline.com.
func entraJSON(v any) response {
	resp := okJSON(v)
	resp.contentType = contentTypeOAuth
	resp.header.Del("OData-Version")
	return resp.with("Access-Control-Allow-Origin", "*")
}
