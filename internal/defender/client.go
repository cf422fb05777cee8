// Package defender is a client for the Microsoft Defender for Endpoint REST API: the
// endpoints mdegraph serves (machines, a device's logon users and alerts, a user's machines), typed errors decoded from Defender's error bodies, every call
// passed through a rate limiter, and bounded retries that spend quota like any call. The
// bearer token is obtained before a call takes its quota, so a sign-in failure spends none; a
// token the API refuses (401) before its expiry is replaced and the call retried once.
package defender

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/mdegraph/mdegraph/internal/upstreamauth"
)

// Endpoint names an upstream endpoint family: the unit Defender counts its rate limits in.
type Endpoint string

// The endpoint families the client calls.
const (
	// EndpointMachine is GET /api/machines/{id}.
	EndpointMachine Endpoint = "machines.get"
	// EndpointMachines is GET /api/machines (OData list).
	EndpointMachines Endpoint = "machines.list"
	// EndpointLogonUsers is GET /api/machines/{id}/logonusers.
	EndpointLogonUsers Endpoint = "machines.logonusers"
	// EndpointAlerts is GET /api/machines/{id}/alerts.
	EndpointAlerts Endpoint = "machines.alerts"
	// EndpointUserMachines is GET /api/users/{accountName}/machines.
	EndpointUserMachines Endpoint = "users.machines"
)

// Endpoints lists every endpoint family the client calls.
var Endpoints = []Endpoint{EndpointMachine, EndpointMachines, EndpointLogonUsers, EndpointAlerts, EndpointUserMachines}

// Limiter gates every upstream call of an endpoint family (quota.Set implements it). Take
// returns when a call may go out, with the time its slot was granted, or an error (for
// instance a quota error with a retry delay) when it may not in time. Pause stops all calls of
// the family until the given time, after the API answered 429. Refund gives back the slot
// granted at a time Take returned, when the call never reached the API (the connection could
// not be made), so that quota Defender never counted is not lost.
type Limiter interface {
	Take(ctx context.Context, family string) (time.Time, error)
	Pause(family string, until time.Time)
	Refund(family string, grantedAt time.Time)
}

// TokenSource gives the client the bearer token of its API calls. *upstreamauth.Source
// implements it.
type TokenSource interface {
	// TokenContext returns a token that is valid now, or an error (an *upstreamauth.Error, or
	// anything upstreamauth.Classify reads). It stops waiting when ctx ends.
	TokenContext(ctx context.Context) (*oauth2.Token, error)
	// Reject reports that the API refused tok (401) before its expiry, and returns the token to
	// retry with, or why there is none (an *upstreamauth.Error of kind Rejected when a new
	// token was issued moments ago).
	Reject(ctx context.Context, tok *oauth2.Token) (*oauth2.Token, error)
}

// Call describes one HTTP attempt, for metrics.
type Call struct {
	Endpoint Endpoint
	// Status is the HTTP status, or 0 when no answer came.
	Status   int
	Duration time.Duration
	// Attempt counts from 1 within one client method call.
	Attempt int
	// CorrelationID is Defender's error target, when the answer had one.
	CorrelationID string
	Err           error
}

// Options configure a Client. Only BaseURL and HTTPClient matter for most callers.
type Options struct {
	// BaseURL is the API base URL without the /api suffix, e.g. https://api.securitycenter.microsoft.com.
	BaseURL string
	// HTTPClient sends the requests (default http.DefaultClient). Without Tokens, it must add
	// the bearer token itself (upstreamauth.HTTPClient); a token failure then happens inside an attempt,
	// after the limiter granted it.
	HTTPClient *http.Client
	// Tokens, if set, gives the bearer token of every attempt, and HTTPClient must not add one.
	// The client asks it before the limiter, so a token failure takes no quota and is no API
	// call (Observe does not see it, Response.Attempts stays 0): the call fails at once with an
	// error wrapping an *upstreamauth.Error, and is not retried (the token source remembers
	// failures itself). A 401 answer (which did spend quota: Defender counted it) is reported
	// to Tokens.Reject and the call retried once with the replacement, through the limiter like
	// any attempt. The client then follows no redirect, so the token cannot follow one to
	// another host.
	Tokens TokenSource
	// Limiter gates every attempt; nil means no client-side limiting.
	Limiter Limiter
	// MaxRetries bounds the retries of a GET after a 5xx answer or a network error (default 2; negative: none).
	MaxRetries int
	// MaxRateLimitRetries bounds the retries after 429 answers (default 2; negative: none).
	MaxRateLimitRetries int
	// RetryBaseDelay and RetryMaxDelay shape the jittered exponential backoff (defaults 200ms and 3s).
	RetryBaseDelay, RetryMaxDelay time.Duration
	// AttemptTimeout bounds one HTTP attempt (default 20s).
	AttemptTimeout time.Duration
	// Logger receives one debug line per attempt (default: discard).
	Logger *slog.Logger
	// Observe, if set, is called after every attempt.
	Observe func(Call)
	// UserAgent is sent with every request.
	UserAgent string
}

