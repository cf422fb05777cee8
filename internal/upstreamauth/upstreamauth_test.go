package upstreamauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"

	"golang.org/x/oauth2"
)

const (
	tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	client = "00000000-1111-2222-3333-444444444444"
	secret = "Zx8Q~s3cr3t.Value_9+/=" // characters that need form encoding
	scope  = "https://api.securitycenter.microsoft.com/.default"
)

func assertEqual[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s: got %v, want %v", what, got, want)
	}
}

// tokenEndpoint is a fake Entra ID token endpoint. It answers tokens "tok-1", "tok-2", ...
// living expiresIn seconds, and records every request's form.
type tokenEndpoint struct {
	expiresIn int
	// hold, if set, is called before answering (under no lock), to make fetches slow.
	hold func()

	mu    sync.Mutex
	forms []url.Values
	reqs  []*http.Request
}

func (e *tokenEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if e.hold != nil {
		e.hold()
	}
	e.mu.Lock()
	e.forms = append(e.forms, r.PostForm)
	e.reqs = append(e.reqs, r)
	n := len(e.forms)
	e.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	json.NewEncoder(w).Encode(map[string]any{
		"token_type": "Bearer", "expires_in": e.expiresIn, "ext_expires_in": e.expiresIn,
		"access_token": fmt.Sprintf("tok-%d", n),
	})
}

func (e *tokenEndpoint) fetches() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.forms)
}

// apiEndpoint records the Authorization header of every API request.
type apiEndpoint struct {
	mu    sync.Mutex
	auths []string
}

func (a *apiEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.auths = append(a.auths, r.Header.Get("Authorization"))
	a.mu.Unlock()
	io.WriteString(w, `{"value":[]}`)
}

func (a *apiEndpoint) seen() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.auths...)
}

// setup starts a token endpoint (under /{tenant}/oauth2/v2.0/token) and an API server, and
// returns an HTTP client for the API authenticated against the token endpoint.
func setup(t *testing.T, tokens *tokenEndpoint) (hc *http.Client, apiURL string, api *apiEndpoint) {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("POST /"+tenant+"/oauth2/v2.0/token", tokens)
	tokenSrv := httptest.NewServer(mux)
	t.Cleanup(tokenSrv.Close)
	api = &apiEndpoint{}
	apiSrv := httptest.NewServer(api)
	t.Cleanup(apiSrv.Close)

	src := TokenSource(t.Context(), ClientCredentials{
		TenantID: tenant, ClientID: client, ClientSecret: secret,
		TokenURL: tokenSrv.URL + "/" + tenant + "/oauth2/v2.0/token", Scope: scope,
	})
	return HTTPClient(src, apiSrv.Client().Transport), apiSrv.URL, api
}

func get(t *testing.T, hc *http.Client, u string) {
	t.Helper()
	resp, err := hc.Get(u + "/api/machines")
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET: status %d", resp.StatusCode)
	}
}

func TestTokenRequest(t *testing.T) {
	t.Parallel()
	tokens := &tokenEndpoint{expiresIn: 3599}
	hc, apiURL, _ := setup(t, tokens)
	get(t, hc, apiURL)

	if tokens.fetches() != 1 {
		t.Fatalf("token fetches: got %d, want 1", tokens.fetches())
	}
	r, form := tokens.reqs[0], tokens.forms[0]
	assertEqual(t, "method", r.Method, http.MethodPost)
	assertEqual(t, "content type", r.Header.Get("Content-Type"), "application/x-www-form-urlencoded")
	if _, _, ok := r.BasicAuth(); ok {
		t.Error("credentials sent as HTTP basic auth: want them in the form (AuthStyleInParams)")
	}
	want := url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {client},
		"client_secret": {secret},
		"scope":         {scope},
	}
	if len(form) != len(want) {
		t.Errorf("form %v: want exactly %v", form, want)
	}
	for k, v := range want {
		assertEqual(t, "form "+k, form.Get(k), v[0])
		assertEqual(t, "form "+k+" count", len(form[k]), 1)
	}
}

