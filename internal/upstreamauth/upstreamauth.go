// Package upstreamauth gives the upstream (Defender) client its identity: OAuth2 client
// credentials against Entra ID, with one token source for the application's lifetime. Who calls
// this service is another matter (package principal).
package upstreamauth

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// EarlyRefresh is how long before its expiry a token is replaced, so that no request goes out
// with a token that expires in flight (Defender tokens live about an hour).
const EarlyRefresh = 5 * time.Minute

// FailureTTL is how long a failed token fetch is remembered: callers within it get the same
// error without asking the token endpoint again, so that wrong credentials do not turn every
// query into a request to Entra ID. It is short because a fixed secret, or a network blip that
// has passed, should be noticed soon.
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
// It keeps one token and replaces it EarlyRefresh before it expires. At most one fetch runs at
// a time, on the context the Source was built with; concurrent callers share it, and a caller
// that stops waiting (its ctx ended) leaves the fetch running for the others. A failed fetch
// is remembered for FailureTTL (longer if the token endpoint sent a Retry-After, up to
// MaxFailureTTL): callers within that window get the same error at once, and the first caller
// after it fetches again; a successful fetch forgets the failure. While a replacement cannot be
// had, a token that has not yet expired is still served.
type Source struct {
	// Observe, if set before the Source is first used, learns the outcome of every request to
	// the token endpoint (nil error: a token was issued). Metrics count them with it.
	Observe func(err error)

	// fetch asks the token endpoint for a new token, on the application's context.
	fetch func() (*oauth2.Token, error)

	mu          sync.Mutex
	tok         *oauth2.Token // latest token fetched, nil before the first success
	failure     error         // latest fetch's error, nil after a success
	failedUntil time.Time     // failure is answered without a fetch until then
	inflight    *fetchCall    // the fetch running now, nil if none
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
	if _, ok := ctx.Value(oauth2.HTTPClient).(*http.Client); !ok {
		ctx = context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Timeout: 30 * time.Second})
	}
	cfg := &clientcredentials.Config{
		ClientID:     c.ClientID,
		ClientSecret: c.ClientSecret,
		TokenURL:     c.TokenURL,
		Scopes:       []string{c.Scope},
		AuthStyle:    oauth2.AuthStyleInParams,
	}
	// cfg.TokenSource caches with a 10 s margin and forgets failures at once: the Source does
	// its own caching around the raw fetch instead.
	return &Source{fetch: func() (*oauth2.Token, error) { return cfg.Token(ctx) }}
}

// Token returns a valid token, or the error of the latest fetch. It implements
// oauth2.TokenSource; callers that have a context use TokenContext.
func (s *Source) Token() (*oauth2.Token, error) {
	return s.TokenContext(context.Background())
}

// TokenContext returns a valid token, or the error of the latest fetch: an
// *oauth2.RetrieveError when the token endpoint refused the credentials. If a fetch is needed
// it waits for it until ctx ends, then returns ctx.Err(); the fetch itself does not depend on
// ctx, so one caller giving up does not fail the others.
func (s *Source) TokenContext(ctx context.Context) (*oauth2.Token, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	now := time.Now()
	switch {
	case fresh(s.tok, now):
		tok := s.tok
		s.mu.Unlock()
		return tok, nil
	case now.Before(s.failedUntil):
		tok, err := s.fallback()
		s.mu.Unlock()
		return tok, err
	}
	call := s.inflight
	if call == nil {
		call = &fetchCall{done: make(chan struct{})}
		s.inflight = call
		go s.run(call)
	}
	s.mu.Unlock()

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
	if err == nil && (tok == nil || tok.AccessToken == "") {
		err = errors.New("auth: the token endpoint answered without an access token")
	}
	if s.Observe != nil {
		s.Observe(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		now := time.Now()
		s.failure, s.failedUntil = err, now.Add(failureTTL(err, now))
		call.tok, call.err = s.fallback()
	} else {
		s.tok, s.failure, s.failedUntil = tok, nil, time.Time{}
		call.tok = tok
	}
	s.inflight = nil
	close(call.done)
}

// fallback is the answer while a failure is remembered: the previous token while it has not
// expired, the failure otherwise. s.mu must be held.
func (s *Source) fallback() (*oauth2.Token, error) {
	if s.tok != nil && s.tok.Valid() {
		return s.tok, nil
	}
	return nil, s.failure
}

// fresh reports whether tok may be used without fetching a replacement: it expires more than
// EarlyRefresh after now, or never.
func fresh(tok *oauth2.Token, now time.Time) bool {
	return tok != nil && tok.AccessToken != "" && (tok.Expiry.IsZero() || tok.Expiry.Sub(now) > EarlyRefresh)
}

// failureTTL is how long err is remembered: FailureTTL, or the token endpoint's Retry-After if
// that is longer, up to MaxFailureTTL.
func failureTTL(err error, now time.Time) time.Duration {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.Response == nil {
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

// HTTPClient returns a client that adds a bearer token from src to every request and sends it
// through base (http.DefaultTransport when nil). The token is fetched inside the request, so a
// caller that rations its requests (as defender.Client does with its limiter) should rather
// give the client the token source itself (defender.Options.Tokens) and a plain client.
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
