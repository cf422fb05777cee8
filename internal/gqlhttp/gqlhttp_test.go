package gqlhttp_test

import (
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mdegraph/mdegraph/internal/callerauth"
	"github.com/mdegraph/mdegraph/internal/csrf"
	"github.com/mdegraph/mdegraph/internal/gqlhttp"
	"github.com/mdegraph/mdegraph/internal/quota"
	"github.com/mdegraph/mdegraph/resolvers"
)

// fakeQuota reports one endpoint family with fixed numbers.
type fakeQuota struct{}

func (fakeQuota) Status() []quota.FamilyStatus {
	return []quota.FamilyStatus{{Family: "machines.logonusers", Status: quota.Status{
		Windows: []quota.WindowStatus{
			{Window: quota.Window{Limit: 100, Per: time.Minute}, Used: 3, Remaining: 97},
			{Window: quota.Window{Limit: 1500, Per: time.Hour}, Used: 3, Remaining: 1497},
		},
		NextSlot: time.Now(),
	}}, {Family: "machines.get", Status: quota.Status{
		Windows: []quota.WindowStatus{
			{Window: quota.Window{Limit: 100, Per: time.Minute}, Used: 1, Remaining: 99},
			{Window: quota.Window{Limit: 1500, Per: time.Hour}, Used: 1, Remaining: 1499},
		},
		NextSlot:    time.Now().Add(30 * time.Second), // paused after a 429
		PausedUntil: time.Now().Add(30 * time.Second),
	}}}
}

func newServer(t *testing.T, opts gqlhttp.Options) *httptest.Server {
	t.Helper()
	return newCORSServer(t, nil, opts)
}

// newCORSServer is newServer behind gqlhttp.CORS(origins), as the service wires it.
func newCORSServer(t *testing.T, origins []string, opts gqlhttp.Options) *httptest.Server {
	t.Helper()
	opts.Resolver = &resolvers.Resolver{Quota: fakeQuota{}}
	srv := httptest.NewServer(gqlhttp.CORS(origins)(gqlhttp.New(opts)))
	t.Cleanup(srv.Close)
	return srv
}

const quotaQuery = `{ quota { endpoint minute { remaining } } }`

func hashOf(q string) string {
	sum := sha256.Sum256([]byte(q))
	return hex.EncodeToString(sum[:])
}

func persistedExt(q string) string {
	return fmt.Sprintf(`{"persistedQuery":{"version":1,"sha256Hash":"%s"}}`, hashOf(q))
}

type result struct {
	status int
	header http.Header
	body   map[string]any
}

func do(t *testing.T, req *http.Request) result {
	t.Helper()
	resp, err := http.DefaultTransport.RoundTrip(req) // no transparent gzip: we check it ourselves
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r io.Reader = resp.Body
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			t.Fatalf("gzip: %v", err)
		}
		r = zr
	}
	out := result{status: resp.StatusCode, header: resp.Header}
	b, _ := io.ReadAll(r)
	if len(b) > 0 {
		if err := json.Unmarshal(b, &out.body); err != nil {
			t.Fatalf("status %d, not JSON: %s", resp.StatusCode, b)
		}
	}
	return out
}

func get(t *testing.T, base string, params url.Values, header http.Header) result {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"?"+params.Encode(), nil)
	for k, v := range header {
		req.Header[k] = v
	}
	return do(t, req)
}

func post(t *testing.T, base string, body string, header http.Header) result {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	return do(t, req)
}

func errorCode(r result) string {
	errs, _ := r.body["errors"].([]any)
	if len(errs) == 0 {
		return ""
	}
	ext, _ := errs[0].(map[string]any)["extensions"].(map[string]any)
	code, _ := ext["code"].(string)
	return code
}