func TestTokenReuse(t *testing.T) {
	t.Parallel()
	const calls = 5
	tests := []struct {
		name      string
		expiresIn int
	}{
		// A token living an hour serves every call.
		{"one hour", 3599},
		// A token living less than EarlyRefresh is not stale on arrival: its early margin is a
		// share of its lifetime. (Replacing it on every call made each query fetch its own.)
		{"shorter than EarlyRefresh", 240},
		// No expires_in: an assumed lifetime, which these calls are well within.
		{"no expiry", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tokens := &tokenEndpoint{expiresIn: tt.expiresIn}
			hc, apiURL, api := setup(t, tokens)
			for range calls {
				get(t, hc, apiURL)
			}
			assertEqual(t, "token fetches", tokens.fetches(), 1)
			auths := api.seen()
			assertEqual(t, "API calls", len(auths), calls)
			for i, a := range auths {
				assertEqual(t, fmt.Sprintf("call %d Authorization", i+1), a, "Bearer tok-1")
			}
		})
	}
}

func TestConcurrentRequestsFetchOnce(t *testing.T) {
	t.Parallel()
	const n = 16
	var started sync.WaitGroup
	started.Add(n)
	// The first (and only) token fetch is held until every request has been started, so they
	// all find the token source busy.
	tokens := &tokenEndpoint{expiresIn: 3599, hold: started.Wait}
	hc, apiURL, api := setup(t, tokens)

	gate := make(chan struct{})
	var done sync.WaitGroup
	for range n {
		done.Go(func() {
			<-gate
			started.Done()
			get(t, hc, apiURL)
		})
	}
	close(gate) // the barrier: all requests go at once
	done.Wait()

	assertEqual(t, "token fetches", tokens.fetches(), 1)
	for _, a := range api.seen() {
		assertEqual(t, "Authorization", a, "Bearer tok-1")
	}
	assertEqual(t, "API calls", len(api.seen()), n)
}

// TestEarlyRefresh: a token is replaced in the background once it is inside its early margin,
// min(EarlyRefresh, a RefreshShare-th of its lifetime) before its expiry; the caller that
// notices gets the current token without waiting.
func TestEarlyRefresh(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		expiresIn int
		refreshAt time.Duration // after the fetch
	}{
		{"an hour: EarlyRefresh before expiry", 3599, 3599*time.Second - EarlyRefresh},
		{"302 s: a fifth of the lifetime, not the whole of it", 302, 302 * time.Second * 4 / 5},
		{"240 s", 240, 192 * time.Second},
		{"no expires_in: the assumed lifetime", 0, AssumedLifetime * 4 / 5},
		{"a negative expires_in: the assumed lifetime", -10, AssumedLifetime * 4 / 5},
		{"years: MaxLifetime", 1 << 30, MaxLifetime - EarlyRefresh},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				tr := &scriptedTokens{answers: []tokenAnswer{issue(tt.expiresIn)}}
				src := scriptedSource(t, tr)
				token := func() string {
					t.Helper()
					tok, err := src.Token()
					if err != nil {
						t.Fatalf("Token: %v", err)
					}
					return tok.AccessToken
				}

				assertEqual(t, "first token", token(), "tok-1")
				// The token is kept until its refresh point...
				time.Sleep(tt.refreshAt - time.Second)
				assertEqual(t, "token 1 s before the refresh point", token(), "tok-1")
				synctest.Wait()
				assertEqual(t, "fetches", tr.fetches(), 1)
				// ...where the caller still gets it, and a replacement is fetched behind it...
				time.Sleep(2 * time.Second)
				assertEqual(t, "token 1 s after the refresh point", token(), "tok-1")
				synctest.Wait()
				assertEqual(t, "fetches", tr.fetches(), 2)
				// ...which the next caller gets, and keeps getting.
				assertEqual(t, "the next caller", token(), "tok-2")
				assertEqual(t, "the new token is reused", token(), "tok-2")
				synctest.Wait()
				assertEqual(t, "fetches", tr.fetches(), 2)
			})
		})
	}
}

