package callerauth

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mdegraph/mdegraph/internal/logtest"
	"github.com/mdegraph/mdegraph/internal/principal"
	"github.com/mdegraph/mdegraph/internal/simulator"
)

// seen is what the protected handler saw: whether it ran, and the principal and assertion in
// its context.
type seen struct {
	called    bool
	p         principal.Principal
	assertion string
}

func protected(t *testing.T, a *Authenticator) (http.Handler, *seen) {
	t.Helper()
	s := &seen{}
	return a.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.called = true
		var ok bool
		if s.p, ok = principal.FromContext(r.Context()); !ok {
			t.Error("no principal in the context")
		}
		if a, ok := principal.AssertionFrom(r.Context()); ok {
			s.assertion = a.Reveal()
		}
		w.WriteHeader(http.StatusOK)
	})), s
}

// refusalBody is a refusal's body, decoded strictly enough to catch a data key.
type refusalBody struct {
	Errors []struct {
		Message    string
		Extensions struct{ Code, Reason string }
	}
	Data json.RawMessage
}

// call sends a request with headers (name, value, name, value, ...) from 192.0.2.7.
func call(h http.Handler, method string, headers ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, "/query", strings.NewReader(`{"query":"{__typename}"}`))
	r.RemoteAddr = "192.0.2.7:51234"
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Add(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

// checkRefusal checks a refusal's status, headers and body.
func checkRefusal(t *testing.T, rec *httptest.ResponseRecorder, status int, oauthErr string, reason Reason) {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status %d, want %d; body %s", rec.Code, status, rec.Body)
	}
	challenge := rec.Header().Get("WWW-Authenticate")
	if !strings.HasPrefix(challenge, `Bearer realm="mdegraph"`) {
		t.Errorf("WWW-Authenticate %q, want Bearer realm=\"mdegraph\"", challenge)
	}
	if oauthErr == "" && strings.Contains(challenge, "error=") {
		t.Errorf("WWW-Authenticate %q has an error attribute, though no credential was presented", challenge)
	}
	if oauthErr != "" && (!strings.Contains(challenge, `error="`+oauthErr+`"`) || !strings.Contains(challenge, `error_description="`)) {
		t.Errorf("WWW-Authenticate %q, want error=%q and an error_description", challenge, oauthErr)
	}
	if ct, cc := rec.Header().Get("Content-Type"), rec.Header().Get("Cache-Control"); ct != "application/json" || cc != "no-store" {
		t.Errorf("Content-Type %q, Cache-Control %q; want application/json, no-store", ct, cc)
	}
	var body refusalBody
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("body %s: %v", rec.Body, err)
	}
	wantCode := CodeUnauthenticated
	if status == http.StatusForbidden {
		wantCode = CodeForbidden
	}
	if len(body.Errors) != 1 || body.Errors[0].Extensions.Code != wantCode || body.Errors[0].Extensions.Reason != string(reason) || body.Errors[0].Message == "" {
		t.Errorf("body %s, want one error with code %s, reason %s", rec.Body, wantCode, reason)
	}
	if body.Data != nil {
		t.Errorf("body %s has a data key", rec.Body)
	}
}