// Client calls the Defender API. It is safe for concurrent use.
type Client struct {
	base    string
	hc      *http.Client
	tokens  TokenSource
	limiter Limiter
	opts    Options
	logger  *slog.Logger

	// Machines is the machines area of the API.
	Machines *MachinesService
	// Users is the users area of the API.
	Users *UsersService
}

// Response describes the outcome of one client method call.
type Response struct {
	// StatusCode is the status of the last attempt (0 if none answered).
	StatusCode int
	// Attempts is the number of HTTP attempts made (retries included).
	Attempts int
}

// maxBody bounds a successful answer: a full page of 10000 machines is about 25 MB.
const maxBody = 64 << 20

// New returns a Client for opts.
func New(opts Options) (*Client, error) {
	base := strings.TrimRight(opts.BaseURL, "/")
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("defender: API base URL %q must be an absolute http(s) URL", opts.BaseURL)
	}
	if strings.HasSuffix(u.Path, "/api") {
		return nil, fmt.Errorf("defender: API base URL %q must not end in /api (the client adds it)", opts.BaseURL)
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = http.DefaultClient
	}
	if opts.MaxRetries == 0 {
		opts.MaxRetries = 2
	}
	if opts.MaxRateLimitRetries == 0 {
		opts.MaxRateLimitRetries = 2
	}
	if opts.RetryBaseDelay <= 0 {
		opts.RetryBaseDelay = 200 * time.Millisecond
	}
	if opts.RetryMaxDelay <= 0 {
		opts.RetryMaxDelay = 3 * time.Second
	}
	if opts.AttemptTimeout <= 0 {
		opts.AttemptTimeout = 20 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "mdegraph"
	}
	hc := opts.HTTPClient
	if opts.Tokens != nil {
		// The API does not redirect; refusing redirects keeps the bearer token we add from
		// following one to another host.
		noRedirect := *hc
		noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		hc = &noRedirect
	}
	traced := *hc // each attempt an HTTP client span, when the caller's span records
	traced.Transport = newTracedTransport(hc.Transport)
	hc = &traced
	c := &Client{base: base, hc: hc, tokens: opts.Tokens, limiter: opts.Limiter, opts: opts, logger: opts.Logger}
	c.Machines = &MachinesService{client: c}
	c.Users = &UsersService{client: c}
	return c, nil
}

// get calls GET base+path?query for endpoint and decodes the JSON answer into v. Before every
// attempt it gets the token, then waits for the limiter; it pauses the endpoint family on 429,
// and retries 429s, 5xx answers and network errors a bounded number of times, and a 401 once
// with a new token. A token failure ends the call before the limiter is asked. The call is one
// span when the caller's span records (see startCall).
func (c *Client) get(ctx context.Context, endpoint Endpoint, path, query string, v any) (*Response, error) {
	ctx, span := startCall(ctx, endpoint)
	resp, err := c.call(ctx, endpoint, path, query, v)
	endCall(span, resp, err)
	return resp, err
}

