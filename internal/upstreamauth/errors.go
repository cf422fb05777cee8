package upstreamauth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// Kind says what a token failure means for the service, and so what a client is told.
type Kind int

// The kinds of token failure.
const (
	// Refused: the token endpoint refused the request for a token with an answer that will not
	// change by itself: an OAuth error about the credentials or the request (invalid_client,
	// unauthorized_client, invalid_scope, invalid_request, invalid_grant, ...), or any other
	// 4xx but 408 and 429 (a wrong MDE_TOKEN_URL answers 404). An administrator must fix the
	// configuration.
	Refused Kind = iota + 1
	// Throttled: the token endpoint answered 429; RetryAt says when it is asked again.
	Throttled
	// Unavailable: the token endpoint failed (5xx, 408, the OAuth errors temporarily_unavailable
	// and server_error), did not answer in time, could not be reached, or answered something
	// that is not a token. Asking again later may work.
	Unavailable
	// Rejected: the API refused (401) a token the endpoint had issued moments before
	// (within FailureTTL of a forced refresh), so another one would not help yet: the token is
	// most likely for the wrong API (MDE_SCOPE) or tenant.
	Rejected
)

func (k Kind) String() string {
	switch k {
	case Refused:
		return "refused"
	case Throttled:
		return "throttled"
	case Unavailable:
		return "unavailable"
	case Rejected:
		return "rejected"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Error is a failure to get a usable token: what the token endpoint (Entra ID) answered, or why
// it did not, classified by Kind. It never carries the client secret, and only the OAuth
// error code and description of the answer's body (Entra ID's AADSTS explanation), bounded.
// Callers find it with errors.As.
type Error struct {
	Kind Kind
	// StatusCode is the token endpoint's HTTP status (0 when no answer came, and for Rejected).
	StatusCode int
	// Code is the OAuth error code (RFC 6749 section 5.2), e.g. invalid_client; may be empty.
	Code string
	// Description is the OAuth error_description (Entra ID's AADSTS... text), at most 300 bytes.
	Description string
	// RetryAt is when the token endpoint will be asked again: callers until then get this same
	// error at once (FailureTTL after the failure, or the endpoint's Retry-After when longer,
	// up to MaxFailureTTL). Zero for an error no Source remembers.
	RetryAt time.Time
	// Err is the cause: an *oauth2.RetrieveError for an HTTP answer, a network or timeout
	// error otherwise. Its text may hold the answer's whole body: log Error's instead.
	Err error
	// Refusal says, for a Refused on-behalf-of exchange (OnBehalfOf), whose doing it is.
	Refusal Refusal
}

func (e *Error) Error() string {
	if errors.Is(e.Err, ErrNoCallerToken) {
		return ErrNoCallerToken.Error()
	}
	var b strings.Builder
	switch e.Kind {
	case Refused:
		b.WriteString("the token endpoint refused to issue a token")
	case Throttled:
		b.WriteString("the token endpoint is throttling token requests")
	case Unavailable:
		b.WriteString("the token endpoint is unavailable")
	case Rejected:
		b.WriteString("the API refused a token issued moments before; no new one is asked for until FailureTTL has passed")
	default:
		b.WriteString("no token")
	}
	if e.StatusCode != 0 || e.Code != "" {
		b.WriteString(" (")
		if e.StatusCode != 0 {
			fmt.Fprintf(&b, "status %d", e.StatusCode)
			if e.Code != "" {
				b.WriteString(", ")
			}
		}
		b.WriteString(e.Code)
		b.WriteString(")")
	}
	switch {
	case e.Description != "":
		b.WriteString(": " + e.Description)
	case e.StatusCode == 0 && e.Err != nil:
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Hint names the setting an administrator should check after a Refused or Rejected error, by
// its OAuth error code; "" for the other kinds, which are no configuration mistake.
func (e *Error) Hint() string {
	switch e.Kind {
	case Rejected:
		return "the API refuses the tokens Entra ID issues: check that MDE_SCOPE (or MDE_CLOUD) names the Defender API of MDE_TENANT_ID's cloud"
	case Refused:
		switch e.Refusal {
		case RefusedConsent:
			return "grant admin consent to the app registration's delegated WindowsDefenderATP permissions (Machine.Read, Alert.Read, User.Read.All), or let the person consent"
		case RefusedCallerToken:
			return "the caller must sign in again: its access token for this service could not be exchanged on-behalf-of it"
		}
		if h := credentialHints[e.Code]; h != "" {
			return h
		}
		if e.Code == "" && e.StatusCode == http.StatusNotFound {
			return "MDE_TOKEN_URL (or MDE_TENANT_ID) does not name an OAuth2 token endpoint"
		}
		return "check MDE_TENANT_ID, MDE_CLIENT_ID and MDE_CLIENT_SECRET"
	}
	return ""
}

// credentialHints name what to check for the OAuth error codes (RFC 6749 section 5.2) that wrong
// settings cause at Entra ID.
var credentialHints = map[string]string{
	"invalid_client":      "MDE_CLIENT_SECRET is wrong or expired (use the secret's value, not its id)",
	"unauthorized_client": "MDE_CLIENT_ID names no application in MDE_TENANT_ID (wrong client id or tenant)",
	"invalid_request":     "check MDE_TENANT_ID and MDE_TOKEN_URL (a tenant that does not exist answers this)",
	"invalid_scope":       "MDE_SCOPE (or MDE_CLOUD) does not name the Defender API",
	"invalid_grant":       "the app registration may not use this grant: check MDE_CLIENT_ID and MDE_TENANT_ID",
}

// unavailableCodes are the OAuth error codes that say the endpoint, not the request, failed.
var unavailableCodes = map[string]bool{"temporarily_unavailable": true, "server_error": true}

// maxDescription bounds Error.Description: Entra ID's are a few hundred bytes.
const maxDescription = 300

// Classify turns an error from a token request into an *Error (at now, for a Retry-After given
// as an HTTP date): an *oauth2.RetrieveError by its status and OAuth error code, anything else
// (a network error, a timeout, an unreadable answer) as Unavailable. An *Error is returned as
// it is; nil stays nil. RetryAt is set as a Source would remember the failure.
func Classify(err error, now time.Time) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	e = &Error{Kind: Unavailable, Err: err}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		e.Code, e.Description = truncate(re.ErrorCode, 100), truncate(re.ErrorDescription, maxDescription)
		if re.Response != nil {
			e.StatusCode = re.Response.StatusCode
		}
		switch s := e.StatusCode; {
		case s == http.StatusTooManyRequests:
			e.Kind = Throttled
		case s >= 500, s == http.StatusRequestTimeout, unavailableCodes[e.Code]:
			e.Kind = Unavailable
		default: // another 4xx, or an OAuth error in a 2xx answer
			e.Kind = Refused
		}
	} else if ne := net.Error(nil); errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		e.Err = fmt.Errorf("no answer in time: %w", err)
	}
	e.RetryAt = now.Add(failureTTL(e, err, now))
	return e
}

// failureTTL is how long a failure is remembered: FailureTTL, or the token endpoint's
// Retry-After if that is longer, up to MaxFailureTTL.
func failureTTL(e *Error, err error, now time.Time) time.Duration {
	var re *oauth2.RetrieveError
	if e.Kind == Rejected || !errors.As(err, &re) || re.Response == nil {
		return FailureTTL
	}
	return min(max(retryAfter(re.Response.Header.Get("Retry-After"), now), FailureTTL), MaxFailureTTL)
}

// retryAfter reads a Retry-After header (delay-seconds or an HTTP date); 0 if absent or unusable.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, int64(MaxFailureTTL/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}

// truncate cuts s to at most n bytes (plus an ellipsis), dropping a rune cut in two.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
