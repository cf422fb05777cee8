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

// tokenStore remembers the access tokens issued and when each expires. Tokens are random and
// opaque: the simulator checks them by lookup, not by signature.
type tokenStore struct {
	mu      sync.Mutex
	tokens  map[string]time.Time // token → expiry
	pruneAt int                  // prune expired tokens when the map grows past this
}

type tokenState int

const (
	tokenUnknown tokenState = iota
	tokenValid
	tokenExpired
)

func (ts *tokenStore) issue(now time.Time, ttl time.Duration) string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails since Go 1.24
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if len(ts.tokens) >= ts.pruneAt {
		for t, exp := range ts.tokens {
			if !now.Before(exp) {
				delete(ts.tokens, t)
			}
		}
		ts.pruneAt = 2*len(ts.tokens) + 64 // amortised: a token storm stays linear
	}
	ts.tokens[tok] = now.Add(ttl)
	return tok
}

// check reports whether tok was issued here and is still valid at now (valid until, not at, its
// expiry). A long-expired token may have been forgotten and reads as unknown.
func (ts *tokenStore) check(tok string, now time.Time) tokenState {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	exp, ok := ts.tokens[tok]
	switch {
	case !ok:
		return tokenUnknown
	case now.Before(exp):
		return tokenValid
	default:
		return tokenExpired
	}
}

// tokenAnswer is the token endpoint's success body.
type tokenAnswer struct {
	TokenType    string `json:"token_type"`
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
}

// oauthError answers like Entra ID: an OAuth error name, and an AADSTS code and text.
// It never includes the client secret.
func (s *Simulator) oauthError(status int, oauthCode string, aadsts int, message string) response {
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
	})
	return response{status: status, contentType: contentTypeOAuth, body: body}.
		with("Cache-Control", "no-store, no-cache").with("Pragma", "no-cache")
}

func (s *Simulator) missingParameter(name string) response {
	return s.oauthError(http.StatusBadRequest, "invalid_request", 900144,
		fmt.Sprintf("The request body must contain the following parameter: '%s'.", name))
}

// serveToken is POST /{tenant}/oauth2/v2.0/token with the client-credentials grant. The client
// may authenticate with client_id and client_secret in the form or with HTTP Basic
// (client_secret_basic), as Entra ID allows; golang.org/x/oauth2 tries the latter first.
func (s *Simulator) serveToken(r *http.Request, tenant string) response {
	if r.Method != http.MethodPost {
		return s.oauthError(http.StatusMethodNotAllowed, "invalid_request", 900561,
			fmt.Sprintf("The endpoint only accepts POST requests. Received a %s request.", clip(r.Method))).
			with("Allow", http.MethodPost)
	}
	st := s.state(EndpointToken)
	if f, ok := st.takeFault(); ok {
		return s.injectedOAuthError(f)
	}
	if s.opts.TenantID != "" && !strings.EqualFold(tenant, s.opts.TenantID) {
		return s.oauthError(http.StatusBadRequest, "invalid_request", 90002, fmt.Sprintf(
			"Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.",
			clip(tenant)))
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
	case grant != "client_credentials":
		return s.oauthError(http.StatusBadRequest, "unsupported_grant_type", 70003,
			fmt.Sprintf("The app requested an unsupported grant type '%s'. This endpoint accepts only client_credentials.", clip(grant)))
	case clientID == "":
		return s.missingParameter("client_id")
	case scope == "":
		return s.missingParameter("scope")
	case !strings.HasSuffix(scope, "/.default") || strings.ContainsAny(scope, " \t"):
		return s.oauthError(http.StatusBadRequest, "invalid_scope", 1002012, fmt.Sprintf(
			"The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).",
			clip(scope)))
	case clientID != s.opts.ClientID:
		return s.oauthError(http.StatusBadRequest, "unauthorized_client", 700016, fmt.Sprintf(
			"Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
			clip(clientID), clip(tenant)))
	case secret == "":
		return s.oauthError(http.StatusUnauthorized, "invalid_client", 7000218,
			"The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
	case subtle.ConstantTimeCompare([]byte(secret), []byte(s.opts.ClientSecret)) != 1:
		return s.oauthError(http.StatusUnauthorized, "invalid_client", 7000215, fmt.Sprintf(
			"Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.",
			clientID))
	}
	st.admit(s.now) // never refused: the token endpoint's windows only count issued tokens
	secs := int(s.opts.TokenTTL / time.Second)
	return okJSON(tokenAnswer{
		TokenType:    "Bearer",
		ExpiresIn:    secs,
		ExtExpiresIn: secs,
		AccessToken:  s.tokens.issue(s.now(), s.opts.TokenTTL),
	}).with("Cache-Control", "no-store, no-cache").with("Pragma", "no-cache")
}

// injectedOAuthError is the Entra ID answer closest to an injected status.
func (s *Simulator) injectedOAuthError(f fault) response {
	switch f.status {
	case http.StatusBadRequest:
		return s.oauthError(f.status, "invalid_request", 9002313, "Invalid request. Request is malformed or invalid. (injected fault)")
	case http.StatusUnauthorized:
		return s.oauthError(f.status, "invalid_client", 7000215, "Invalid client secret provided. (injected fault)")
	case http.StatusTooManyRequests:
		return s.oauthError(f.status, "temporarily_unavailable", 90055,
			"There are too many incoming requests. Please try again later. (injected fault)").
			with("Retry-After", fmt.Sprint(retryAfterSeconds(f.retryAfter)))
	case http.StatusForbidden:
		return s.oauthError(f.status, "access_denied", 7000112, "Application is disabled. (injected fault)")
	}
	if f.status >= 500 {
		return s.oauthError(f.status, "temporarily_unavailable", 90033, "A transient error has occurred. Please try again. (injected fault)")
	}
	return s.oauthError(f.status, "invalid_request", 9002313, "Invalid request. (injected fault)")
}

func formUnescape(s string) string {
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
}