// TestRefreshNeverBlocksAValidToken is the reproduction of a slow refresh: a token living 302 s
// (inside EarlyRefresh at once) and a token endpoint that hangs afterwards. Callers holding a
// valid token get it at once all the while; only once it has expired do they wait, and then
// no longer than their context allows.
func TestRefreshNeverBlocksAValidToken(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		hang := make(chan struct{})
		defer close(hang)
		tr := &scriptedTokens{answers: []tokenAnswer{issue(302), func(n int, req *http.Request) (*http.Response, error) {
			<-hang
			return issue(302)(n, req)
		}}}
		src := scriptedSource(t, tr)
		for elapsed := time.Duration(0); elapsed < 300*time.Second; elapsed += 10 * time.Second {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			start := time.Now()
			tok, err := src.TokenContext(ctx)
			cancel()
			if err != nil || tok.AccessToken != "tok-1" {
				t.Fatalf("at %v: token %v, error %v; want tok-1", elapsed, tok, err)
			}
			if waited := time.Since(start); waited != 0 {
				t.Fatalf("at %v: waited %v for a valid token", elapsed, waited)
			}
			time.Sleep(10 * time.Second)
		}
		assertEqual(t, "fetches (the first, and one hanging refresh)", tr.fetches(), 2)
		// tok-1 has expired (302 s): now a caller waits, bounded by its context.
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		if _, err := src.TokenContext(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("after expiry: error %v, want the caller's deadline", err)
		}
		assertEqual(t, "fetches after expiry (the hanging one is shared)", tr.fetches(), 2)
	})
}

func TestTokenError(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}`)
	}))
	t.Cleanup(srv.Close)
	src := TokenSource(t.Context(), ClientCredentials{ClientID: client, ClientSecret: secret, TokenURL: srv.URL, Scope: scope})
	_, err := src.Token()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v (%T), want an *Error", err, err)
	}
	assertEqual(t, "kind", e.Kind, Refused)
	assertEqual(t, "error code", e.Code, "invalid_client")
	assertEqual(t, "status", e.StatusCode, http.StatusUnauthorized)
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		t.Errorf("got %v, want it to wrap the *oauth2.RetrieveError", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error %q contains the secret", err)
	}
}

func TestIdentity(t *testing.T) {
	t.Parallel()
	c := ClientCredentials{TenantID: tenant, ClientID: client, ClientSecret: secret}
	id := c.Identity()
	assertEqual(t, "identity", id, "app:"+tenant+"/"+client)
	if strings.Contains(id, secret) {
		t.Errorf("identity %q contains the secret", id)
	}
	other := ClientCredentials{TenantID: tenant, ClientID: "another-app", ClientSecret: secret}
	if other.Identity() == id {
		t.Error("two applications share an identity")
	}
}

func TestHTTPClient_DefaultTransport(t *testing.T) {
	t.Parallel()
	hc := HTTPClient(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "x"}), nil)
	tr, ok := hc.Transport.(*oauth2.Transport)
	if !ok {
		t.Fatalf("transport %T, want *oauth2.Transport", hc.Transport)
	}
	assertEqual(t, "base", tr.Base, http.DefaultTransport)
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	t.Parallel()
	var leaked sync.Map
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked.Store("authorization", r.Header.Get("Authorization"))
	}))
	defer elsewhere.Close()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+"/steal", http.StatusFound)
	}))
	defer api.Close()
	tokens := httptest.NewServer(&tokenEndpoint{expiresIn: 3599})
	defer tokens.Close()
	src := TokenSource(t.Context(), ClientCredentials{TenantID: tenant, ClientID: client, ClientSecret: secret, TokenURL: tokens.URL, Scope: scope})
	resp, err := HTTPClient(src, nil).Get(api.URL + "/api/machines")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	assertEqual(t, "status", resp.StatusCode, http.StatusFound)
	if v, ok := leaked.Load("authorization"); ok {
		t.Errorf("the redirect was followed and the other host got Authorization %q", v)
	}
}

// refusal is Entra ID's answer to a wrong client secret.
const refusal = `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.","error_codes":[7000215]}`

// tokenAnswer is one scripted answer of the token endpoint.
type tokenAnswer func(n int, req *http.Request) (*http.Response, error)

// issue answers a token "tok-n" living expiresIn seconds.
func issue(expiresIn int) tokenAnswer {
	return func(n int, req *http.Request) (*http.Response, error) {
		return jsonAnswer(req, http.StatusOK, fmt.Sprintf(`{"token_type":"Bearer","expires_in":%d,"access_token":"tok-%d"}`, expiresIn, n)), nil
	}
}

// refuse answers status with Entra ID's invalid_client body and header key/value pairs.
func refuse(status int, kv ...string) tokenAnswer {
	return func(n int, req *http.Request) (*http.Response, error) {
		resp := jsonAnswer(req, status, refusal)
		for i := 0; i+1 < len(kv); i += 2 {
			resp.Header.Set(kv[i], kv[i+1])
		}
		return resp, nil
	}
}