func TestAPIKeyMode(t *testing.T) {
	t.Parallel()
	key, entry, err := NewAPIKey("soc-dashboard")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := ParseAPIKeys(entry + ",nightly:" + hashABC)
	if err != nil {
		t.Fatal(err)
	}
	var logs logtest.Buffer
	a, err := New(Options{Mode: ModeAPIKey, APIKeys: keys, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		headers  []string
		method   string
		wantName string // accepted as this key
		oauthErr string
		reason   Reason
	}{
		{name: "X-Api-Key", headers: []string{"X-Api-Key", key}, wantName: "soc-dashboard"},
		{name: "Authorization: Bearer", headers: []string{"Authorization", "Bearer " + key}, wantName: "soc-dashboard"},
		{name: "bearer in lower case, two spaces", headers: []string{"Authorization", "bearer  " + key}, wantName: "soc-dashboard"},
		{name: "another configured key", headers: []string{"X-Api-Key", "abc"}, wantName: "nightly"},
		{name: "OPTIONS passes as anonymous", method: http.MethodOptions},
		{name: "no credential", reason: ReasonMissing},
		{name: "wrong key", headers: []string{"X-Api-Key", "mdg_wrong"}, oauthErr: "invalid_token", reason: ReasonUnknownAPIKey},
		{name: "key one character short", headers: []string{"X-Api-Key", key[:len(key)-1]}, oauthErr: "invalid_token", reason: ReasonUnknownAPIKey},
		{name: "key one character long", headers: []string{"Authorization", "Bearer " + key + "A"}, oauthErr: "invalid_token", reason: ReasonUnknownAPIKey},
		{name: "the hash instead of the key", headers: []string{"X-Api-Key", HashAPIKey(key)}, oauthErr: "invalid_token", reason: ReasonUnknownAPIKey},
		{name: "empty X-Api-Key", headers: []string{"X-Api-Key", ""}, oauthErr: "invalid_request", reason: ReasonMalformed},
		{name: "two X-Api-Key", headers: []string{"X-Api-Key", key, "X-Api-Key", key}, oauthErr: "invalid_request", reason: ReasonMalformed},
		{name: "both headers", headers: []string{"X-Api-Key", key, "Authorization", "Bearer " + key}, oauthErr: "invalid_request", reason: ReasonMalformed},
		{name: "Basic scheme", headers: []string{"Authorization", "Basic c29jOnNlY3JldA=="}, oauthErr: "invalid_request", reason: ReasonMalformed},
		{name: "Bearer without credential", headers: []string{"Authorization", "Bearer"}, oauthErr: "invalid_request", reason: ReasonMalformed},
		{name: "credential not a b64token", headers: []string{"Authorization", "Bearer a b"}, oauthErr: "invalid_request", reason: ReasonMalformed},
		{name: "too long", headers: []string{"X-Api-Key", strings.Repeat("k", MaxCredentialBytes+1)}, oauthErr: "invalid_request", reason: ReasonMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, s := protected(t, a)
			rec := call(h, cmpOr(tt.method, http.MethodPost), tt.headers...)
			if tt.reason != "" {
				checkRefusal(t, rec, http.StatusUnauthorized, tt.oauthErr, tt.reason)
				if s.called {
					t.Error("the protected handler ran")
				}
				for _, v := range append(rec.Header().Values("WWW-Authenticate"), rec.Body.String()) {
					if strings.Contains(v, key) || (strings.Contains(tt.name, "wrong") && strings.Contains(v, "mdg_wrong")) {
						t.Errorf("the answer repeats the presented key: %s", v)
					}
				}
				return
			}
			if rec.Code != http.StatusOK || !s.called {
				t.Fatalf("status %d, body %s; want it served", rec.Code, rec.Body)
			}
			want := principal.Principal{Kind: principal.KindAPIKey, Name: tt.wantName, Addr: "192.0.2.7"}
			if tt.wantName == "" {
				want = principal.Anonymous("192.0.2.7:51234")
			}
			if s.p != want || s.assertion != "" {
				t.Errorf("principal %+v, assertion %q; want %+v and none", s.p, s.assertion, want)
			}
		})
	}
	if strings.Contains(logs.String(), key[len(APIKeyPrefix):]) {
		t.Errorf("the log shows a key:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "reason=unknown_api_key") || !strings.Contains(logs.String(), "client=192.0.2.7") {
		t.Errorf("the log lacks the refusals' reason and client:\n%s", logs.String())
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestEntraMode(t *testing.T) {
	t.Parallel()
	sim := newSim(t, testAuthority)
	v := newVerifier(t, t.Context(), sim, nil)
	var refusals []Reason
	a, err := New(Options{Mode: ModeEntra, Tokens: v, OnRefusal: func(r Reason) { refusals = append(refusals, r) }})
	if err != nil {
		t.Fatal(err)
	}
	megan := mint(t, sim, simulator.TokenClaims{Person: "megan"})
	tests := []struct {
		name     string
		headers  []string
		status   int
		oauthErr string
		reason   Reason
	}{
		{name: "valid token", headers: []string{"Authorization", "Bearer " + megan}, status: 200},
		{name: "no credential", status: 401, reason: ReasonMissing},
		{name: "expired", headers: []string{"Authorization", "Bearer " + mint(t, sim, simulator.TokenClaims{Person: "megan", IssuedAt: time.Now().Add(-2 * time.Hour), ExpiresAt: time.Now().Add(-time.Hour)})}, status: 401, oauthErr: "invalid_token", reason: ReasonExpired},
		{name: "missing role", headers: []string{"Authorization", "Bearer " + mint(t, sim, simulator.TokenClaims{Person: "lee"})}, status: 403, oauthErr: "insufficient_scope", reason: ReasonRole},
		{name: "an API key", headers: []string{"X-Api-Key", "abc"}, status: 401, oauthErr: "invalid_request", reason: ReasonWrongKind},
		{name: "an API key beside a token", headers: []string{"X-Api-Key", "abc", "Authorization", "Bearer " + megan}, status: 401, oauthErr: "invalid_request", reason: ReasonWrongKind},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, s := protected(t, a)
			rec := call(h, http.MethodPost, tt.headers...)
			if tt.status != http.StatusOK {
				checkRefusal(t, rec, tt.status, tt.oauthErr, tt.reason)
				if s.called {
					t.Error("the protected handler ran")
				}
				return
			}
			want := principal.Principal{Kind: principal.KindUser, TenantID: simulator.DemoTenantID, ObjectID: "711d04a5-90cf-4fba-aa53-1ab9442278d2", Name: "megan.bowen@contoso.com", Addr: "192.0.2.7"}
			if rec.Code != http.StatusOK || s.p != want || s.assertion != megan {
				t.Errorf("status %d, principal %+v, assertion is the token: %v; want 200, %+v, true", rec.Code, s.p, s.assertion == megan, want)
			}
		})
	}
	want := []Reason{ReasonMissing, ReasonExpired, ReasonRole, ReasonWrongKind, ReasonWrongKind}
	if strings.Join(reasons(refusals), ",") != strings.Join(reasons(want), ",") {
		t.Errorf("OnRefusal saw %v, want %v", refusals, want)
	}
}

func reasons(rs []Reason) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r)
	}
	return out
}

