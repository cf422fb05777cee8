package resolvers

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/transport"

	"github.com/mdegraph/mdegraph/graph"
	"github.com/mdegraph/mdegraph/internal/defender"
	"github.com/mdegraph/mdegraph/internal/loaders"
	"github.com/mdegraph/mdegraph/internal/quota"
)

const testDevice = "0123456789abcdef0123456789abcdef01234567"

// slowSource answers every device's logon users after a second (of a synctest bubble's clock),
// and counts the answers given.
type slowSource struct {
	mu       sync.Mutex
	answered int
	fail     error
}

func (s *slowSource) GetMachine(_ context.Context, ref string) (*defender.Machine, error) {
	return &defender.Machine{ID: testDevice, ComputerDNSName: "desk-1.contoso.local"}, nil
}

func (s *slowSource) GetMachines(context.Context, []string) ([]defender.Machine, error) {
	return nil, errors.New("not used")
}

func (s *slowSource) LogonUsers(context.Context, string) ([]defender.User, error) {
	time.Sleep(time.Second)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return nil, s.fail
	}
	s.answered++
	return []defender.User{{ID: `contoso\jdoe`}}, nil
}

// usedReporter reports as used the logon users answers the source has given when asked.
type usedReporter struct{ src *slowSource }

func (q usedReporter) Status() []quota.FamilyStatus {
	q.src.mu.Lock()
	defer q.src.mu.Unlock()
	return []quota.FamilyStatus{{Family: string(defender.EndpointLogonUsers), Status: quota.Status{
		Windows: []quota.WindowStatus{{Window: quota.Window{Limit: 100, Per: time.Minute}, Used: q.src.answered, Remaining: 100 - q.src.answered}},
	}}}
}

func serve(t *testing.T, f *loaders.Fetcher, q QuotaReporter, query string) map[string]json.RawMessage {
	t.Helper()
	srv := handler.New(graph.NewExecutableSchema(graph.Config{Resolvers: &Resolver{Quota: q}}))
	srv.AddTransport(transport.POST{})
	srv.Use(extension.Introspection{})
	srv.Use(OperationState{})
	h := loaders.Middleware(f, func(*http.Request) string { return "app" }, srv)
	body, _ := json.Marshal(map[string]any{"query": query})
	req := httptest.NewRequest(http.MethodPost, "/query", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out map[string]json.RawMessage
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("%s: %v", rec.Body.String(), err)
	}
	return out
}

// TestQuotaIsReadAfterTheOperationsCalls: Query.quota, resolved concurrently with the other
// root fields, waits for them, so its figures include their upstream calls. (That
// extensions.quota is the same reading is checked with the whole service, in internal/app.)
func TestQuotaIsReadAfterTheOperationsCalls(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		src := &slowSource{}
		f := loaders.NewFetcher(loaders.Options{Source: src, CacheTTL: time.Minute})
		out := serve(t, f, usedReporter{src}, `{ quota { endpoint minute { used } } a: machine(id: "`+testDevice+`") { logonUsers { id } } }`)
		var data struct {
			Quota []struct{ Minute struct{ Used int } }
		}
		json.Unmarshal(out["data"], &data)
		if len(data.Quota) != 1 || data.Quota[0].Minute.Used != 1 {
			t.Errorf("Query.quota = %s, want used 1: the machine's call was made before it was read", out["data"])
		}
	})
}

func TestOperationWithoutQuotaWaitsForNothing(t *testing.T) {
	t.Parallel()
	for _, q := range []string{`{ __typename }`, `{ quota { endpoint } }`, `{ quota { endpoint } __typename __schema { queryType { name } } }`} {
		synctest.Test(t, func(t *testing.T) {
			src := &slowSource{}
			start := time.Now()
			out := serve(t, loaders.NewFetcher(loaders.Options{Source: src}), usedReporter{src}, q)
			if out["errors"] != nil || time.Since(start) != 0 {
				t.Errorf("%s: %s after %v, want an answer at once", q, out["errors"], time.Since(start))
			}
		})
	}
}

// TestStaleAnswersListedByPath: every field served stale is listed, by its response path, in
// path order. (Two devices: in a synctest bubble, a key repeated in one request would wait on
// the dataloader's mutex, which the bubble's clock does not see as blocked.)
func TestStaleAnswersListedByPath(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		src := &slowSource{}
		f := loaders.NewFetcher(loaders.Options{Source: src, CacheTTL: time.Minute, StaleTTL: time.Hour})
		q := `{ b: machine(id: "` + testDevice + `") { logonUsers { id } } a: machine(id: "` + strings.Repeat("f", 40) + `") { u: logonUsers { id } } }`
		serve(t, f, nil, q)
		time.Sleep(2 * time.Minute)
		src.mu.Lock()
		src.fail = &defender.ErrorResponse{StatusCode: 503}
		src.mu.Unlock()
		out := serve(t, f, nil, q)
		if got, want := string(out["extensions"]), `{"stale":[{"path":["a","u"],"ageSeconds":121,"reason":"UPSTREAM_UNAVAILABLE"},{"path":["b","logonUsers"],"ageSeconds":121,"reason":"UPSTREAM_UNAVAILABLE"}]}`; got != want {
			t.Errorf("extensions = %s\nwant %s", got, want)
		}
	})
}

func TestKnownDeviceNotFoundError(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		ep       defender.Endpoint
		wantPart string
	}{{defender.EndpointLogonUsers, "logon users"}, {defender.EndpointAlerts, "alerts"}} {
		nf := &defender.ErrorResponse{Endpoint: tt.ep, StatusCode: 404, Target: "corr-1"}
		err := error(&KnownDeviceNotFoundError{DeviceID: testDevice, Endpoint: tt.ep, Err: nf})
		var got *KnownDeviceNotFoundError
		var resp *defender.ErrorResponse
		if !errors.As(err, &got) || !errors.As(err, &resp) || resp.Target != "corr-1" {
			t.Errorf("errors.As: want both the KnownDeviceNotFoundError and the 404 it wraps")
		}
		if !strings.Contains(err.Error(), testDevice) || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), tt.wantPart) {
			t.Errorf("Error() = %q, want the device, the 404 and %q", err.Error(), tt.wantPart)
		}
		code, msg, ext := classify(err)
		if code != CodeUpstreamUnavailable || ext["correlationId"] != "corr-1" || !strings.Contains(msg, tt.wantPart) || !strings.Contains(msg, "GET /api/machines/{id}/") {
			t.Errorf("classify = %s %q %v; want UPSTREAM_UNAVAILABLE naming the %s call, with its correlation id", code, msg, ext, tt.wantPart)
		}
	}
}
