package callerauth

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/vektah/gqlparser/v2/gqlerror"
)

// GraphQL error codes (extensions.code) of a refused caller.
const (
	// CodeUnauthenticated answers a missing or refused credential, with HTTP 401.
	CodeUnauthenticated = "UNAUTHENTICATED"
	// CodeForbidden answers a valid token that lacks AUTH_REQUIRED_ROLE, with HTTP 403.
	CodeForbidden = "FORBIDDEN"
)

// Reason says why a caller was refused, in a word fit for a log attribute or a metric label
// (a fixed set; it never holds caller input). It is also sent as extensions.reason, so a
// frontend can tell an expired token (sign in again silently) from a missing role.
type Reason string

// The reasons.
const (
	ReasonMissing       Reason = "missing"         // no credential presented
	ReasonMalformed     Reason = "malformed"       // the header or the token cannot be parsed, or two credentials were sent
	ReasonWrongKind     Reason = "wrong_kind"      // an API key where a token is expected
	ReasonUnknownAPIKey Reason = "unknown_api_key" // no configured key has this hash
	ReasonAlgorithm     Reason = "algorithm"       // alg is not RS256 (none, HS256, ...)
	ReasonSignature     Reason = "signature"       // the signature does not verify
	ReasonUnknownKey    Reason = "unknown_key"     // kid not in the tenant's key set, even after a refresh
	ReasonExpired       Reason = "expired"         // exp has passed (beyond the leeway)
	ReasonNotYetValid   Reason = "not_yet_valid"   // nbf or iat is in the future (beyond the leeway)
	ReasonAudience      Reason = "audience"        // aud is not one of AUTH_AUDIENCE
	ReasonIssuer        Reason = "issuer"          // iss is not one of the accepted issuers
	ReasonTenant        Reason = "tenant"          // tid is not AUTH_TENANT_ID
	ReasonClaims        Reason = "claims"          // a required claim is missing (exp, tid, oid, scp or roles)
	ReasonRole          Reason = "role"            // valid, but without AUTH_REQUIRED_ROLE (403)
)

// Error is a refused credential: the HTTP status (401, or 403 for a missing role), the reason,
// and a message for the caller that says what is wrong without repeating the credential.
type Error struct {
	Status  int
	Reason  Reason
	Message string
}

func (e *Error) Error() string { return e.Message }

// Code is the GraphQL extensions.code of the refusal.
func (e *Error) Code() string {
	if e.Status == http.StatusForbidden {
		return CodeForbidden
	}
	return CodeUnauthenticated
}

// oauthError is the error attribute of WWW-Authenticate (RFC 6750 section 3.1): none when no
// credential was presented, invalid_request for one that cannot be parsed, insufficient_scope
// for a missing role, invalid_token otherwise.
func (e *Error) oauthError() string {
	switch {
	case e.Status == http.StatusForbidden:
		return "insufficient_scope"
	case e.Reason == ReasonMissing:
		return ""
	case e.Reason == ReasonMalformed || e.Reason == ReasonWrongKind:
		return "invalid_request"
	}
	return "invalid_token"
}

func unauthenticated(reason Reason, msg string) *Error {
	return &Error{Status: http.StatusUnauthorized, Reason: reason, Message: msg}
}

// challenge is the WWW-Authenticate value for e (RFC 6750 section 3).
func (e *Error) challenge(realm string) string {
	var b strings.Builder
	b.WriteString(`Bearer realm="`)
	b.WriteString(quotable(realm))
	b.WriteByte('"')
	if code := e.oauthError(); code != "" {
		b.WriteString(`, error="`)
		b.WriteString(code)
		b.WriteString(`", error_description="`)
		b.WriteString(quotable(e.Message))
		b.WriteByte('"')
	}
	return b.String()
}

// quotable keeps what RFC 6750 section 3 allows inside error_description's quotes
// (%x20-21 / %x23-5B / %x5D-7E): a double quote becomes a single one, other characters '?'.
func quotable(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '"':
			return '\''
		case r == '\\' || r < 0x20 || r > 0x7e:
			return '?'
		}
		return r
	}, s)
}

// write answers the refusal: status, WWW-Authenticate, and the GraphQL error, never cached.
// The body is a GraphQL response with one error and no data key (GraphQL over HTTP: the
// request was not executed).
func (e *Error) write(w http.ResponseWriter, realm string) {
	b, _ := json.Marshal(map[string]any{"errors": gqlerror.List{{
		Message:    e.Message,
		Extensions: map[string]any{"code": e.Code(), "reason": e.Reason},
	}}}) // strings only: cannot fail
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("WWW-Authenticate", e.challenge(realm))
	w.WriteHeader(e.Status)
	_, _ = w.Write(b)
}
