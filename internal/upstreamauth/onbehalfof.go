package upstreamauth

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/oauth2"

	"github.com/mdegraph/mdegraph/internal/principal"
)

// GrantJWTBearer is the grant type of the on-behalf-of exchange (RFC 7523 section 2.1, as
// Microsoft's identity platform uses it with requested_token_use=on_behalf_of).
const GrantJWTBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// DefaultMaxPrincipals bounds how many persons' exchanged tokens an OnBehalfOf keeps when
// OnBehalfOfOptions.MaxPrincipals is zero; the least recently used person's is dropped first
// (it is exchanged again at that person's next call).
const DefaultMaxPrincipals = 10_000

// Refusal says whose doing a refused on-behalf-of exchange is, and so what the caller is told.
type Refusal int

// The refusals. The zero value is also that of every error but an on-behalf-of refusal.
const (
	// RefusedService: Entra ID refused this service's credentials or settings (invalid_client,
	// unauthorized_client, invalid_scope, ...): an administrator must fix them.
	RefusedService Refusal = iota
	// RefusedConsent: nobody consented to the service's delegated access to Defender for this
	// person (AADSTS65001, suberror consent_required): an administrator must grant admin consent.
	RefusedConsent
	// RefusedCallerToken: the caller's own token cannot be exchanged (invalid_grant or
	// interaction_required: expired, signed with an unknown key, for another audience, an
	// unknown person, multi-factor authentication required), or the request carried none: the
	// caller must sign in again.
	RefusedCallerToken
)

// ErrNoCallerToken is the cause of the failure of a request that reaches an OnBehalfOf
// without the caller's token (principal.AssertionFrom) and without a Fallback.
var ErrNoCallerToken = errors.New("the request carries no caller token to exchange on-behalf-of the caller")

// OnBehalfOfOptions configure an OnBehalfOf.
type OnBehalfOfOptions struct {
	// Credentials are the application's: the same token endpoint, client id and secret, and
	// the Defender scope (https://api.securitycenter.microsoft.com/.default).
	Credentials ClientCredentials
	// MaxPrincipals bounds the persons whose tokens are kept (default DefaultMaxPrincipals).
	MaxPrincipals int
	// Fallback, if set, serves requests that carry no caller token: in the demo, where signing
	// in is optional, anonymous callers are served with the application's token. Without it
	// such a request fails with ErrNoCallerToken (RefusedCallerToken), never with the
	// application's token.
	Fallback *Source
	// Observe, if set, learns the outcome of every exchange, as Source.Observe does.
	Observe func(err error)
}

// OnBehalfOf is the token source of UPSTREAM_IDENTITY=user: each caller's access token for this
// service (the assertion, principal.AssertionFrom) is exchanged for a Defender token that
// speaks for the caller (OAuth 2.0 on-behalf-of: grant_type GrantJWTBearer,
// requested_token_use=on_behalf_of, at the application's token endpoint with its client id and
// secret), so that Defender's device-group RBAC applies to each person.
//
// It keeps one Source per principal (principal.ID), so each person's token is reused until it
// is replaced ahead of its expiry, one exchange runs at a time per person (callers of the same
// person share it), a failure is remembered per person as Source remembers it, and a token
// Defender refuses is replaced per person (Reject). The exchange uses the latest token the
// person presented; a person whose token could not be exchanged (RefusedCallerToken) starts
// afresh as soon as another token is presented. At most MaxPrincipals persons are kept.
//
// Tokens, assertions and exchanged tokens alike, are never logged. It is safe for concurrent
// use; its methods implement defender.TokenSource and choose the person from ctx.
type OnBehalfOf struct {
	ctx  context.Context
	opts OnBehalfOfOptions

	mu      sync.Mutex
	persons *simplelru.LRU[string, *person]
}

// person is one principal's exchanged tokens and the latest token it presented.
type person struct {
	src       *Source
	assertion string // guarded by OnBehalfOf.mu
}

// NewOnBehalfOf returns the on-behalf-of token source. ctx must be the application's lifetime
// context, as for TokenSource: exchanges run on it, not on a request's. Token requests use the
// *http.Client stored in ctx under oauth2.HTTPClient if there is one (a client with a 30 s
// timeout otherwise).
func NewOnBehalfOf(ctx context.Context, opts OnBehalfOfOptions) *OnBehalfOf {
	ctx = withHTTPClient(ctx)
	if opts.MaxPrincipals <= 0 {
		opts.MaxPrincipals = DefaultMaxPrincipals
	}
	persons, err := simplelru.NewLRU[string, *person](opts.MaxPrincipals, nil)
	if err != nil { // only for a size below 1
		panic(err)
	}
	return &OnBehalfOf{ctx: ctx, opts: opts, persons: persons}
}

