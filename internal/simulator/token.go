package simulator

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// tokenStore remembers the Defender access tokens issued, when each expires and whom it speaks
// for. Tokens are random and opaque: the simulator checks them by lookup, not by signature, so a
// client cannot come to depend on reading a token meant for Defender.
type tokenStore struct {
	mu      sync.Mutex
	tokens  map[string]issuedToken
	pruneAt int // prune expired tokens when the map grows past this
}

// issuedToken is one Defender token: its expiry and its caller.
type issuedToken struct {
	expires time.Time
	caller  caller
}

type tokenState int

const (
	tokenUnknown tokenState = iota
	tokenValid
	tokenExpired
)

func (ts *tokenStore) issue(now time.Time, ttl time.Duration, c caller) string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails since Go 1.24
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if len(ts.tokens) >= ts.pruneAt {
		for t, it := range ts.tokens {
			if !now.Before(it.expires) {
				delete(ts.tokens, t)
			}
		}
		ts.pruneAt = 2*len(ts.tokens) + 64 // amortised: a token storm stays linear
	}
	ts.tokens[tok] = issuedToken{expires: now.Add(ttl), caller: c}
	return tok
}

// check reports whether tok was issued here and is still valid at now (valid until, not at, its
// expiry), and whom it speaks for. A long-expired token may have been forgotten and reads as
// unknown.
func (ts *tokenStore) check(tok string, now time.Time) (tokenState, caller) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	it, ok := ts.tokens[tok]
	switch {
	case !ok:
		return tokenUnknown, caller{}
	case now.Before(it.expires):
		return tokenValid, it.caller
	default:
		return tokenExpired, caller{}
	}
}

// tokenAnswer is the token endpoint's success body.
type tokenAnswer struct {
	TokenType    string `json:"token_type"`
	Scope        string `json:"scope,omitempty"`
	ExpiresIn    int    `json:"expires_in"`
	ExtExpiresIn int    `json:"ext_expires_in"`
	AccessToken  string `json:"access_token"`
}

// oauthErrorBody is Entra ID's error body.
type oauthErrorBody struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	ErrorCodes       []int  `json:"error_codes"`
	Timestamp        string `json:"timestamp"`
	TraceID          string `json:"trace_id"`
	CorrelationID    string `json:"correlation_id"`
	ErrorURI         string `json:"error_uri"`
	Suberror         string `json:"suberror,omitempty"`
}

// oauthError answers like Entra ID: an OAuth error name, and an AADSTS code and text.
// It never includes the client secret.
func (s *Simulator) oauthError(status int, oauthCode string, aadsts int, message string) response {
	return s.oauthErrorSub(status, oauthCode, aadsts, message, "")
}

// oauthErrorSub is oauthError with Entra ID's suberror (e.g. consent_required), "" for none.
func (s *Simulator) oauthErrorSub(status int, oauthCode string, aadsts int, message, suberror string) response {
	trace, corr := newGUID(), newGUID()
	ts := s.now().UTC().Format("2006-01-02 15:04:05Z")
	body, _ := json.Marshal(oauthErrorBody{
		Error: oauthCode,
		ErrorDescription: fmt.Sprintf("AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s",
			aadsts, message, trace, corr, ts),
		ErrorCodes:    []int{aadsts},
		Timestamp:     ts,
		TraceID:       trace,
		CorrelationID: corr,
		ErrorURI:      fmt.Sprintf("https://login.microsoftonline.com/error?code=%d", aadsts),
		Suberror:      suberror,
	})
	return response{status: status, contentType: contentTypeOAuth, body: body}.
		with("Cache-Control", "no-store, no-cache").with("Pragma", "no-cache")
}

func (s *Simulator) missingParameter(name string) response {
	return s.oauthError(http.StatusBadRequest, "invalid_request", 900144,
		fmt.Sprintf("The request body must contain the following parameter: '%s'.", name))
}

// Grants the token endpoint accepts.
const (
	grantClientCredentials = "client_credentials"
	// GrantOnBehalfOf is the on-behalf-of grant type (RFC 7523 JWT bearer, as Entra ID uses it).
	GrantOnBehalfOf = "urn:ietf:params:oauth:grant-type:jwt-bearer"
)

// delegatedScope is the scope an on-behalf-of answer reports: the Defender permissions the
// service's app registration holds for people.
var delegatedScope = strings.Join([]string{
	"https://api.securitycenter.microsoft.com/" + PermissionMachineRead,
	"https://api.securitycenter.microsoft.com/" + PermissionAlertRead,
	"https://api.securitycenter.microsoft.com/" + PermissionUserReadAll,
}, " ")

