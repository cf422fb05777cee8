package app_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mdegraph/mdegraph/internal/app"
	"github.com/mdegraph/mdegraph/internal/defender"
)

// blockingTransport holds every upstream call until its request's context ends, and says
// when one has arrived.
type blockingTransport struct{ arrived chan struct{} }

func (b blockingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	select {
	case b.arrived <- struct{}{}:
	default:
	}
	<-r.Context().Done()
	return nil, r.Context().Err()
}

// TestShutdownAnswersRequestsInFlight: at the first stop signal /readyz answers 503; a query
// still waiting for Defender when the grace ends is answered SHUTTING_DOWN (503, coded, no
// data), not cut off with an empty reply.
func TestShutdownAnswersRequestsInFlight(t *testing.T) {
	t.Parallel()
	upstream := blockingTransport{arrived: make(chan struct{}, 1)}
	s := newService(t, nil, app.Options{Client: func(o *defender.Options) {
		o.HTTPClient = &http.Client{Transport: upstream}
	}})
	answered := make(chan *http.Response, 1)
	go func() {
		body := `{"query":"{ machine(id: \"` + s.sim.ExampleMachineID() + `\") { logonUsers { id } } }"}`
		resp, err := http.Post(s.url, "application/json", strings.NewReader(body))
		if err != nil {
			t.Error(err)
			close(answered)
			return
		}
		answered <- resp
	}()
	<-upstream.arrived

	ready := func() int {
		rec := httptest.NewRecorder()
		s.app.Ready.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return rec.Code
	}
	s.app.Drain.Begin()
	if got := ready(); got != http.StatusServiceUnavailable {
		t.Errorf("/readyz after the stop signal: %d, want 503", got)
	}
	if n := s.app.Drain.InFlight(); n != 1 {
		t.Errorf("%d requests in flight, want 1", n)
	}
	s.app.Drain.Cut()
	resp := <-answered
	if resp == nil {
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("answer %q: %v", b, err)
	}
	if _, hasData := got["data"]; resp.StatusCode != http.StatusServiceUnavailable || hasData || !strings.Contains(string(b), `"code":"SHUTTING_DOWN"`) {
		t.Errorf("answer %d %s, want 503 with one SHUTTING_DOWN error and no data", resp.StatusCode, b)
	}
	if s.app.Drain.Interrupted() != 1 {
		t.Errorf("interrupted %d, want 1", s.app.Drain.Interrupted())
	}
}
