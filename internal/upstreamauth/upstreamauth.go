// Package upstreamauth gives the upstream (Defender) client its identity: OAuth2 client
// credentials against Entra ID, with one token source for the application's lifetime. Who calls
// this service is another matter (package principal).
package upstreamauth

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// EarlyRefresh is the most a token is replaced before its expiry, so that no request goes out
// with a token that expires in flight (Defender tokens live about an hour). A token living
// less than 5*EarlyRefresh is replaced when a fifth of its lifetime is left (RefreshShare).
const EarlyRefresh = 5 * time.Minute

// RefreshShare bounds the early refresh margin to a share of a token's lifetime: 1/RefreshShare.
// Without it a token living less than EarlyRefresh would be stale on arrival, and every
// query would ask for its own.
const RefreshShare = 5

// AssumedLifetime is the lifetime given to a token whose answer states no usable one (no
// expires_in, zero, or negative): short, so that a token nobody said would last is not kept
// for ever. (If it ends sooner, the API's 401 forces a refresh; see Source.Reject.)
const AssumedLifetime = 5 * time.Minute

// MaxLifetime caps a token's stated lifetime (Entra ID issues at most 24 h): an expires_in of
// years is replaced after MaxLifetime like any other.
const MaxLifetime = 24 * time.Hour

// FailureTTL is how long a failed token fetch is remembered: callers within it get the same
// error without asking the token endpoint again, so that wrong credentials do not turn every
// query into a request to Entra ID. It is short because a fixed secret, or a network blip that
// has passed, should be noticed soon. It is also the least time between two forced refreshes
// (Source.Reject).
const FailureTTL = 10 * time.Second

// MaxFailureTTL caps how long a refusal carrying a Retry-After (Entra ID answers 429 with one
// when it throttles) is remembered: a garbled header must not lock the service out for hours.
const MaxFailureTTL = 5 * time.Minute

// ClientCredentials identify the service to Entra ID as an application.
type ClientCredentials struct {
	TenantID     string
	ClientID     string
	ClientSecret string
	// TokenURL is the token endpoint, e.g. https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token.
	TokenURL string
	// Scope is the API's scope, e.g. https://api.securitycenter.microsoft.com/.default.
	Scope string
}

// Identity names the application the upstream sees; caches and shared calls are keyed by it,
// so answers made as one identity never serve another. It contains no secret.
func (c ClientCredentials) Identity() string {
	return "app:" + c.TenantID + "/" + c.ClientID
}

// Source is the application's token source.
// A Source is safe for concurrent use by multiple goroutines.
//
// It keeps one token. While that token is valid, callers get it at once and never wait for a
// fetch: once the token is inside its early refresh margin (min(EarlyRefresh, a RefreshShare-th
// of its lifetime) before its expiry), the first caller starts a replacement in the background.
// Only a caller with no valid token waits for a fetch, until its ctx ends.
//
// At most one fetch runs at a time, on the context the Source was built with; concurrent
// callers share it, and a caller that stops waiting leaves the fetch running for the others. A
// failed fetch is remembered until its *Error's RetryAt (FailureTTL, longer if the token
// endpoint sent a Retry-After, up to MaxFailureTTL): callers within it get the same error at
// once, and the first caller after it fetches again; a successful fetch forgets the failure.
// While a replacement cannot be had, a token that has not yet expired is still served.
//
// A token the API refuses before its expiry is reported with Reject, which drops it and
// fetches a replacement (at most one such forced refresh per FailureTTL).
type Source struct {
	// Observe, if set before the Source is first used, learns the outcome of every request to
	// the token endpoint: nil when a token was issued, an *Error otherwise. Metrics count them
	// with it.
	Observe func(err error)

	// fetch asks the token endpoint for a new token, on the application's context.
	fetch func() (*oauth2.Token, error)

	mu          sync.Mutex
	tok         *oauth2.Token // latest token fetched, nil before the first success or once rejected
	refreshAt   time.Time     // tok is replaced in the background from then on
	failure     *Error        // latest failure, nil after a success
	failedUntil time.Time     // failure is answered without a fetch until then
	inflight    *fetchCall    // the fetch running now, nil if none
	lastForced  time.Time     // when Reject last forced a fetch
}

// fetchCall is one fetch that several callers wait for.
type fetchCall struct {
	done chan struct{} // closed once tok and err are set
	tok  *oauth2.Token
	err  error
}

// TokenSource returns the application's token source for c. Built on ctx, which must be the
// application's lifetime context (tokens are fetched with it long after any one request), it
// behaves as Source describes. Token requests use the *http.Client stored in ctx under
// oauth2.HTTPClient if there is one (a client with a 30 s timeout otherwise).
func TokenSource(ctx context.Context, c ClientCredentials) *Source {
	ctx = withHTTPClient(ctx)
	cfg := c.config(nil)
	// cfg.TokenSource caches with a 10 s margin and forgets failures at once: the Source does
	// its own caching around the raw fetch instead.
	return &Source{fetch: func() (*oauth2.Token, error) { return cfg.Token(ctx) }}
}

// withHTTPClient returns ctx with a client with a 30 s timeout for token requests, unless it
// carries one under oauth2.HTTPClient already.
func withHTTPClient(ctx context.Context) context.Context {
	if _, ok := ctx.Value(oauth2.HTTPClient).(*http.Client); ok {
		return ctx
	}
	return context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Timeout: 30 * time.Second})
}

