package simulator

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// assertionClaims are the claims of an on-behalf-of assertion the exchange reads.
type assertionClaims struct {
	jwt.RegisteredClaims
	TenantID string `json:"tid"`
	OID      string `json:"oid"`
	Scope    string `json:"scp"`
	IDType   string `json:"idtyp"`
}

// errUnknownKey is the key lookup's failure: no published key has the token's kid.
var errUnknownKey = errors.New("the key was not found")

// serveOnBehalfOf is the token endpoint's on-behalf-of grant (Microsoft identity platform,
// "OAuth 2.0 On-Behalf-Of flow"): the service trades a person's access token for its own API
// (the assertion) for a Defender token that speaks for the person. The assertion must be signed
// by a published key, be within its validity, come from the simulator's tenant and be meant for
// the service's API (Options.Audience or ClientID). Failures are invalid_grant with Entra ID's
// AADSTS codes: 50027 malformed, 50013 signature, issuer, tenant or audience, 500133 expired or
// not yet valid, 50034 unknown person, 65001 consent missing.
func (s *Simulator) serveOnBehalfOf(r *http.Request, tenant, clientID, secret string) response {
	form := r.PostForm
	use, assertion, scope := form.Get("requested_token_use"), strings.TrimSpace(form.Get("assertion")), strings.TrimSpace(form.Get("scope"))
	switch {
	case use == "":
		return s.missingParameter("requested_token_use")
	case use != "on_behalf_of":
		return s.oauthError(http.StatusBadRequest, "invalid_request", 90014, fmt.Sprintf(
			"The request parameter 'requested_token_use' has the unsupported value '%s'; the jwt-bearer grant needs 'on_behalf_of'.", clip(use)))
	case assertion == "":
		return s.missingParameter("assertion")
	case scope == "":
		return s.missingParameter("scope")
	case !strings.Contains(scope, "/"):
		return s.oauthError(http.StatusBadRequest, "invalid_scope", 70011, fmt.Sprintf(
			"The provided value for the input parameter 'scope' is not valid. The scope %s does not name a resource, e.g. https://api.securitycenter.microsoft.com/.default.", clip(scope)))
	}
	if resp, ok := s.authenticateClient(tenant, clientID, secret); !ok {
		return resp
	}
	p, resp, ok := s.checkAssertion(r, assertion, clientID)
	if !ok {
		return resp
	}
	return s.issue(caller{person: p}, delegatedScope)
}

// checkAssertion validates an on-behalf-of assertion and finds the person it speaks for.
func (s *Simulator) checkAssertion(r *http.Request, assertion, clientID string) (*Person, response, bool) {
	invalid := func(code int, msg string) (*Person, response, bool) {
		resp := s.oauthError(http.StatusBadRequest, "invalid_grant", code, msg)
		return nil, resp, false
	}
	var claims assertionClaims
	var kid string
	_, err := jwt.ParseWithClaims(assertion, &claims, func(t *jwt.Token) (any, error) {
		kid, _ = t.Header["kid"].(string)
		k, ok := s.keys.byID(kid)
		if !ok {
			return nil, errUnknownKey
		}
		return &k.priv.PublicKey, nil
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithTimeFunc(s.now), jwt.WithExpirationRequired())
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return invalid(50027, "JWT token is invalid or malformed.")
	case errors.Is(err, errUnknownKey):
		return invalid(50013, fmt.Sprintf("Assertion failed signature validation. [Reason - The key was not found., Thumbprint of key used by client: '%s']", clip(kid)))
	case errors.Is(err, jwt.ErrTokenExpired), errors.Is(err, jwt.ErrTokenNotValidYet):
		return invalid(500133, fmt.Sprintf(
			"Assertion is not within its valid time range. Ensure that the access token is not expired before using it for user assertion, or request a new token. Current time: %s.",
			s.now().UTC().Format("2006-01-02T15:04:05.0000000Z")))
	case err != nil:
		return invalid(50013, "Assertion failed signature validation. [Reason - The provided signature value did not match the expected signature value.]")
	}
	if !slices.Contains(s.acceptedIssuers(r), claims.Issuer) || claims.TenantID != s.TenantID() {
		return invalid(50013, fmt.Sprintf(
			"Assertion failed validation. [Reason - The issuer '%s' or tenant '%s' of the assertion is not this tenant's.]", clip(claims.Issuer), clip(claims.TenantID)))
	}
	if !slices.ContainsFunc(claims.Audience, func(a string) bool { return a == s.opts.Audience || a == clientID }) {
		return invalid(50013, fmt.Sprintf(
			"Assertion audience does not match the Client app presenting the assertion. The audience in the assertion was '%s' and the expected audience is '%s' or one of the Application Ids of the Client app presenting the assertion.",
			clip(strings.Join(claims.Audience, " ")), s.opts.Audience))
	}
	if claims.IDType == "app" || claims.Scope == "" {
		return invalid(50013, "Assertion failed validation. [Reason - The assertion is an application token; on-behalf-of needs a token issued to a user (with an scp claim).]")
	}
	p := findPerson(claims.OID)
	if p == nil || !strings.EqualFold(p.OID, claims.OID) {
		return invalid(50034, fmt.Sprintf("The user account {EUII Hidden} does not exist in the %s directory. To sign into this application, the account must be added to the directory.", s.TenantID()))
	}
	if p.ConsentMissing {
		return nil, s.oauthErrorSub(http.StatusBadRequest, "invalid_grant", 65001, fmt.Sprintf(
			"The user or administrator has not consented to use the application with ID '%s' named 'mdegraph'. Send an interactive authorization request for this user and resource.",
			clientID), "consent_required"), false
	}
	return p, response{}, true
}