// answerWith answers status with body of contentType and header key/value pairs.
func answerWith(status int, contentType, body string, kv ...string) tokenAnswer {
	return func(n int, req *http.Request) (*http.Response, error) {
		resp := jsonAnswer(req, status, body)
		resp.Header.Set("Content-Type", contentType)
		for i := 0; i+1 < len(kv); i += 2 {
			resp.Header.Set(kv[i], kv[i+1])
		}
		return resp, nil
	}
}

func unreachable(int, *http.Request) (*http.Response, error) {
	return nil, errors.New("dial tcp 20.190.0.1:443: connect: connection refused")
}

func jsonAnswer(req *http.Request, status int, body string) *http.Response {
	return &http.Response{
		StatusCode: status, Status: http.StatusText(status), Request: req,
		Header: http.Header{"Content-Type": {"application/json; charset=utf-8"}},
		Body:   io.NopCloser(strings.NewReader(body)),
	}
}

// scriptedTokens is an in-memory token endpoint (usable in a synctest bubble): fetch n gets
// answers[n-1], the last answer repeating. With hold set, every fetch first waits for it to be
// closed.
type scriptedTokens struct {
	answers []tokenAnswer
	hold    chan struct{}

	mu sync.Mutex
	n  int
}

func (s *scriptedTokens) RoundTrip(req *http.Request) (*http.Response, error) {
	if s.hold != nil {
		<-s.hold
	}
	s.mu.Lock()
	s.n++
	n := s.n
	s.mu.Unlock()
	return s.answers[min(n, len(s.answers))-1](n, req)
}

func (s *scriptedTokens) fetches() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// scriptedSource returns a Source whose token endpoint is tr.
func scriptedSource(t *testing.T, tr *scriptedTokens) *Source {
	t.Helper()
	ctx := context.WithValue(t.Context(), oauth2.HTTPClient, &http.Client{Transport: tr})
	return TokenSource(ctx, ClientCredentials{TenantID: tenant, ClientID: client, ClientSecret: secret,
		TokenURL: "https://login.example.test/" + tenant + "/oauth2/v2.0/token", Scope: scope})
}

// TestFailureIsRemembered: callers that ask while a failed fetch is remembered (concurrently
// with it, or after it within the window) share its error and cause no other request to the
// token endpoint; the first caller after the window fetches again.
func TestFailureIsRemembered(t *testing.T) {
	t.Parallel()
	const callers = 20
	tests := []struct {
		name       string
		answer     tokenAnswer
		wantWindow time.Duration
		wantKind   Kind
	}{
		{"refused credentials", refuse(http.StatusUnauthorized), FailureTTL, Refused},
		{"unreachable token endpoint", unreachable, FailureTTL, Unavailable},
		{"token endpoint failing", answerWith(http.StatusServiceUnavailable, "text/html", "<html>busy</html>"), FailureTTL, Unavailable},
		{"throttled: Retry-After is honoured", refuse(http.StatusTooManyRequests, "Retry-After", "60"), time.Minute, Throttled},
		{"a Retry-After shorter than FailureTTL does not shorten it", refuse(http.StatusTooManyRequests, "Retry-After", "2"), FailureTTL, Throttled},
		{"a Retry-After is capped", refuse(http.StatusTooManyRequests, "Retry-After", "86400"), MaxFailureTTL, Throttled},
		{"a garbled Retry-After is ignored", refuse(http.StatusTooManyRequests, "Retry-After", "soon"), FailureTTL, Throttled},
		{"a 503 with Retry-After", answerWith(http.StatusServiceUnavailable, "application/json", `{"error":"temporarily_unavailable"}`, "Retry-After", "30"), 30 * time.Second, Unavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				tr := &scriptedTokens{answers: []tokenAnswer{tt.answer}, hold: make(chan struct{})}
				src := scriptedSource(t, tr)

				// Concurrent callers: all of them wait for the one fetch, held until they do.
				errs := make([]error, callers)
				var wg sync.WaitGroup
				for i := range callers {
					wg.Go(func() {
						tok, err := src.TokenContext(t.Context())
						if tok != nil {
							t.Errorf("caller %d got token %q, want none", i, tok.AccessToken)
						}
						errs[i] = err
					})
				}
				synctest.Wait()
				close(tr.hold)
				wg.Wait()
				assertEqual(t, "token fetches for concurrent callers", tr.fetches(), 1)
				var e *Error
				if !errors.As(errs[0], &e) || e.Kind != tt.wantKind {
					t.Fatalf("error %v (%T): want an *Error of kind %v", errs[0], errs[0], tt.wantKind)
				}
				if want := time.Now().Add(tt.wantWindow); !e.RetryAt.Equal(want) {
					t.Errorf("RetryAt %v, want %v", e.RetryAt, want)
				}
				for i, err := range errs {
					if err != errs[0] {
						t.Errorf("caller %d: error %v, want the shared %v", i, err, errs[0])
					}
				}

				// Successive callers within the window get the same error at once.
				time.Sleep(tt.wantWindow - time.Second)
				for range callers {
					if _, err := src.Token(); err != errs[0] {
						t.Errorf("within the window: error %v, want the remembered %v", err, errs[0])
					}
				}
				assertEqual(t, "token fetches within the window", tr.fetches(), 1)

				// After it, the next caller fetches again.
				time.Sleep(time.Second)
				if _, err := src.Token(); err == nil {
					t.Error("after the window: no error, want the endpoint's failure again")
				}
				assertEqual(t, "token fetches after the window", tr.fetches(), 2)
			})
		})
	}
}

