package gqlhttp_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mdegraph/mdegraph/internal/defender"
	"github.com/mdegraph/mdegraph/internal/gqlhttp"
	"github.com/mdegraph/mdegraph/internal/loaders"
	"github.com/mdegraph/mdegraph/resolvers"
)

// countingSource answers the logon users of knownDevice, counting the calls; other devices
// are 404. fail, when set, is the error every call answers.
type countingSource struct {
	calls atomic.Int32
	fail  atomic.Pointer[error]
}

const knownDevice = "0123456789abcdef0123456789abcdef01234567"

func (s *countingSource) GetMachine(context.Context, string) (*defender.Machine, error) {
	return nil, &defender.ErrorResponse{Endpoint: defender.EndpointMachine, StatusCode: http.StatusNotFound}
}

func (s *countingSource) GetMachines(context.Context, []string) ([]defender.Machine, error) {
	return nil, nil
}

func (s *countingSource) LogonUsers(_ context.Context, id string) ([]defender.User, error) {
	s.calls.Add(1)
	if err := s.fail.Load(); err != nil {
		return nil, *err
	}
	if id != knownDevice {
		return nil, &defender.ErrorResponse{Endpoint: defender.EndpointLogonUsers, StatusCode: http.StatusNotFound, Code: "ResourceNotFound"}
	}
	return []defender.User{{ID: `contoso\jdoe`, AccountName: "jdoe"}}, nil
}

func (s *countingSource) failWith(err error) { s.fail.Store(&err) }

// savedByCache counts the logonusers calls the loaders' cache saved (loaders.Observer).
type savedByCache struct{ n atomic.Int32 }

func (s *savedByCache) Saved(ep defender.Endpoint, reason string, n int) {
	if ep == defender.EndpointLogonUsers && reason == loaders.SavedByCache {
		s.n.Add(int32(n))
	}
}

func (s *savedByCache) Stale(defender.Endpoint, string) {}

// answersFixture is the GraphQL handler with a response cache over the loaders, on
// countingSource; each request's identity is its X-Identity header.
type answersFixture struct {
	src     *countingSource
	saved   *savedByCache
	cache   *gqlhttp.ResponseCache
	hits    atomic.Int32
	handler http.Handler
}

func newAnswersFixture() *answersFixture {
	fx := &answersFixture{src: &countingSource{}, saved: &savedByCache{}}
	fx.cache = gqlhttp.NewResponseCache(1<<20, func(hit bool) {
		if hit {
			fx.hits.Add(1)
		}
	})
	f := loaders.NewFetcher(loaders.Options{Source: fx.src, CacheTTL: time.Minute, NotFoundTTL: time.Minute, StaleTTL: time.Hour,
		Observer: fx.saved, Forgotten: fx.cache.Forget})
	h := gqlhttp.New(gqlhttp.Options{Resolver: &resolvers.Resolver{Quota: fakeQuota{}}, ResponseCache: fx.cache})
	fx.handler = loaders.Middleware(f, func(r *http.Request) string { return r.Header.Get("X-Identity") }, h)
	return fx
}

// ask posts query with vars as identity, and returns the answer's JSON and whether the cache
// answered it.
func (fx *answersFixture) ask(t *testing.T, identity, query string, vars map[string]any) (map[string]any, bool) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	r := httptest.NewRequest(http.MethodPost, "/query", strings.NewReader(string(body)))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-Identity", identity)
	w := httptest.NewRecorder()
	before := fx.hits.Load()
	fx.handler.ServeHTTP(w, r)
	var out map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || w.Code != http.StatusOK {
		t.Fatalf("status %d, answer %s: %v", w.Code, w.Body, err)
	}
	return out, fx.hits.Load() > before
}

const usersQuery = `query($id: ID!) { machine(id: $id) { logonUsers { id } } }`

var device = map[string]any{"id": knownDevice}

