// Package auth gives the upstream client its identity: OAuth2 client credentials against
// Entra ID, with one token source for the application's lifetime.
package auth

import (
	"context"
	"net/http"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// EarlyRefresh is how long before its expiry a token is replaced, so that no request goes out
// with a token that expires in flight (Defender tokens live about an hour).
const EarlyRefresh = 5 * time.Minute

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

// TokenSource returns the application's token source: built on ctx, which must be the
// application's lifetime context (tokens are fetched with it long after any one request), it is
// safe for concurrent use, fetches at most one token at a time, and replaces a token
// EarlyRefresh before it expires. Token requests use the *http.Client stored in ctx under
// oauth2.HTTPClient if there is one (a client with a 30 s timeout otherwise).
func TokenSource(ctx context.Context, c ClientCredentials) oauth2.TokenSource {
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
	// cfg.TokenSource already caches with a 10 s margin, which would hide our earlier refresh:
	// cache the raw fetch ourselves instead.
	fetch := tokenFunc(func() (*oauth2.Token, error) { return cfg.Token(ctx) })
	return oauth2.ReuseTokenSourceWithExpiry(nil, fetch, EarlyRefresh)
}

// HTTPClient returns a client that adds a bearer token from src to every request and sends it
// through base (http.DefaultTransport when nil).
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

// tokenFunc adapts a function to oauth2.TokenSource.
type tokenFunc func() (*oauth2.Token, error)

func (f tokenFunc) Token() (*oauth2.Token, error) { return f() }