// TestTokenLifecycle follows one Source through a script of token endpoint answers.
func TestTokenLifecycle(t *testing.T) {
	t.Parallel()
	type step struct {
		sleep       time.Duration // before the call
		wantToken   string        // "" for an error
		wantFetches int
	}
	const hour = 3599 * time.Second
	tests := []struct {
		name    string
		answers []tokenAnswer
		steps   []step
	}{
		{
			name:    "credentials fixed: the first fetch after the window succeeds and the failure is forgotten",
			answers: []tokenAnswer{refuse(http.StatusUnauthorized), issue(3599), refuse(http.StatusUnauthorized)},
			steps: []step{
				{0, "", 1},
				{FailureTTL - time.Second, "", 1},
				{time.Second, "tok-2", 2},
				{0, "tok-2", 2},
				{hour - EarlyRefresh - time.Second, "tok-2", 2},
			},
		},
		{
			name:    "a refused refresh keeps serving the token until it expires",
			answers: []tokenAnswer{issue(3599), refuse(http.StatusUnauthorized)},
			steps: []step{
				{0, "tok-1", 1},
				{hour - EarlyRefresh + time.Second, "tok-1", 2}, // refresh (in the background) refused, tok-1 still valid
				{FailureTTL - time.Second, "tok-1", 2},          // the refusal is remembered
				{time.Second, "tok-1", 3},                       // tried again, refused again
				{EarlyRefresh, "", 4},                           // tok-1 has expired: the error shows
			},
		},
		{
			name:    "a token living less than EarlyRefresh is replaced a fifth of its lifetime before expiry",
			answers: []tokenAnswer{issue(200)},
			steps:   []step{{0, "tok-1", 1}, {0, "tok-1", 1}, {159 * time.Second, "tok-1", 1}, {2 * time.Second, "tok-1", 2}, {0, "tok-2", 2}},
		},
		{
			name: "an answer without an access token is a failure",
			answers: []tokenAnswer{func(n int, req *http.Request) (*http.Response, error) {
				return jsonAnswer(req, 200, `{"token_type":"Bearer"}`), nil
			}},
			steps: []step{{0, "", 1}, {FailureTTL - time.Second, "", 1}},
		},
		{
			name:    "an answer without expires_in lives AssumedLifetime",
			answers: []tokenAnswer{answerWith(200, "application/json", `{"token_type":"Bearer","access_token":"forever"}`), issue(3599)},
			steps:   []step{{0, "forever", 1}, {AssumedLifetime*4/5 - time.Second, "forever", 1}, {2 * time.Second, "forever", 2}, {0, "tok-2", 2}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				tr := &scriptedTokens{answers: tt.answers}
				src := scriptedSource(t, tr)
				var elapsed time.Duration
				for _, s := range tt.steps {
					time.Sleep(s.sleep)
					elapsed += s.sleep
					tok, err := src.TokenContext(t.Context())
					got := ""
					if err == nil {
						got = tok.AccessToken
					}
					synctest.Wait() // for a refresh in the background
					assertEqual(t, fmt.Sprintf("token at %v (error %v)", elapsed, err), got, s.wantToken)
					assertEqual(t, fmt.Sprintf("fetches at %v", elapsed), tr.fetches(), s.wantFetches)
				}
			})
		})
	}
}