// TokenContext returns a Defender token for the caller in ctx, exchanging its token if no
// valid one is kept; or the caller's *Error. A request without a caller token gets the
// Fallback's token, or an *Error with ErrNoCallerToken.
func (o *OnBehalfOf) TokenContext(ctx context.Context) (*oauth2.Token, error) {
	src, err := o.source(ctx)
	if err != nil {
		return nil, err
	}
	return src.TokenContext(ctx)
}

// Reject reports that Defender refused tok (401) before its expiry, to the caller's own Source
// (see Source.Reject): the person's token is exchanged again, at most once per FailureTTL.
func (o *OnBehalfOf) Reject(ctx context.Context, tok *oauth2.Token) (*oauth2.Token, error) {
	src, err := o.source(ctx)
	if err != nil {
		return nil, err
	}
	return src.Reject(ctx, tok)
}

// Persons is how many persons' tokens are kept.
func (o *OnBehalfOf) Persons() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.persons.Len()
}

// source returns the Source of the caller in ctx.
func (o *OnBehalfOf) source(ctx context.Context) (*Source, error) {
	assertion, ok := principal.AssertionFrom(ctx)
	if !ok {
		if o.opts.Fallback != nil {
			return o.opts.Fallback, nil
		}
		return nil, &Error{Kind: Refused, Refusal: RefusedCallerToken, Err: ErrNoCallerToken}
	}
	id := principal.IDFrom(ctx)
	o.mu.Lock()
	defer o.mu.Unlock()
	pp, ok := o.persons.Get(id)
	if !ok || pp.assertion != assertion.Reveal() && pp.src.refusedCallerToken(time.Now()) {
		pp = &person{}
		pp.src = &Source{Observe: o.opts.Observe, fetch: func() (*oauth2.Token, error) { return o.exchange(pp) }}
		o.persons.Add(id, pp)
	}
	pp.assertion = assertion.Reveal()
	return pp.src, nil
}

// exchange asks the token endpoint for a Defender token on-behalf-of p, with the latest
// token p presented.
func (o *OnBehalfOf) exchange(p *person) (*oauth2.Token, error) {
	o.mu.Lock()
	assertion := p.assertion
	o.mu.Unlock()
	// The same form POST as the application's, its answer and OAuth errors read the same way.
	cfg := o.opts.Credentials.config(url.Values{
		"grant_type":          {GrantJWTBearer},
		"assertion":           {assertion},
		"requested_token_use": {"on_behalf_of"},
	})
	tok, err := cfg.Token(o.ctx)
	if err != nil {
		return nil, classifyOnBehalfOf(err, time.Now())
	}
	return tok, nil
}

// refusedCallerToken reports whether s remembers, at now, a failure caused by the caller's
// token, which another token may not meet.
func (s *Source) refusedCallerToken(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failure != nil && s.failure.Refusal == RefusedCallerToken && now.Before(s.failedUntil)
}

// classifyOnBehalfOf is Classify for an on-behalf-of exchange: a refusal is told apart by
// whose doing it is (Error.Refusal), from the OAuth error code and Entra ID's AADSTS code.
func classifyOnBehalfOf(err error, now time.Time) *Error {
	e := Classify(err, now)
	if e.Kind != Refused {
		return e
	}
	var re *oauth2.RetrieveError
	consent := e.AADSTS() == 65001 || errors.As(err, &re) && strings.Contains(string(re.Body), `"consent_required"`)
	switch {
	case consent:
		e.Refusal = RefusedConsent
	case e.Code == "invalid_grant", e.Code == "interaction_required":
		e.Refusal = RefusedCallerToken
	}
	return e
}

// AADSTS returns the number of Entra ID's AADSTS code that starts Description
// ("AADSTS65001: The user or administrator has not consented ..."), 0 if none.
func (e *Error) AADSTS() int {
	rest, ok := strings.CutPrefix(e.Description, "AADSTS")
	if !ok {
		return 0
	}
	end := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
	if end < 0 {
		end = len(rest)
	}
	n, _ := strconv.Atoi(rest[:end])
	return n
}