// config is the token request for c: the client-credentials grant, or with params another
// grant of the same form (clientcredentials lets params replace grant_type).
func (c ClientCredentials) config(params url.Values) *clientcredentials.Config {
	return &clientcredentials.Config{
		ClientID:       c.ClientID,
		ClientSecret:   c.ClientSecret,
		TokenURL:       c.TokenURL,
		Scopes:         []string{c.Scope},
		AuthStyle:      oauth2.AuthStyleInParams,
		EndpointParams: params,
	}
}

// Token returns a valid token, or the error of the latest fetch. It implements
// oauth2.TokenSource; callers that have a context use TokenContext.
func (s *Source) Token() (*oauth2.Token, error) {
	return s.TokenContext(context.Background())
}

// TokenContext returns a valid token, or the *Error of the latest fetch. If a fetch is needed
// (no valid token) it waits for it until ctx ends, then returns ctx.Err(); the fetch itself
// does not depend on ctx, so one caller giving up does not fail the others.
func (s *Source) TokenContext(ctx context.Context) (*oauth2.Token, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	tok, call, err := s.acquire(time.Now())
	s.mu.Unlock()
	if call == nil {
		return tok, err
	}
	return call.wait(ctx)
}

// Reject reports that the API refused tok (401) before its expiry: revoked, or never good for
// it. Unless tok has already been replaced, the Source drops it, so that no caller gets it
// again, and fetches a replacement, which it returns (waiting as TokenContext does). The
// fetch is forced only once per FailureTTL and not while a failure is remembered: a token
// rejected within FailureTTL of the last forced fetch gets an *Error of kind Rejected,
// remembered for FailureTTL, since asking again at once would most likely earn the same token
// and the same refusal. If tok was already replaced, Reject returns the replacement (or the
// failure to get one) without another fetch, so many callers refused at once cause one fetch.
func (s *Source) Reject(ctx context.Context, tok *oauth2.Token) (*oauth2.Token, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	now := time.Now()
	if tok != nil && s.tok != nil && s.tok.AccessToken == tok.AccessToken {
		s.tok = nil // known bad: callers wait for the replacement rather than get it
		switch {
		case s.inflight != nil || now.Before(s.failedUntil):
			// a replacement is being fetched already, or the endpoint just failed: acquire says
		case !s.lastForced.IsZero() && now.Sub(s.lastForced) < FailureTTL:
			s.failure = &Error{Kind: Rejected, RetryAt: now.Add(FailureTTL)}
			s.failedUntil = s.failure.RetryAt
		default:
			s.lastForced = now
			s.start()
		}
	}
	tok, call, err := s.acquire(now)
	s.mu.Unlock()
	if call == nil {
		return tok, err
	}
	return call.wait(ctx)
}

// acquire answers a caller at now: the token, if valid (starting a background refresh once it
// is due); the remembered failure, within its window; or else the fetch to wait for (started
// if none runs). s.mu must be held.
func (s *Source) acquire(now time.Time) (*oauth2.Token, *fetchCall, error) {
	switch {
	case s.tok.Valid():
		if !now.Before(s.refreshAt) && s.inflight == nil && !now.Before(s.failedUntil) {
			s.start() // ahead of time, in the background: the caller does not wait for it
		}
		return s.tok, nil, nil
	case now.Before(s.failedUntil) && s.failure != nil:
		return nil, nil, s.failure
	}
	if s.inflight == nil {
		s.start()
	}
	return nil, s.inflight, nil
}

// start begins a fetch. s.mu must be held and no fetch running.
func (s *Source) start() {
	call := &fetchCall{done: make(chan struct{})}
	s.inflight = call
	go s.run(call)
}

// wait returns the call's outcome, or ctx.Err() if ctx ends first.
func (call *fetchCall) wait(ctx context.Context) (*oauth2.Token, error) {
	select {
	case <-call.done:
		return call.tok, call.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// run makes the fetch call and records its outcome for everyone.
func (s *Source) run(call *fetchCall) {
	tok, err := s.fetch()
	now := time.Now()
	if err == nil && (tok == nil || tok.AccessToken == "") {
		err = errors.New("the token endpoint answered without an access token")
	}
	var failure *Error
	if err != nil {
		failure = Classify(err, now)
		err = failure // a typed nil must not reach Observe as a non-nil error
	}
	if s.Observe != nil {
		s.Observe(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if failure != nil {
		s.failure, s.failedUntil = failure, failure.RetryAt
		call.tok, call.err = s.tok, nil
		if !s.tok.Valid() {
			call.tok, call.err = nil, failure
		}
	} else {
		lifetime := tok.Expiry.Sub(now)
		if tok.Expiry.IsZero() || lifetime <= 0 {
			lifetime = AssumedLifetime // no usable expiry stated
		}
		lifetime = min(lifetime, MaxLifetime)
		tok.Expiry = now.Add(lifetime)
		s.tok, s.refreshAt = tok, tok.Expiry.Add(-min(EarlyRefresh, lifetime/RefreshShare))
		s.failure, s.failedUntil = nil, time.Time{}
		call.tok = tok
	}
	s.inflight = nil
	close(call.done)
}

// HTTPClient returns a client that adds a bearer token from src to every request and sends it
// through base (http.DefaultTransport when nil). The token is fetched inside the request, so a
// caller that rations its requests (as defender.Client does with its limiter) should rather
// give the client the token source itself (defender.Options.Tokens) and a plain client; that
// is also what replaces a token the API refuses (Source.Reject), which this client does not.
func HTTPClient(src oauth2.TokenSource, base http.RoundTripper) *http.Client {
	if base == nil {
		base = http.DefaultTransport
	}
	return &http.Client{
		Transport: &oauth2.Transport{Source: src, Base: base},
		// The API does not redirect; refusing redirects keeps the bearer token from following
		// one to another host.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
