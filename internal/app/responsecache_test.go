package app_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"testing"

	"github.com/mdegraph/mdegraph/internal/app"
)

// TestResponseCacheKeepsQuotaCurrent: an operation answered from the response cache carries
// the quota as it is when it is answered, not as it was when its answer was kept; and the
// answer kept is the data the resolvers gave.
func TestResponseCacheKeepsQuotaCurrent(t *testing.T) {
	t.Parallel()
	s := newService(t, nil, app.Options{})
	q := `query($id: ID!) { machine(id: $id) { computerDnsName logonUsers { id } } }`
	ask := func(id string) (data json.RawMessage, usedThisMinute int) {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"query": q, "variables": map[string]string{"id": id}})
		resp, err := http.Post(s.url, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct {
			Data       json.RawMessage
			Errors     []gqlError
			Extensions struct {
				Quota map[string]struct{ Minute struct{ Used int } }
			}
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || len(out.Errors) > 0 {
			t.Fatalf("answer: %v, errors %+v", err, out.Errors)
		}
		return out.Data, out.Extensions.Quota["machines.logonusers"].Minute.Used
	}
	id := s.sim.ExampleMachineID()
	first, _ := ask(id)
	ask(id) // from the loaders' cache: kept
	hits := responseCacheHits(t, s)
	kept, used := ask(id)
	if responseCacheHits(t, s) != hits+1 {
		t.Fatal("the third ask was not answered from the response cache")
	}
	if !bytes.Equal(kept, first) {
		t.Errorf("kept data %s, want %s", kept, first)
	}
	ask(s.sim.Machines()[5].ID) // one more logonusers call
	if _, now := ask(id); now != used+1 || responseCacheHits(t, s) != hits+2 {
		t.Errorf("from the response cache after one more call: logonusers used %d, want %d (the quota now)", now, used+1)
	}
}

// responseCacheHits reads mdegraph_response_cache_lookups_total{outcome="hit"}.
func responseCacheHits(t *testing.T, s *service) int {
	t.Helper()
	m := regexp.MustCompile(`mdegraph_response_cache_lookups_total\{outcome="hit"\} (\d+)`).FindStringSubmatch(scrape(t, s))
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}