// TestResponseCache: an operation whose answer came whole from the loaders' cache is answered
// again without running, with a current extensions.quota and the calls it saves counted, for
// as long as every part stays fresh; never across identities or variables.
func TestResponseCache(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		fx := newAnswersFixture()
		first, hit := fx.ask(t, "a", usersQuery, device) // calls Defender
		if hit || fx.src.calls.Load() != 1 {
			t.Fatalf("first: hit %v, %d calls; want a miss and one call", hit, fx.src.calls.Load())
		}
		if _, hit := fx.ask(t, "a", usersQuery, device); hit { // from the loaders' cache: kept
			t.Fatal("second: answered by the response cache, want it run (from the loaders' cache) and kept")
		}
		saved := fx.saved.n.Load()
		third, hit := fx.ask(t, "a", usersQuery, device)
		if !hit {
			t.Fatal("third: not answered by the response cache")
		}
		if fx.src.calls.Load() != 1 {
			t.Errorf("%d calls, want 1", fx.src.calls.Load())
		}
		if got, want := mustJSON(third["data"]), mustJSON(first["data"]); got != want {
			t.Errorf("kept data %s, want %s", got, want)
		}
		if ext, _ := third["extensions"].(map[string]any); ext["quota"] == nil {
			t.Errorf("a kept answer without extensions.quota: %v", third)
		}
		if got := fx.saved.n.Load() - saved; got != 1 {
			t.Errorf("the kept answer counted %d logonusers calls saved by the cache, want 1 (as the request it stands for)", got)
		}

		if _, hit := fx.ask(t, "b", usersQuery, device); hit {
			t.Error("another identity was answered with a's kept answer")
		}
		if _, hit := fx.ask(t, "a", usersQuery, map[string]any{"id": strings.ToUpper(knownDevice)}); hit {
			t.Error("other variables were answered with a kept answer")
		}

		time.Sleep(time.Minute) // the logon users are no longer fresh
		if _, hit := fx.ask(t, "a", usersQuery, device); hit {
			t.Error("answered from the response cache after its parts stopped being fresh")
		}
		if fx.src.calls.Load() < 2 {
			t.Errorf("%d calls, want Defender asked again once the answer was not fresh", fx.src.calls.Load())
		}
	})
}

// TestResponseCacheKeepsOnlyWholeFreshAnswers: an answer with an error, a stale part, or a live
// field (Query.quota) is never kept.
func TestResponseCacheKeepsOnlyWholeFreshAnswers(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		fx := newAnswersFixture()
		unknown := map[string]any{"id": strings.Repeat("e", 40)}
		withQuota := `query($id: ID!) { machine(id: $id) { logonUsers { id } } quota { endpoint } }`
		for range 3 {
			if r, hit := fx.ask(t, "a", usersQuery, unknown); hit || errorCode(result{body: r}) != "NOT_FOUND" {
				t.Fatalf("unknown device: hit %v, answer %v; want NOT_FOUND, run each time", hit, r)
			}
			if _, hit := fx.ask(t, "a", withQuota, device); hit {
				t.Fatal("an answer with Query.quota was kept")
			}
		}

		time.Sleep(time.Minute) // not fresh any more; Defender fails: the answer kept for stale use stands in
		fx.src.failWith(&defender.ErrorResponse{Endpoint: defender.EndpointLogonUsers, StatusCode: http.StatusServiceUnavailable})
		for range 3 {
			r, hit := fx.ask(t, "a", usersQuery, device)
			if ext, _ := r["extensions"].(map[string]any); hit || ext["stale"] == nil {
				t.Fatalf("Defender failing: hit %v, answer %v; want a stale answer, never kept", hit, r)
			}
		}
	})
}

// TestResponseCacheForgetsRefusedIdentities: when Defender refuses an identity (403), what was
// kept for it is not served again.
func TestResponseCacheForgetsRefusedIdentities(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		fx := newAnswersFixture()
		fx.ask(t, "a", usersQuery, device)
		fx.ask(t, "a", usersQuery, device)
		if _, hit := fx.ask(t, "a", usersQuery, device); !hit {
			t.Fatal("the third ask was not answered from the response cache")
		}
		// A refused call for a (another device, so that it reaches Defender) drops a's kept answers.
		fx.src.failWith(&defender.ErrorResponse{Endpoint: defender.EndpointLogonUsers, StatusCode: http.StatusForbidden})
		if r, _ := fx.ask(t, "a", usersQuery, map[string]any{"id": strings.Repeat("f", 40)}); errorCode(result{body: r}) == "" {
			t.Fatalf("want the refusal, got %v", r)
		}
		if _, hit := fx.ask(t, "a", usersQuery, device); hit {
			t.Error("a's kept answer was served after Defender refused a")
		}
	})
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