// call is get without its span.
func (c *Client) call(ctx context.Context, endpoint Endpoint, path, query string, v any) (*Response, error) {
	u := c.base + path
	if query != "" {
		u += "?" + query
	}
	resp := &Response{}
	var transient, limited int
	reauthorized := false
	for {
		if err := ctx.Err(); err != nil {
			return resp, err
		}
		tok, err := c.token(ctx, endpoint)
		if err != nil {
			return resp, err
		}
		var granted time.Time
		if c.limiter != nil {
			if granted, err = c.limiter.Take(ctx, string(endpoint)); err != nil {
				if ctxErr := ctx.Err(); ctxErr != nil {
					return resp, ctxErr
				}
				return resp, &QuotaError{Endpoint: endpoint, Err: err}
			}
			if tok != nil && !tok.Valid() {
				// The wait outlasted the token (a QUOTA_MAX_WAIT longer than the token source's
				// early refresh): take the replacement rather than send an expired one.
				if tok, err = c.token(ctx, endpoint); err != nil {
					return resp, err
				}
			}
		}
		resp.Attempts++
		status, err := c.attempt(ctx, endpoint, u, tok, resp.Attempts, v)
		resp.StatusCode = status
		if err == nil {
			return resp, nil
		}
		if c.limiter != nil && neverSent(err) {
			c.limiter.Refund(string(endpoint), granted)
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return resp, ctxErr
		}

		var rl *RateLimitError
		var unavailable *UnavailableError
		var er *ErrorResponse
		switch {
		case errors.As(err, &rl):
			// Our limiter keeps inside Defender's published limits, so a 429 means something
			// else spends the same quota (another app or replica with these credentials) or the
			// limits changed: worth an operator's attention.
			c.logger.WarnContext(ctx, "Defender answered 429 although the service kept within its limits: something else may be using this application's quota; pausing the endpoint",
				"endpoint", string(endpoint), "retry_after", rl.RetryAfter.String(), "correlation_id", rl.Target)
			until := time.Now().Add(rl.RetryAfter)
			if c.limiter != nil {
				c.limiter.Pause(string(endpoint), until)
			}
			if limited >= c.opts.MaxRateLimitRetries {
				return resp, err
			}
			limited++
			if c.limiter == nil {
				// Without a limiter to hold us back, wait here, but only if the caller can.
				if !c.sleep(ctx, rl.RetryAfter) {
					return resp, ctxErrOr(ctx, err)
				}
			}
		case errors.As(err, &er) && er.StatusCode == http.StatusUnauthorized && tok != nil:
			// The token stopped being good before its expiry (revoked, or never good here).
			// The source drops it and fetches another, once for all callers refused at once;
			// the call is retried once. A second 401 is reported too, so that nobody else
			// sends that token, but not retried.
			if _, rerr := c.tokens.Reject(ctx, tok); reauthorized || rerr != nil {
				if rerr != nil {
					if ctxErr := ctx.Err(); ctxErr != nil {
						return resp, ctxErr
					}
					return resp, fmt.Errorf("%w; and no new token: %w", err, upstreamauth.Classify(rerr, time.Now()))
				}
				return resp, err
			}
			reauthorized = true
			c.logger.DebugContext(ctx, "Defender refused the token before its expiry; retrying with a new one",
				"endpoint", string(endpoint), "correlation_id", er.Target)
		case errors.As(err, &unavailable) && !unavailable.badAnswer, errors.As(err, &er) && er.StatusCode >= 500:
			if transient >= c.opts.MaxRetries {
				return resp, err
			}
			transient++
			if !c.sleep(ctx, c.backoff(transient)) {
				return resp, ctxErrOr(ctx, err)
			}
		default:
			return resp, err
		}
	}
}

// token returns the bearer token for the next attempt (nil without Options.Tokens), or the
// error that ends the call.
func (c *Client) token(ctx context.Context, endpoint Endpoint) (*oauth2.Token, error) {
	if c.tokens == nil {
		return nil, nil
	}
	tok, err := c.tokens.TokenContext(ctx)
	if err == nil {
		return tok, nil
	}
	err = tokenError(ctx, endpoint, err)
	c.logger.DebugContext(ctx, "no token for the upstream call", "endpoint", string(endpoint), "error", err.Error())
	return nil, err
}