func TestPersistedQueriesAndCaching(t *testing.T) {
	t.Parallel()
	srv := newServer(t, gqlhttp.Options{CacheMaxAge: time.Minute})
	hashOnly := url.Values{"extensions": {persistedExt(quotaQuery)}}

	// Unknown hash: the client must send the query once.
	r := get(t, srv.URL, hashOnly, nil)
	if errorCode(r) != "PERSISTED_QUERY_NOT_FOUND" {
		t.Fatalf("hash only, first time: code %q, want PERSISTED_QUERY_NOT_FOUND", errorCode(r))
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("an error answer has Cache-Control %q, want no-store", cc)
	}
	body, _ := json.Marshal(map[string]any{"query": quotaQuery, "extensions": json.RawMessage(persistedExt(quotaQuery))})
	if r := post(t, srv.URL, string(body), nil); errorCode(r) != "" {
		t.Fatalf("registering the query: %v", r.body)
	}

	tests := []struct {
		name   string
		params url.Values
		header http.Header
		want   string
	}{
		{"persisted GET is public", hashOnly, nil, "public, max-age=60"},
		{"persisted GET with a token is private", hashOnly, http.Header{"Authorization": {"Bearer x"}}, "private, max-age=60"},
		{"persisted GET with an API key is private", hashOnly, http.Header{"X-Api-Key": {"k"}}, "private, max-age=60"},
		{"persisted GET with a cookie is private", hashOnly, http.Header{"Cookie": {"session=1"}}, "private, max-age=60"},
		{"persisted GET with an empty Authorization is private", hashOnly, http.Header{"Authorization": {""}}, "private, max-age=60"},
		{"plain GET is not cached", url.Values{"query": {quotaQuery}}, nil, "no-store"},
	}
	for _, tt := range tests {
		r := get(t, srv.URL, tt.params, tt.header)
		if errorCode(r) != "" {
			t.Fatalf("%s: %v", tt.name, r.body)
		}
		if cc := r.header.Get("Cache-Control"); cc != tt.want {
			t.Errorf("%s: Cache-Control %q, want %q", tt.name, cc, tt.want)
		}
		if vary := strings.Join(r.header.Values("Vary"), ","); tt.want != "no-store" && (!strings.Contains(vary, "Authorization") ||
			!strings.Contains(vary, "X-Api-Key") || !strings.Contains(vary, "Cookie")) {
			t.Errorf("%s: Vary %q, want the credential headers", tt.name, vary)
		}
	}
	if cc := post(t, srv.URL, `{"query":"`+quotaQuery+`"}`, nil).header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("POST: Cache-Control %q, want no-store", cc)
	}
}

func TestPersistedQueryCacheIsBounded(t *testing.T) {
	t.Parallel()
	srv := newServer(t, gqlhttp.Options{APQCacheSize: 2})
	queries := []string{`{ quota { endpoint } }`, `{ quota { queued } }`, `{ quota { call } }`}
	for _, q := range queries {
		body, _ := json.Marshal(map[string]any{"query": q, "extensions": json.RawMessage(persistedExt(q))})
		if r := post(t, srv.URL, string(body), nil); errorCode(r) != "" {
			t.Fatalf("%s: %v", q, r.body)
		}
	}
	evicted := get(t, srv.URL, url.Values{"extensions": {persistedExt(queries[0])}}, nil)
	kept := get(t, srv.URL, url.Values{"extensions": {persistedExt(queries[2])}}, nil)
	if errorCode(evicted) != "PERSISTED_QUERY_NOT_FOUND" || errorCode(kept) != "" {
		t.Errorf("with room for 2: oldest answered %q, newest %q; want it evicted and the newest kept", errorCode(evicted), errorCode(kept))
	}
}

func TestQuotaInExtensions(t *testing.T) {
	t.Parallel()
	srv := newServer(t, gqlhttp.Options{})
	r := post(t, srv.URL, `{"query":"{ __typename }"}`, nil)
	ext, _ := r.body["extensions"].(map[string]any)
	// Query.quota's shape: EndpointQuota, keyed by endpoint.
	q, _ := ext["quota"].(map[string]any)["machines.logonusers"].(map[string]any)
	minute, _ := q["minute"].(map[string]any)
	hour, _ := q["hour"].(map[string]any)
	if q["endpoint"] != "machines.logonusers" || q["call"] != "GET /api/machines/{id}/logonusers" ||
		minute["limit"] != float64(100) || minute["used"] != float64(3) || minute["remaining"] != float64(97) || minute["seconds"] != float64(60) ||
		hour["limit"] != float64(1500) || hour["used"] != float64(3) || hour["remaining"] != float64(1497) || hour["seconds"] != float64(3600) ||
		q["queued"] != float64(0) || q["nextSlotSeconds"] != float64(0) || q["nextSlotAt"] == nil {
		t.Errorf("extensions.quota = %v, want Query.quota's shape with minute 3/97 of 100, hour 3/1497 of 1500, queued 0, nextSlotSeconds 0", ext["quota"])
	}
	if v, ok := q["pausedUntil"]; !ok || v != nil {
		t.Errorf("pausedUntil = %v (present %v), want null, as Query.quota writes it", v, ok)
	}
	// A paused family has slots left in its windows, but none until the pause ends: the
	// frontend learns when (whole seconds, rounded up, so 30 unless the test ran slower than 1 s).
	paused, _ := ext["quota"].(map[string]any)["machines.get"].(map[string]any)
	if n, _ := paused["nextSlotSeconds"].(float64); n < 29 || n > 30 {
		t.Errorf("paused family: nextSlotSeconds = %v, want 30", paused["nextSlotSeconds"])
	}
	if paused["pausedUntil"] == nil {
		t.Errorf("paused family: pausedUntil = null, want the pause's end")
	}
}