// serveToken is POST /{tenant}/oauth2/v2.0/token with the client-credentials grant (an app
// token, which sees every device) or the on-behalf-of grant (a token for the person the
// assertion names, which sees their device groups only). The client may authenticate with
// client_id and client_secret in the form or with HTTP Basic (client_secret_basic), as Entra ID
// allows; golang.org/x/oauth2 tries the latter first. Defender tokens are opaque.
func (s *Simulator) serveToken(r *http.Request, tenant string) response {
	if r.Method != http.MethodPost {
		return s.oauthError(http.StatusMethodNotAllowed, "invalid_request", 900561,
			fmt.Sprintf("The endpoint only accepts POST requests. Received a %s request.", clip(r.Method))).
			with("Allow", http.MethodPost)
	}
	st := s.state(EndpointToken)
	if f, ok := st.takeFault(); ok {
		return s.injectedEntraError(f)
	}
	if resp, ok := s.checkTenant(tenant, "invalid_request"); !ok {
		return resp
	}
	if err := r.ParseForm(); err != nil {
		return s.oauthError(http.StatusBadRequest, "invalid_request", 9002313,
			"Invalid request. Request is malformed or invalid: the form body could not be parsed.")
	}
	form := r.PostForm
	clientID, secret := form.Get("client_id"), form.Get("client_secret")
	if id, sec, ok := r.BasicAuth(); ok {
		// RFC 6749 2.3.1: both parts are form-encoded before the Basic encoding.
		clientID, secret = formUnescape(id), formUnescape(sec)
	}
	grant, scope := form.Get("grant_type"), strings.TrimSpace(form.Get("scope"))
	switch {
	case grant == "":
		return s.missingParameter("grant_type")
	case grant != grantClientCredentials && grant != GrantOnBehalfOf:
		return s.oauthError(http.StatusBadRequest, "unsupported_grant_type", 70003, fmt.Sprintf(
			"The app requested an unsupported grant type '%s'. This endpoint accepts client_credentials and %s (on-behalf-of).",
			clip(grant), GrantOnBehalfOf))
	case clientID == "":
		return s.missingParameter("client_id")
	}
	if grant == GrantOnBehalfOf {
		return s.serveOnBehalfOf(r, tenant, clientID, secret)
	}
	switch {
	case scope == "":
		return s.missingParameter("scope")
	case !strings.HasSuffix(scope, "/.default") || strings.ContainsAny(scope, " \t"):
		return s.oauthError(http.StatusBadRequest, "invalid_scope", 1002012, fmt.Sprintf(
			"The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).",
			clip(scope)))
	}
	if resp, ok := s.authenticateClient(tenant, clientID, secret); !ok {
		return resp
	}
	return s.issue(caller{}, "")
}

// authenticateClient checks the confidential client's id and secret.
func (s *Simulator) authenticateClient(tenant, clientID, secret string) (response, bool) {
	switch {
	case clientID != s.opts.ClientID:
		return s.oauthError(http.StatusBadRequest, "unauthorized_client", 700016, fmt.Sprintf(
			"Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
			clip(clientID), clip(tenant))), false
	case secret == "":
		return s.oauthError(http.StatusUnauthorized, "invalid_client", 7000218,
			"The request body must contain the following parameter: 'client_assertion' or 'client_secret'."), false
	case subtle.ConstantTimeCompare([]byte(secret), []byte(s.opts.ClientSecret)) != 1:
		return s.oauthError(http.StatusUnauthorized, "invalid_client", 7000215, fmt.Sprintf(
			"Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.",
			clientID)), false
	}
	return response{}, true
}

// issue answers a new Defender token for c; scope is reported when not empty.
func (s *Simulator) issue(c caller, scope string) response {
	s.state(EndpointToken).admit(s.now) // never refused: the token endpoint's windows only count issued tokens
	secs := int(s.opts.TokenTTL / time.Second)
	resp := okJSON(tokenAnswer{
		TokenType:    "Bearer",
		Scope:        scope,
		ExpiresIn:    secs,
		ExtExpiresIn: secs,
		AccessToken:  s.tokens.issue(s.now(), s.opts.TokenTTL, c),
	}).with("Cache-Control", "no-store, no-cache").with("Pragma", "no-cache")
	resp.identity = c.identity()
	return resp
}

// injectedEntraError is the Entra ID answer closest to an injected fault.
func (s *Simulator) injectedEntraError(f fault) response { return injected(f, s.entraFaultBody) }

func (s *Simulator) entraFaultBody(f fault) response {
	switch f.Status {
	case http.StatusBadRequest:
		return s.oauthError(f.Status, "invalid_request", 9002313, "Invalid request. Request is malformed or invalid. (injected fault)")
	case http.StatusUnauthorized:
		return s.oauthError(f.Status, "invalid_client", 7000215, "Invalid client secret provided. (injected fault)")
	case http.StatusTooManyRequests:
		return s.oauthError(f.Status, "temporarily_unavailable", 90055,
			"There are too many incoming requests. Please try again later. (injected fault)")
	case http.StatusForbidden:
		return s.oauthError(f.Status, "access_denied", 7000112, "Application is disabled. (injected fault)")
	}
	if f.Status >= 500 {
		return s.oauthError(f.Status, "temporarily_unavailable", 90033, "A transient error has occurred. Please try again. (injected fault)")
	}
	return s.oauthError(f.Status, "invalid_request", 9002313, "Invalid request. (injected fault)")
}

func formUnescape(s string) string {
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
}