func TestOptionalSignIn(t *testing.T) {
	t.Parallel()
	sim := newSim(t, testAuthority)
	v := newVerifier(t, t.Context(), sim, nil)
	a, err := New(Options{Mode: ModeEntra, Tokens: v, Optional: true})
	if err != nil {
		t.Fatal(err)
	}
	h, s := protected(t, a)
	if rec := call(h, http.MethodPost); rec.Code != http.StatusOK || s.p != principal.Anonymous("192.0.2.7:1") || s.assertion != "" {
		t.Errorf("without a credential: %d, %+v; want 200 as anonymous", rec.Code, s.p)
	}
	grady := mint(t, sim, simulator.TokenClaims{Person: "grady"})
	h, s = protected(t, a)
	if rec := call(h, http.MethodPost, "Authorization", "Bearer "+grady); rec.Code != http.StatusOK || s.p.ObjectID != "25c0d6b9-b0d9-4825-b7a2-58f6c1c082dc" || s.assertion != grady {
		t.Errorf("with grady's token: %d, %+v; want 200 as grady", rec.Code, s.p)
	}
	h, s = protected(t, a)
	rec := call(h, http.MethodPost, "Authorization", "Bearer "+mint(t, sim, simulator.TokenClaims{Person: "grady", Audience: "api://other"}))
	checkRefusal(t, rec, http.StatusUnauthorized, "invalid_token", ReasonAudience)
	if s.called {
		t.Error("a bad token was served as anonymous")
	}
	h, _ = protected(t, a)
	checkRefusal(t, call(h, http.MethodPost, "Authorization", "Basic eDp5"), http.StatusUnauthorized, "invalid_request", ReasonMalformed)
}

func TestNoneMode(t *testing.T) {
	t.Parallel()
	a, err := New(Options{Mode: ModeNone})
	if err != nil {
		t.Fatal(err)
	}
	if a.Hint() != "" {
		t.Errorf("Hint in mode none = %q", a.Hint())
	}
	for _, headers := range [][]string{nil, {"Authorization", "Bearer nonsense"}, {"X-Api-Key", ""}, {"Authorization", "Basic eDp5"}} {
		h, s := protected(t, a)
		if rec := call(h, http.MethodGet, headers...); rec.Code != http.StatusOK || s.p != principal.Anonymous("192.0.2.7:1") || s.assertion != "" {
			t.Errorf("%v: %d, %+v, assertion %q; want 200 as anonymous, no assertion", headers, rec.Code, s.p, s.assertion)
		}
	}
}

// stubVerifier returns a fixed answer.
type stubVerifier struct {
	p   principal.Principal
	err error
}

func (s stubVerifier) Verify(context.Context, string) (principal.Principal, error) { return s.p, s.err }

