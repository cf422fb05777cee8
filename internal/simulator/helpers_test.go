package simulator

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a manual clock for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2027, 1, 4, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newTestSim builds a simulator on a manual clock (unless opts has one).
func newTestSim(t *testing.T, opts Options) (*Simulator, *clock) {
	t.Helper()
	c := newClock()
	if opts.Now == nil {
		opts.Now = c.Now
	}
	return New(opts), c
}

var guidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

const testScope = "https://api.securitycenter.microsoft.com/.default"

func tokenForm() url.Values {
	return url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {DefaultClientID},
		"client_secret": {DefaultClientSecret},
		"scope":         {testScope},
	}
}

func postToken(t *testing.T, s *Simulator, tenant string, form url.Values) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/"+tenant+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	return rec
}

// token gets a valid access token with the default credentials.
func getToken(t *testing.T, s *Simulator) string {
	t.Helper()
	rec := postToken(t, s, "contoso.onmicrosoft.com", tokenForm())
	wantStatus(t, rec, http.StatusOK)
	return decode[tokenAnswer](t, rec).AccessToken
}

// call sends one request; tok "" sends no Authorization header.
func call(t *testing.T, s *Simulator, method, target, tok string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	return rec
}

func get(t *testing.T, s *Simulator, target, tok string) *httptest.ResponseRecorder {
	t.Helper()
	return call(t, s, http.MethodGet, target, tok)
}

func wantStatus(t *testing.T, rec *httptest.ResponseRecorder, want int) {
	t.Helper()
	if rec.Code != want {
		t.Fatalf("status: got %d, want %d; body %s", rec.Code, want, clip(rec.Body.String()))
	}
}

func decode[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %T: %v; body %s", v, err, clip(rec.Body.String()))
	}
	return v
}

// wantAPIError checks a Defender error answer: status, content type, code, a GUID target, and
// returns the message.
func wantAPIError(t *testing.T, rec *httptest.ResponseRecorder, status int, code string) string {
	t.Helper()
	wantStatus(t, rec, status)
	if got := rec.Header().Get("Content-Type"); got != contentTypeError {
		t.Errorf("Content-Type: got %q, want %q", got, contentTypeError)
	}
	e := decode[defenderError](t, rec)
	if e.Error.Code != code {
		t.Errorf("error code: got %q, want %q (message %q)", e.Error.Code, code, e.Error.Message)
	}
	if !guidRE.MatchString(e.Error.Target) {
		t.Errorf("error target: got %q, want a GUID", e.Error.Target)
	}
	if e.Error.Message == "" {
		t.Error("error message is empty")
	}
	return e.Error.Message
}

// listIDs decodes a machine list answer into its ids.
func listIDs(t *testing.T, rec *httptest.ResponseRecorder) []string {
	t.Helper()
	wantStatus(t, rec, http.StatusOK)
	body := decode[collection[Machine]](t, rec)
	ids := make([]string, len(body.Value))
	for i, m := range body.Value {
		ids[i] = m.ID
	}
	return ids
}

func machineIDs(ms []Machine) []string {
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	return ids
}
