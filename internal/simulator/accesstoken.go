package simulator

import (
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Client applications of the demo tenant that appear in minted tokens.
const (
	// DemoClientAppID is the client id of the public client (the playground) that signs demo
	// persons in: the azp claim (v2) or appid (v1) of their tokens.
	DemoClientAppID = "a0902355-4b70-45f8-8ecd-f73f94eb5a95"
	// DemoDaemonObjectID is the oid (and sub) of app-only tokens minted with TokenClaims.AppOnly.
	DemoDaemonObjectID = "b71027c2-e17d-4a0d-be9b-0e65bb86265d"
)

// TokenClaims describes an access token for the service's API, as Entra ID issues it to a client
// that signed a person in, or (AppOnly) to a daemon application. Zero fields take the defaults
// named, so TokenClaims{Person: "megan"} is a valid v2 token for Megan Bowen; set fields to make
// the invalid tokens a validator must refuse (expired, not yet valid, wrong audience, another
// tenant, missing role, unknown signing key).
type TokenClaims struct {
	// Person is a demo person's id, object id or UPN: it fills oid, name, preferred_username
	// (v1: upn, unique_name) and roles. Required unless AppOnly or OID is set.
	Person string
	// AppOnly mints an application token: idtyp "app", roles, no scp and no person claims.
	AppOnly bool
	// Version is "2.0" (the default) or "1.0", which changes the issuer and claim names
	// (appid for azp, upn for preferred_username).
	Version string
	// Issuer is the iss claim. Default: Issuer() for v2 (an error while no authority is set),
	// https://sts.windows.net/{tenant}/ for v1.
	Issuer string
	// TenantID is the tid claim, and the tenant of the default issuer; default TenantID().
	TenantID string
	// Audience is the aud claim; default Options.Audience.
	Audience string
	// OID is the oid claim; default the person's (or DemoDaemonObjectID for AppOnly). An OID
	// without a Person mints a token for someone the directory does not know.
	OID string
	// Scopes is the scp claim, space-separated on the wire. nil means [ScopeAccessAsUser]
	// (none for AppOnly); an empty, non-nil slice leaves the claim out.
	Scopes []string
	// Roles is the roles claim. nil means the person's app roles ([AppRoleRead] for AppOnly);
	// an empty, non-nil slice leaves the claim out.
	Roles []string
	// ClientID is the client application that asked for the token (azp, v1 appid); default
	// DemoClientAppID.
	ClientID string
	// IssuedAt is iat; zero means now (the simulator's clock). NotBefore defaults to IssuedAt
	// and ExpiresAt to IssuedAt + Options.TokenTTL.
	IssuedAt, NotBefore, ExpiresAt time.Time
	// KeyID picks the signing key by kid: "" is the current key, a published kid signs with
	// that key, and any other kid signs with a throwaway key that no key set ever publishes.
	KeyID string
	// Extra claims are added last and override the ones above (a nil value removes one).
	Extra map[string]any
}

// ErrNoAuthority is returned when a v2 token would need the simulator's issuer before its
// authority is known: set Options.Authority or call SetAuthority first.
var ErrNoAuthority = errors.New("simulator: no authority set (Options.Authority or SetAuthority), so no issuer")

// SignIn mints a valid v2 access token for the service's API (audience Options.Audience) for a
// demo person, named by id, object id or UPN: what a demo sign-in gives. It is
// MintAccessToken(TokenClaims{Person: person}).
func (s *Simulator) SignIn(person string) (string, error) {
	return s.MintAccessToken(TokenClaims{Person: person})
}

// MintAccessToken signs an RS256 JWT access token with the claims described by c, with the
// header's kid naming the key. Errors: an unknown Person, a missing person for a non-app token,
// an unsupported Version, and ErrNoAuthority.
func (s *Simulator) MintAccessToken(c TokenClaims) (string, error) {
	claims, err := s.claimsFor(c, s.configuredAuthority())
	if err != nil {
		return "", err
	}
	return s.sign(claims, c.KeyID, c.Version == "1.0")
}

// claimsFor builds the claim set of c, with authority deciding the default v2 issuer.
func (s *Simulator) claimsFor(c TokenClaims, authority string) (jwt.MapClaims, error) {
	var p *Person
	switch {
	case c.AppOnly:
	case c.Person != "":
		if p = findPerson(c.Person); p == nil {
			return nil, fmt.Errorf("simulator: no demo person %q", c.Person)
		}
	case c.OID == "":
		return nil, errors.New("simulator: TokenClaims needs a Person, an OID or AppOnly")
	}
	version := c.Version
	if version == "" {
		version = "2.0"
	}
	tenant := cmp.Or(c.TenantID, s.TenantID())
	issuer := c.Issuer
	switch {
	case version != "2.0" && version != "1.0":
		return nil, fmt.Errorf("simulator: token version %q is neither 2.0 nor 1.0", version)
	case issuer != "":
	case version == "1.0":
		issuer = fmt.Sprintf(issuerV1Format, tenant)
	case authority == "":
		return nil, ErrNoAuthority
	default:
		issuer = issuerV2(authority, tenant)
	}
	iat := c.IssuedAt
	if iat.IsZero() {
		iat = s.now()
	}
	nbf, exp := c.NotBefore, c.ExpiresAt
	if nbf.IsZero() {
		nbf = iat
	}
	if exp.IsZero() {
		exp = iat.Add(s.opts.TokenTTL)
	}
	aud := cmp.Or(c.Audience, s.opts.Audience)
	client := cmp.Or(c.ClientID, DemoClientAppID)

	claims := jwt.MapClaims{
		"aud": aud, "iss": issuer, "iat": iat.Unix(), "nbf": nbf.Unix(), "exp": exp.Unix(),
		"tid": tenant, "ver": version, "aio": randomClaim(48), "uti": randomClaim(16), "rh": "0." + randomClaim(40),
	}
	if version == "2.0" {
		claims["azp"], claims["azpacr"] = client, "0"
	} else {
		claims["appid"], claims["appidacr"] = client, "0"
	}
	scopes, roles := c.Scopes, c.Roles
	oid := c.OID
	switch {
	case c.AppOnly:
		oid = cmp.Or(oid, DemoDaemonObjectID)
		claims["idtyp"] = "app"
		if roles == nil {
			roles = []string{AppRoleRead}
		}
		if version == "2.0" {
			claims["azpacr"] = "1"
		} else {
			claims["appidacr"] = "1"
		}
	default:
		if scopes == nil {
			scopes = []string{ScopeAccessAsUser}
		}
		if p != nil {
			oid = cmp.Or(oid, p.OID)
			if roles == nil {
				roles = p.AppRoles
			}
			claims["name"] = p.Name
			if version == "2.0" {
				claims["preferred_username"] = p.UPN
			} else {
				claims["upn"], claims["unique_name"] = p.UPN, p.UPN
				claims["amr"] = []string{"pwd", "mfa"}
			}
		}
	}
	claims["oid"] = oid
	claims["sub"] = pairwiseSubject(oid, aud, c.AppOnly)
	if len(scopes) > 0 {
		claims["scp"] = strings.Join(scopes, " ")
	}
	if len(roles) > 0 {
		claims["roles"] = slices.Clone(roles)
	}
	for k, v := range c.Extra {
		if v == nil {
			delete(claims, k)
		} else {
			claims[k] = v
		}
	}
	return claims, nil
}

// sign signs claims with the key named kid ("" the current one; unknown: a throwaway key).
// Entra ID's v1 tokens also carry the thumbprint as x5t in the header.
func (s *Simulator) sign(claims jwt.MapClaims, kid string, v1 bool) (string, error) {
	key := s.keys.current(s.now())
	if kid != "" {
		var ok bool
		if key, ok = s.keys.byID(kid); !ok {
			key = newSigningKey(s.now())
			key.kid = kid
		}
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, maps.Clone(claims))
	tok.Header["kid"] = key.kid
	if v1 {
		tok.Header["x5t"] = key.kid
	}
	signed, err := tok.SignedString(key.priv)
	if err != nil {
		return "", fmt.Errorf("simulator: sign an access token: %w", err)
	}
	return signed, nil
}

// pairwiseSubject is the sub claim: Entra ID's sub is unique per person and application, unlike
// oid, so a service must key people by (tid, oid). App-only tokens carry the oid as sub.
func pairwiseSubject(oid, audience string, appOnly bool) string {
	if appOnly {
		return oid
	}
	sum := sha256.Sum256([]byte(oid + "|" + audience))
	return base64.RawURLEncoding.EncodeToString(sum[:])[:43]
}

// randomClaim is an opaque value of n base64url characters, like Entra ID's aio, uti and rh.
func randomClaim(n int) string {
	b := make([]byte, (n*3+3)/4)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)[:n]
}
