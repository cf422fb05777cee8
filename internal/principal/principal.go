// Package principal says who calls this service: the person, API key or client address a
// GraphQL request is made for (incoming identity). How this service signs in to Defender is a
// different matter, kept in the upstream token package; the two never mix.
//
// The HTTP layer puts one Principal in each request's context with NewContext; everything
// downstream (fair sharing of the quota, per-caller limits, metrics, log lines, and the cache
// keys when Defender is asked as the person) reads it with FromContext, never by re-parsing a
// header or a token.
package principal

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
)

// Kind says how a Principal was established.
type Kind string

// The kinds of principal.
const (
	// KindAnonymous is a caller nobody authenticated (AUTH_MODE=none), known only by its
	// client address.
	KindAnonymous Kind = "anonymous"
	// KindAPIKey is a caller that presented a configured API key; Name is the key's name.
	KindAPIKey Kind = "apikey"
	// KindUser is a person signed in with Microsoft Entra ID, identified by the tid and oid
	// claims of a validated access token (never by sub, which differs per application).
	KindUser Kind = "user"
)

// Principal is who a request is made for. It holds no secret: not the API key, not the token.
type Principal struct {
	Kind Kind
	// Name is the API key's name (KindAPIKey), or a person's display name or UPN for log lines
	// (KindUser; not part of the identity).
	Name string
	// TenantID and ObjectID are the Entra ID tenant (tid) and object id (oid) of a person.
	TenantID, ObjectID string
	// Addr is the client's address, without the port.
	Addr string
}

// ID is the principal's stable identity, the key of everything kept per caller: "user:{tid}/{oid}",
// "apikey:{name}", or "addr:{client address}" for an anonymous caller ("anonymous" when even the
// address is unknown).
func (p Principal) ID() string {
	switch p.Kind {
	case KindUser:
		return "user:" + p.TenantID + "/" + p.ObjectID
	case KindAPIKey:
		return "apikey:" + p.Name
	}
	if p.Addr != "" {
		return "addr:" + p.Addr
	}
	return string(KindAnonymous)
}

// LogValue writes the principal's identity and nothing else.
func (p Principal) LogValue() slog.Value { return slog.StringValue(p.ID()) }

// Anonymous is the principal of an unauthenticated request from remoteAddr (host:port, as in
// http.Request.RemoteAddr, or a bare host).
func Anonymous(remoteAddr string) Principal {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	return Principal{Kind: KindAnonymous, Addr: host}
}

type ctxKey struct{}

// NewContext returns ctx carrying p.
func NewContext(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// IDFrom is the ID of the principal in ctx: "anonymous" when there is none. It is what everything
// kept per caller is keyed by.
func IDFrom(ctx context.Context) string {
	p, _ := FromContext(ctx)
	return p.ID()
}

// FromContext returns the principal in ctx, and whether there was one. Without one, the zero
// Principal is returned, whose ID is "anonymous".
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(Principal)
	return p, ok
}

// Assertion is the caller's own access token for this service, kept in the request context only
// so that the upstream token package can exchange it on-behalf-of the caller (OAuth 2.0 OBO,
// grant_type urn:ietf:params:oauth:grant-type:jwt-bearer) when Defender is asked as the person.
// It is a credential: it formats as [redacted] everywhere (fmt, slog, JSON), and Reveal gives the
// value to the one place that sends it.
type Assertion string

// String hides the value from fmt and log.
func (Assertion) String() string { return "[redacted]" }

// Format hides the value from every fmt verb.
func (Assertion) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, "[redacted]") }

// GoString hides the value from %#v.
func (Assertion) GoString() string { return "[redacted]" }

// LogValue hides the value from slog.
func (Assertion) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// MarshalText hides the value from encoding/json and friends.
func (Assertion) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }

// Reveal returns the token itself, for the on-behalf-of exchange.
func (a Assertion) Reveal() string { return string(a) }

type assertionKey struct{}

// WithAssertion returns ctx carrying the caller's token a.
func WithAssertion(ctx context.Context, a Assertion) context.Context {
	return context.WithValue(ctx, assertionKey{}, a)
}

// AssertionFrom returns the caller's token in ctx, and whether there was one.
func AssertionFrom(ctx context.Context) (Assertion, bool) {
	a, ok := ctx.Value(assertionKey{}).(Assertion)
	return a, ok && a != ""
}