func TestGzip(t *testing.T) {
	t.Parallel()
	srv := newServer(t, gqlhttp.Options{Introspection: true})
	introspection := `{"query":"{ __schema { types { name description fields { name description } } } }"}`
	r := post(t, srv.URL, introspection, http.Header{"Accept-Encoding": {"gzip"}})
	if r.header.Get("Content-Encoding") != "gzip" {
		t.Errorf("Content-Encoding %q, want gzip", r.header.Get("Content-Encoding"))
	}
	if data, _ := r.body["data"].(map[string]any); data["__schema"] == nil {
		t.Errorf("the decompressed answer has no schema: %v", r.body)
	}
	if r := post(t, srv.URL, introspection, nil); r.header.Get("Content-Encoding") != "" {
		t.Errorf("a client that did not ask got Content-Encoding %q", r.header.Get("Content-Encoding"))
	}
}

func TestCORS(t *testing.T) {
	t.Parallel()
	preflight := func(srv *httptest.Server, origin string) http.Header {
		req, _ := http.NewRequest(http.MethodOptions, srv.URL, nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization,content-type") // as browsers send it
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header
	}
	tests := []struct {
		name    string
		origins []string
		origin  string
		want    string
	}{
		{"allowed origin", []string{"https://soc.example.com"}, "https://soc.example.com", "https://soc.example.com"},
		{"other origin", []string{"https://soc.example.com"}, "https://evil.example.com", ""},
		{"any origin", []string{"*"}, "https://anything.example", "*"},
		{"none configured: same origin only", nil, "https://soc.example.com", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newCORSServer(t, tt.origins, gqlhttp.Options{})
			h := preflight(srv, tt.origin)
			if got := h.Get("Access-Control-Allow-Origin"); got != tt.want {
				t.Errorf("Access-Control-Allow-Origin %q, want %q", got, tt.want)
			}
			if tt.want != "" && !strings.Contains(strings.ToLower(h.Get("Access-Control-Allow-Headers")), "authorization") {
				t.Errorf("Authorization not allowed: %q", h.Get("Access-Control-Allow-Headers"))
			}
			r := post(t, srv.URL, `{"query":"{ __typename }"}`, http.Header{"Origin": {tt.origin}})
			if got := r.header.Get("Access-Control-Allow-Origin"); got != tt.want {
				t.Errorf("POST: Access-Control-Allow-Origin %q, want %q", got, tt.want)
			}
			// A frontend on that origin reads why it was refused.
			if exposed := r.header.Get("Access-Control-Expose-Headers"); tt.want != "" && !strings.Contains(exposed, "Www-Authenticate") {
				t.Errorf("POST: Access-Control-Expose-Headers %q, want WWW-Authenticate", exposed)
			}
		})
	}
}

// TestCachingWhenCallersSignIn: with any AUTH_MODE but none, no answer is public, not even
// one to a request without a credential (which the sign-in lets through only in the demo).
func TestCachingWhenCallersSignIn(t *testing.T) {
	t.Parallel()
	for _, mode := range []callerauth.Mode{callerauth.ModeAPIKey, callerauth.ModeEntra} {
		srv := newServer(t, gqlhttp.Options{CacheMaxAge: time.Minute, AuthMode: mode})
		body, _ := json.Marshal(map[string]any{"query": quotaQuery, "extensions": json.RawMessage(persistedExt(quotaQuery))})
		if r := post(t, srv.URL, string(body), nil); errorCode(r) != "" {
			t.Fatalf("registering the query: %v", r.body)
		}
		for _, h := range []http.Header{nil, {"Authorization": {"Bearer x"}}} {
			r := get(t, srv.URL, url.Values{"extensions": {persistedExt(quotaQuery)}}, h)
			if cc := r.header.Get("Cache-Control"); cc != "private, max-age=60" {
				t.Errorf("AUTH_MODE=%s, headers %v: Cache-Control %q, want private, max-age=60", mode, h, cc)
			}
		}
	}
}

// TestCORSAllowsPreflightHeaders: a cross-origin frontend may send every header the CSRF
// check takes as the sign of a preflight, and W3C Trace Context's, so its trace continues here.
func TestCORSAllowsPreflightHeaders(t *testing.T) {
	t.Parallel()
	srv := newCORSServer(t, []string{"https://app.example.com"}, gqlhttp.Options{})
	for _, h := range append(slices.Clone(csrf.PreflightHeaders), "traceparent", "tracestate") {
		req, _ := http.NewRequest(http.MethodOptions, srv.URL, nil)
		req.Header.Set("Origin", "https://app.example.com")
		req.Header.Set("Access-Control-Request-Method", http.MethodGet)
		req.Header.Set("Access-Control-Request-Headers", strings.ToLower(h))
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers")); !strings.Contains(got, strings.ToLower(h)) {
			t.Errorf("preflight for %s: Access-Control-Allow-Headers %q", h, got)
		}
	}
}
