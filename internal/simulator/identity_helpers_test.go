package simulator

import (
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// testAuthority is the authority of in-process requests (httptest.NewRequest's host).
const testAuthority = "http://example.com"

// newIdentitySim is newTestSim with the authority in-process requests see, so tokens minted in
// Go and the issuer the HTTP endpoints derive agree.
func newIdentitySim(t *testing.T, opts Options) (*Simulator, *clock) {
	t.Helper()
	if opts.Authority == "" {
		opts.Authority = testAuthority
	}
	return newTestSim(t, opts)
}

// jwk is one key of a served JWKS, decoded independently of the library that wrote it.
type jwk struct {
	Kty, Use, Kid, X5t, N, E, Issuer string
	X5c                              []string
}

// fetchJWKS reads the served key set and returns its public keys by kid, checking each key's
// members against RFC 7517 and its certificate.
func fetchJWKS(t *testing.T, s *Simulator, path string) map[string]*rsa.PublicKey {
	t.Helper()
	rec := get(t, s, path, "")
	wantStatus(t, rec, http.StatusOK)
	var set struct{ Keys []jwk }
	if err := json.Unmarshal(rec.Body.Bytes(), &set); err != nil {
		t.Fatalf("decode JWKS: %v", err)
	}
	keys := map[string]*rsa.PublicKey{}
	for _, k := range set.Keys {
		if k.Kty != "RSA" || k.Use != "sig" || k.Kid == "" || k.Kid != k.X5t || len(k.X5c) != 1 {
			t.Errorf("JWK %+v: want kty RSA, use sig, kid = x5t, one certificate", k)
		}
		n, errN := base64.RawURLEncoding.DecodeString(k.N)
		e, errE := base64.RawURLEncoding.DecodeString(k.E)
		if errN != nil || errE != nil {
			t.Fatalf("JWK %s: n or e is not base64url without padding", k.Kid)
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if pub.N.BitLen() != 2048 || pub.E != 65537 {
			t.Errorf("JWK %s: %d-bit modulus, exponent %d; want 2048 and 65537", k.Kid, pub.N.BitLen(), pub.E)
		}
		der, err := base64.StdEncoding.DecodeString(k.X5c[0])
		if err != nil {
			t.Fatal(err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha1.Sum(der); base64.RawURLEncoding.EncodeToString(sum[:]) != k.X5t {
			t.Errorf("JWK %s: x5t is not the certificate's SHA-1 thumbprint", k.Kid)
		}
		if !pub.Equal(cert.PublicKey) {
			t.Errorf("JWK %s: n and e differ from the certificate's key", k.Kid)
		}
		keys[k.Kid] = pub
	}
	return keys
}

// verify validates an access token against keys the way a resource server does, and returns
// its claims.
func verify(token string, keys map[string]*rsa.PublicKey, opts ...jwt.ParserOption) (jwt.MapClaims, error) {
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if k, ok := keys[kid]; ok {
			return k, nil
		}
		return nil, fmt.Errorf("unknown kid %q", kid)
	}, append([]jwt.ParserOption{jwt.WithValidMethods([]string{"RS256"}), jwt.WithExpirationRequired()}, opts...)...)
	return claims, err
}

func oboForm(assertion string) url.Values {
	return url.Values{
		"grant_type":          {GrantOnBehalfOf},
		"client_id":           {DefaultClientID},
		"client_secret":       {DefaultClientSecret},
		"assertion":           {assertion},
		"scope":               {testScope},
		"requested_token_use": {"on_behalf_of"},
	}
}

// mint mints a token or fails the test.
func mint(t *testing.T, s *Simulator, c TokenClaims) string {
	t.Helper()
	tok, err := s.MintAccessToken(c)
	if err != nil {
		t.Fatalf("MintAccessToken(%+v): %v", c, err)
	}
	return tok
}

// personToken signs a demo person in and trades the token on-behalf-of them for a Defender token.
func personToken(t *testing.T, s *Simulator, person string) string {
	t.Helper()
	rec := postToken(t, s, DemoTenantID, oboForm(mint(t, s, TokenClaims{Person: person})))
	wantStatus(t, rec, http.StatusOK)
	return decode[tokenAnswer](t, rec).AccessToken
}