// TestCancelledCallerDoesNotFailOthers: a caller that stops waiting for a fetch gets its
// context's error; the fetch goes on and serves the callers still waiting.
func TestCancelledCallerDoesNotFailOthers(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		tr := &scriptedTokens{answers: []tokenAnswer{issue(3599)}, hold: make(chan struct{})}
		src := scriptedSource(t, tr)
		ctx, cancel := context.WithCancel(t.Context())
		var cancelledErr, otherErr error
		var other *oauth2.Token
		var cancelled, waiting sync.WaitGroup
		cancelled.Go(func() { _, cancelledErr = src.TokenContext(ctx) })
		waiting.Go(func() { other, otherErr = src.TokenContext(t.Context()) })
		synctest.Wait() // both wait for the held fetch
		cancel()
		cancelled.Wait()
		if !errors.Is(cancelledErr, context.Canceled) {
			t.Errorf("cancelled caller: error %v, want context.Canceled", cancelledErr)
		}
		close(tr.hold)
		waiting.Wait()
		if otherErr != nil || other.AccessToken != "tok-1" {
			t.Errorf("other caller: token %v, error %v; want tok-1", other, otherErr)
		}
		assertEqual(t, "fetches", tr.fetches(), 1)
		if _, err := src.TokenContext(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("with a done context: error %v, want context.Canceled", err)
		}
	})
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		header string
		want   time.Duration
	}{
		{"", 0},
		{"30", 30 * time.Second},
		{" 30 ", 30 * time.Second},
		{"0", 0},
		{"-5", 0},
		{"1.5", 0},
		{"99999999999999999999", 0},
		{"9223372036854775807", MaxFailureTTL},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"soon", 0},
	}
	for _, tt := range tests {
		assertEqual(t, fmt.Sprintf("retryAfter(%q)", tt.header), retryAfter(tt.header, now), tt.want)
	}
}

// TestClassify: the token endpoint's answers by what they mean for the service. Only OAuth
// errors about the request or the credentials (and other final 4xx answers) are Refused; the
// endpoint's own trouble is Unavailable or Throttled, whatever its body says.
func TestClassify(t *testing.T) {
	t.Parallel()
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	retrieve := func(status int, code string, kv ...string) error {
		h := http.Header{}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return &oauth2.RetrieveError{Response: &http.Response{StatusCode: status, Header: h}, ErrorCode: code, Body: []byte("<html>...</html>")}
	}
	timeout := &url.Error{Op: "Post", URL: "https://login.example.test/t/oauth2/v2.0/token", Err: context.DeadlineExceeded}
	tests := []struct {
		name      string
		err       error
		wantKind  Kind
		wantRetry time.Duration
		wantHint  string
	}{
		{"invalid_client", retrieve(401, "invalid_client"), Refused, FailureTTL, "MDE_CLIENT_SECRET"},
		{"unauthorized_client", retrieve(400, "unauthorized_client"), Refused, FailureTTL, "MDE_CLIENT_ID"},
		{"invalid_scope", retrieve(400, "invalid_scope"), Refused, FailureTTL, "MDE_SCOPE"},
		{"invalid_request (unknown tenant)", retrieve(400, "invalid_request"), Refused, FailureTTL, "MDE_TENANT_ID"},
		{"an unknown OAuth code in a 400", retrieve(400, "something_new"), Refused, FailureTTL, "MDE_CLIENT_SECRET"},
		{"an OAuth error in a 200", retrieve(200, "invalid_client"), Refused, FailureTTL, "MDE_CLIENT_SECRET"},
		{"404 without a code: the URL", retrieve(404, ""), Refused, FailureTTL, "MDE_TOKEN_URL"},
		{"503 HTML", retrieve(503, ""), Unavailable, FailureTTL, ""},
		{"500", retrieve(500, "server_error"), Unavailable, FailureTTL, ""},
		{"503 temporarily_unavailable with Retry-After", retrieve(503, "temporarily_unavailable", "Retry-After", "30"), Unavailable, 30 * time.Second, ""},
		{"temporarily_unavailable in a 400", retrieve(400, "temporarily_unavailable"), Unavailable, FailureTTL, ""},
		{"408", retrieve(408, ""), Unavailable, FailureTTL, ""},
		{"429 with Retry-After", retrieve(429, "", "Retry-After", "30"), Throttled, 30 * time.Second, ""},
		{"429 without Retry-After", retrieve(429, ""), Throttled, FailureTTL, ""},
		{"timeout", timeout, Unavailable, FailureTTL, ""},
		{"connection refused", errors.New("dial tcp: connection refused"), Unavailable, FailureTTL, ""},
		{"not a token", errors.New("oauth2: cannot parse json: invalid character '<'"), Unavailable, FailureTTL, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := Classify(fmt.Errorf("wrapped: %w", tt.err), now)
			assertEqual(t, "kind", e.Kind, tt.wantKind)
			assertEqual(t, "retry after", e.RetryAt.Sub(now), tt.wantRetry)
			if !strings.Contains(e.Hint(), tt.wantHint) || (tt.wantHint == "") != (e.Hint() == "") {
				t.Errorf("hint %q, want one naming %q", e.Hint(), tt.wantHint)
			}
			if strings.Contains(e.Error(), "<html>") {
				t.Errorf("error %q repeats the answer's body", e)
			}
			if !errors.Is(e, tt.err) {
				t.Errorf("error %v does not wrap its cause", e)
			}
			if again := Classify(e, now.Add(time.Hour)); again != e {
				t.Errorf("classifying an *Error again changed it")
			}
		})
	}
	if Classify(nil, now) != nil {
		t.Error("Classify(nil) is not nil")
	}
	long := Classify(&oauth2.RetrieveError{Response: &http.Response{StatusCode: 400}, ErrorCode: "invalid_client", ErrorDescription: "a" + strings.Repeat("é", 300)}, now)
	if d := long.Description; len(d) > maxDescription+len("…") || !utf8.ValidString(d) || !strings.HasSuffix(d, "…") {
		t.Errorf("a long description is kept as %d bytes %q, want it cut to %d on a rune boundary", len(d), d, maxDescription)
	}
	if e := Classify(timeout, now); !strings.Contains(e.Error(), "in time") {
		t.Errorf("a timeout reads %q, want it to say so", e)
	}
}