// tokenError wraps an error from the token source: an *upstreamauth.Error (what the token
// endpoint answered, classified), or after a cancellation ctx.Err().
func tokenError(ctx context.Context, endpoint Endpoint, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	return fmt.Errorf("defender %s: get a token: %w", endpoint, upstreamauth.Classify(err, time.Now()))
}

// attempt makes one HTTP request, with tok as its bearer token if not nil, and decodes a 2xx
// answer into v.
func (c *Client) attempt(ctx context.Context, endpoint Endpoint, u string, tok *oauth2.Token, n int, v any) (int, error) {
	actx, cancel := context.WithTimeout(ctx, c.opts.AttemptTimeout)
	defer cancel()
	actx = attemptContext(actx, endpoint, n)
	req, err := http.NewRequestWithContext(actx, http.MethodGet, u, nil)
	if err != nil {
		return 0, fmt.Errorf("defender %s: build request: %w", endpoint, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.opts.UserAgent)
	if tok != nil {
		tok.SetAuthHeader(req)
	}

	start := time.Now()
	httpResp, err := c.hc.Do(req)
	call := Call{Endpoint: endpoint, Attempt: n}
	if err != nil {
		err = c.transportError(ctx, endpoint, err)
	} else {
		call.Status = httpResp.StatusCode
		err = checkResponse(endpoint, httpResp, time.Now())
		if err == nil {
			err = decodeBody(endpoint, httpResp.Body, v)
		}
		// Drain a little so the connection can be reused, then close.
		_, _ = io.CopyN(io.Discard, httpResp.Body, 4<<10)
		httpResp.Body.Close()
	}
	call.Duration = time.Since(start)
	call.Err = err
	var er *ErrorResponse
	if errors.As(err, &er) {
		call.CorrelationID = er.Target
	}
	c.logger.DebugContext(ctx, "upstream call", "endpoint", string(endpoint), "status", call.Status,
		"attempt", n, "duration", call.Duration, "correlation_id", call.CorrelationID, "error", errString(err))
	if c.opts.Observe != nil {
		c.opts.Observe(call)
	}
	traceFailedAttempt(ctx, call)
	return call.Status, err
}

// neverSent reports whether an attempt failed before its request could reach the API: the
// connection could not be made (refused, unreachable, a name that does not resolve). Defender
// did not count such a call, so its quota slot is given back.
func neverSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// transportError classifies an error from http.Client.Do: a token failure (from an
// HTTPClient that adds the token itself) wraps an *upstreamauth.Error, anything else (refused
// connection, timeout) is an *UnavailableError.
func (c *Client) transportError(ctx context.Context, endpoint Endpoint, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	var re *oauth2.RetrieveError
	var te *upstreamauth.Error
	if errors.As(err, &re) || errors.As(err, &te) {
		return tokenError(ctx, endpoint, err)
	}
	// url.Error repeats the URL; keep the cause, the endpoint says where.
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return &UnavailableError{Endpoint: endpoint, Err: err}
}

func decodeBody(endpoint Endpoint, body io.Reader, v any) error {
	lr := &io.LimitedReader{R: body, N: maxBody + 1}
	if err := json.NewDecoder(lr).Decode(v); err != nil {
		if lr.N <= 0 {
			return &UnavailableError{Endpoint: endpoint, Err: fmt.Errorf("answer larger than %d bytes", maxBody), badAnswer: true}
		}
		return &UnavailableError{Endpoint: endpoint, Err: fmt.Errorf("decode answer: %w", err), badAnswer: true}
	}
	return nil
}

// backoff is the full-jitter exponential delay before retry n (1-based).
func (c *Client) backoff(n int) time.Duration {
	d := c.opts.RetryBaseDelay << (n - 1)
	if d <= 0 || d > c.opts.RetryMaxDelay {
		d = c.opts.RetryMaxDelay
	}
	return d/2 + rand.N(d/2+1)
}

// ctxErrOr returns ctx.Err() once ctx has ended (the more useful error after a cancellation),
// err otherwise.
func ctxErrOr(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	return err
}

// sleep waits d unless ctx ends first or would end before d has passed; it reports whether
// the full wait happened.
func (c *Client) sleep(ctx context.Context, d time.Duration) bool {
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < d {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
