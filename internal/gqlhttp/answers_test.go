package gqlhttp_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mdegraph/mdegraph/internal/defender"
	"github.com/mdegraph/mdegraph/internal/gqlhttp"
	"github.com/mdegraph/mdegraph/internal/loaders"
	"github.com/mdegraph/mdegraph/resolvers"
)

// flakySource answers one device's logon users until failing is set, then fails as Defender's
// 503 would.
type flakySource struct{ failing atomic.Bool }

func (s *flakySource) GetMachine(context.Context, string) (*defender.Machine, error) {
	return nil, errors.New("not used")
}

func (s *flakySource) GetMachines(context.Context, []string) ([]defender.Machine, error) {
	return nil, errors.New("not used")
}

func (s *flakySource) LogonUsers(context.Context, string) ([]defender.User, error) {
	if s.failing.Load() {
		return nil, &defender.ErrorResponse{Endpoint: defender.EndpointLogonUsers, StatusCode: http.StatusServiceUnavailable}
	}
	return []defender.User{{ID: `contoso\jdoe`, AccountName: "jdoe"}}, nil
}

// TestStaleAnswerIsNeverCachedByHTTP: a persisted GET whose answer is fresh may be kept by
// browsers and CDNs; the same GET answered stale is no-store, so that the stale answer does
// not outlive the outage it stood in for.
func TestStaleAnswerIsNeverCachedByHTTP(t *testing.T) {
	t.Parallel()
	src := &flakySource{}
	// Nothing is reused fresh (CacheTTL 0), so the second GET calls the source again, and gets
	// the stale answer when it fails.
	f := loaders.NewFetcher(loaders.Options{Source: src, CacheTTL: 0, StaleTTL: time.Hour})
	h := gqlhttp.New(gqlhttp.Options{Resolver: &resolvers.Resolver{Quota: fakeQuota{}}, CacheMaxAge: time.Minute})
	srv := httptest.NewServer(loaders.Middleware(f, func(*http.Request) string { return "app" }, h))
	t.Cleanup(srv.Close)

	const q = `{ machine(id: "0123456789abcdef0123456789abcdef01234567") { logonUsers { id } } }`
	body, _ := json.Marshal(map[string]any{"query": q, "extensions": json.RawMessage(persistedExt(q))})
	if r := post(t, srv.URL, string(body), nil); errorCode(r) != "" {
		t.Fatalf("registering the query: %v", r.body)
	}
	hashOnly := url.Values{"extensions": {persistedExt(q)}}
	fresh := get(t, srv.URL, hashOnly, nil)
	if cc := fresh.header.Get("Cache-Control"); cc != "public, max-age=60" {
		t.Errorf("fresh answer: Cache-Control %q, want public, max-age=60", cc)
	}
	src.failing.Store(true)
	stale := get(t, srv.URL, hashOnly, nil)
	ext, _ := stale.body["extensions"].(map[string]any)
	if errorCode(stale) != "" || ext["stale"] == nil {
		t.Fatalf("want a stale answer, got %v", stale.body)
	}
	if cc := stale.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("stale answer: Cache-Control %q, want no-store", cc)
	}
}

// TestCORSAllowsStaleIfError: a browser on another origin may send Cache-Control (for
// stale-if-error).
func TestCORSAllowsStaleIfError(t *testing.T) {
	t.Parallel()
	srv := newCORSServer(t, []string{"https://app.example.com"}, gqlhttp.Options{})
	req, _ := http.NewRequest(http.MethodOptions, srv.URL, nil)
	req.Header.Set("Origin", "https://app.example.com")
	req.Header.Set("Access-Control-Request-Method", http.MethodPost)
	req.Header.Set("Access-Control-Request-Headers", "cache-control,content-type") // as browsers send it: sorted, lower case
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers")); !strings.Contains(got, "cache-control") {
		t.Errorf("preflight with Cache-Control: no Access-Control-Allow-Headers (status %d)", resp.StatusCode)
	}
}