func TestFailureErrorHasNoSecret(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		for _, answer := range []tokenAnswer{refuse(http.StatusUnauthorized), unreachable} {
			src := scriptedSource(t, &scriptedTokens{answers: []tokenAnswer{answer}})
			_, err := src.Token()
			if err == nil || strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), url.QueryEscape(secret)) {
				t.Errorf("error %v: want one without the secret", err)
			}
		}
	})
}

// TestReject: a token the API refuses before its expiry is dropped and replaced, once for
// many callers, and never more than once per FailureTTL.
func TestReject(t *testing.T) {
	t.Parallel()

	t.Run("many callers refused at once cause one fetch", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			tr := &scriptedTokens{answers: []tokenAnswer{issue(3599)}}
			src := scriptedSource(t, tr)
			time.Sleep(time.Minute) // tok-1 is no longer new
			first, err := src.Token()
			if err != nil {
				t.Fatal(err)
			}
			const callers = 20
			got := make([]string, callers)
			var wg sync.WaitGroup
			for i := range callers {
				wg.Go(func() {
					tok, err := src.Reject(t.Context(), first)
					if err != nil {
						t.Errorf("caller %d: %v", i, err)
						return
					}
					got[i] = tok.AccessToken
				})
			}
			wg.Wait()
			assertEqual(t, "fetches", tr.fetches(), 2)
			for i, g := range got {
				assertEqual(t, fmt.Sprintf("caller %d's replacement", i), g, "tok-2")
			}
			// A late report of the old token gets the replacement, without a fetch.
			tok, err := src.Reject(t.Context(), first)
			if err != nil || tok.AccessToken != "tok-2" {
				t.Errorf("late reject: %v, %v; want tok-2", tok, err)
			}
			assertEqual(t, "fetches after a late reject", tr.fetches(), 2)
		})
	})

	t.Run("a fresh token refused too is Rejected for FailureTTL", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			tr := &scriptedTokens{answers: []tokenAnswer{issue(3599)}}
			src := scriptedSource(t, tr)
			tok1, _ := src.Token()
			tok2, err := src.Reject(t.Context(), tok1) // the first forced refresh: allowed
			if err != nil || tok2.AccessToken != "tok-2" {
				t.Fatalf("first reject: %v, %v; want tok-2", tok2, err)
			}
			time.Sleep(FailureTTL - time.Second)
			_, err = src.Reject(t.Context(), tok2) // within FailureTTL of the forced refresh
			var e *Error
			if !errors.As(err, &e) || e.Kind != Rejected {
				t.Fatalf("second reject: %v, want an *Error of kind Rejected", err)
			}
			assertEqual(t, "fetches", tr.fetches(), 2)
			assertEqual(t, "retry at", e.RetryAt, time.Now().Add(FailureTTL))
			if e.Hint() == "" {
				t.Error("a Rejected error gives no hint")
			}
			// Nobody gets the rejected token; callers get the error at once, without a fetch.
			time.Sleep(FailureTTL - time.Second)
			if tok, err := src.Token(); err != e {
				t.Errorf("within the window: %v, %v; want the Rejected error", tok, err)
			}
			assertEqual(t, "fetches within the window", tr.fetches(), 2)
			time.Sleep(time.Second)
			if tok, err := src.Token(); err != nil || tok.AccessToken != "tok-3" {
				t.Errorf("after the window: %v, %v; want tok-3", tok, err)
			}
		})
	})

	t.Run("at most one forced refresh per FailureTTL", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			tr := &scriptedTokens{answers: []tokenAnswer{issue(3599)}}
			src := scriptedSource(t, tr)
			// An API that refuses every token: each caller reports the one it got.
			const span = 10 * FailureTTL
			for elapsed := time.Duration(0); elapsed < span; elapsed += time.Second {
				if tok, err := src.Token(); err == nil {
					_, _ = src.Reject(t.Context(), tok)
				}
				time.Sleep(time.Second)
			}
			// One fetch after each window (the token endpoint is not the problem), one forced
			// refresh after it: two per FailureTTL at most, not one per second.
			if n := tr.fetches(); n > 2*int(span/FailureTTL)+1 {
				t.Errorf("%d fetches in %v, want at most 2 per FailureTTL", n, span)
			}
		})
	})

	t.Run("while a failure is remembered nothing is fetched", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			tr := &scriptedTokens{answers: []tokenAnswer{issue(3599), unreachable}}
			src := scriptedSource(t, tr)
			tok1, _ := src.Token()
			time.Sleep(3599*time.Second - EarlyRefresh) // the background refresh fails
			if tok, _ := src.Token(); tok.AccessToken != "tok-1" {
				t.Fatalf("got %v, want tok-1 while valid", tok)
			}
			synctest.Wait()
			assertEqual(t, "fetches", tr.fetches(), 2)
			_, err := src.Reject(t.Context(), tok1)
			var e *Error
			if !errors.As(err, &e) || e.Kind != Unavailable {
				t.Errorf("reject: %v, want the remembered Unavailable error", err)
			}
			assertEqual(t, "fetches after the reject", tr.fetches(), 2)
			if tok, err := src.Token(); err == nil {
				t.Errorf("got %v after it was rejected, want the error", tok.AccessToken)
			}
		})
	})

	t.Run("a refresh already running serves as the replacement", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			hold := make(chan struct{})
			tr := &scriptedTokens{answers: []tokenAnswer{issue(3599), func(n int, req *http.Request) (*http.Response, error) {
				<-hold
				return issue(3599)(n, req)
			}}}
			src := scriptedSource(t, tr)
			tok1, _ := src.Token()
			time.Sleep(3599*time.Second - EarlyRefresh)
			src.Token() // starts the refresh, held
			synctest.Wait()
			var got *oauth2.Token
			var wg sync.WaitGroup
			wg.Go(func() { got, _ = src.Reject(t.Context(), tok1) })
			synctest.Wait()
			close(hold)
			wg.Wait()
			if got == nil || got.AccessToken != "tok-2" {
				t.Errorf("got %v, want tok-2", got)
			}
			assertEqual(t, "fetches", tr.fetches(), 2)
			// That was no forced refresh: one is still allowed at once.
			if tok, err := src.Reject(t.Context(), got); err != nil || tok.AccessToken != "tok-3" {
				t.Errorf("forced refresh: %v, %v; want tok-3", tok, err)
			}
		})
	})

	t.Run("a failed forced refresh is the caller's error", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			tr := &scriptedTokens{answers: []tokenAnswer{issue(3599), refuse(http.StatusUnauthorized)}}
			src := scriptedSource(t, tr)
			tok1, _ := src.Token()
			_, err := src.Reject(t.Context(), tok1)
			var e *Error
			if !errors.As(err, &e) || e.Kind != Refused || e.Code != "invalid_client" {
				t.Errorf("reject: %v, want the endpoint's refusal", err)
			}
			if tok, err := src.Token(); err != e {
				t.Errorf("after: %v, %v; want the remembered refusal, not the rejected token", tok, err)
			}
		})
	})
}