func TestVerifierErrorsOfOtherTypes(t *testing.T) {
	t.Parallel()
	a, err := New(Options{Mode: ModeEntra, Tokens: stubVerifier{err: errors.New("secret detail of the verifier")}})
	if err != nil {
		t.Fatal(err)
	}
	h, _ := protected(t, a)
	rec := call(h, http.MethodPost, "Authorization", "Bearer x.y.z")
	checkRefusal(t, rec, http.StatusUnauthorized, "invalid_token", ReasonSignature)
	if strings.Contains(rec.Body.String(), "secret detail") {
		t.Errorf("the answer shows the verifier's error: %s", rec.Body)
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		opts Options
		want string
	}{
		{Options{Mode: ModeAPIKey}, "API_KEYS"},
		{Options{Mode: ModeEntra}, "AUTH_MODE=entra"},
		{Options{Mode: "oidc"}, "AUTH_MODE"},
		{Options{}, "AUTH_MODE"},
	}
	for _, tt := range tests {
		if _, err := New(tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v) = %v, want an error naming %s", tt.opts, err, tt.want)
		}
	}
}

// TestRefusalLogsAreQuiet: one warning per reason and client address a minute; the repeats
// at debug, counted in the next warning.
func TestRefusalLogsAreQuiet(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var logs logtest.Buffer
		keys, _ := ParseAPIKeys("k:" + hashABC)
		a, err := New(Options{Mode: ModeAPIKey, APIKeys: keys, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		h, _ := protected(t, a)
		for range 5 {
			call(h, http.MethodPost, "X-Api-Key", "wrong-key-1")
		}
		call(h, http.MethodPost)
		if n := strings.Count(logs.String(), "caller refused"); n != 2 {
			t.Errorf("%d warnings for 5 wrong keys and 1 missing, want 2:\n%s", n, logs.String())
		}
		time.Sleep(time.Minute)
		call(h, http.MethodPost, "X-Api-Key", "wrong-key-1")
		if !strings.Contains(logs.String(), "repeats=4") {
			t.Errorf("the warning a minute later does not count the 4 repeats:\n%s", logs.String())
		}
		if strings.Contains(logs.String(), "wrong-key-1") {
			t.Errorf("the log shows a presented key:\n%s", logs.String())
		}
	})
}

func TestChallengeQuoting(t *testing.T) {
	t.Parallel()
	e := unauthenticated(ReasonAudience, "audience \"api://x\" \\ é\n")
	got := e.challenge(`my "realm"`)
	want := `Bearer realm="my 'realm'", error="invalid_token", error_description="audience 'api://x' ? ??"`
	if got != want {
		t.Errorf("challenge = %s, want %s", got, want)
	}
}

// FuzzParseBearer: the parser never panics, and what it returns is a b64token that was in the
// header and reads back the same.
func FuzzParseBearer(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer  a.b.c", "Basic eDp5", "Bearer", "Bearer =", "Bearer a==", " Bearer\tx", "BEARER mdg_x-y~z+/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		cred, err := ParseBearer(value)
		if err != nil {
			if cred != "" {
				t.Fatalf("ParseBearer(%q) = %q with error %v", value, cred, err)
			}
			return
		}
		if !isB64Token(cred) || !strings.Contains(value, cred) || len(cred) > MaxCredentialBytes {
			t.Fatalf("ParseBearer(%q) = %q: not a b64token from the header", value, cred)
		}
		if again, err := ParseBearer("Bearer " + cred); err != nil || again != cred {
			t.Fatalf("ParseBearer(Bearer %q) = %q, %v", cred, again, err)
		}
	})
}

// FuzzAuthenticate: whatever the headers, a request is either refused with a coded JSON error
// or served with a principal, and no answer repeats the credential.
func FuzzAuthenticate(f *testing.F) {
	keys, _ := ParseAPIKeys("k:" + hashABC)
	a, err := New(Options{Mode: ModeAPIKey, APIKeys: keys})
	if err != nil {
		f.Fatal(err)
	}
	f.Add("Bearer abc", "")
	f.Add("", "abc")
	f.Add("Bearer abc", "abc")
	f.Add("Digest x", "")
	f.Fuzz(func(t *testing.T, authorization, apiKey string) {
		r := httptest.NewRequest(http.MethodPost, "/query", nil)
		if authorization != "" {
			r.Header.Set("Authorization", authorization)
		}
		if apiKey != "" {
			r.Header.Set("X-Api-Key", apiKey)
		}
		served := false
		rec := httptest.NewRecorder()
		a.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { served = true })).ServeHTTP(rec, r)
		if served {
			return
		}
		var body refusalBody
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || len(body.Errors) != 1 || body.Errors[0].Extensions.Code != CodeUnauthenticated {
			t.Fatalf("refusal %d %s", rec.Code, rec.Body)
		}
		for _, cred := range []string{authorization, apiKey} {
			if len(cred) >= 8 && strings.Contains(rec.Body.String()+rec.Header().Get("WWW-Authenticate"), cred) {
				t.Fatalf("the refusal repeats the credential %q: %s", cred, rec.Body)
			}
		}
	})
}
