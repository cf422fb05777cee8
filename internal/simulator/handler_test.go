package simulator

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestGetMachine(t *testing.T) {
	t.Parallel()
	s, _ := newTestSim(t, Options{})
	tok := getToken(t, s)
	id, name := s.ExampleMachineID(), s.ExampleMachineName()
	tests := []struct {
		name, target string
	}{
		{"by id", "/api/machines/" + id},
		{"by upper-case id", "/api/machines/" + strings.ToUpper(id)},
		{"by name", "/api/machines/" + name},
		{"by upper-case name", "/api/machines/" + strings.ToUpper(name)},
		{"v1.0 alias", "/api/v1.0/machines/" + id},
		{"path case", "/API/Machines/" + id},
		{"trailing slash", "/api/machines/" + id + "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := get(t, s, tt.target, tok)
			wantStatus(t, rec, http.StatusOK)
			if got := rec.Header().Get("Content-Type"); got != contentTypeOData {
				t.Errorf("Content-Type: got %q, want %q", got, contentTypeOData)
			}
			var body map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			if got, want := body["@odata.context"], APIContextBase+"/$metadata#Machines/$entity"; got != want {
				t.Errorf("@odata.context: got %v, want %v", got, want)
			}
			if body["id"] != id || body["computerDnsName"] != name {
				t.Errorf("machine: got id %v name %v, want %s %s", body["id"], body["computerDnsName"], id, name)
			}
		})
	}
	for _, target := range []string{"/api/machines/0000000000000000000000000000000000000000", "/api/machines/no-such-host.contoso.local"} {
		msg := wantAPIError(t, get(t, s, target, tok), http.StatusNotFound, codeResourceNotFound)
		if !strings.Contains(msg, "was not found") {
			t.Errorf("404 message: got %q", msg)
		}
	}
}

// TestDuplicateName covers the sharp edge: two devices share a computer name, and GET by that name
// answers the most recently seen one.
func TestDuplicateName(t *testing.T) {
	t.Parallel()
	s, _ := newTestSim(t, Options{})
	byName := map[string][]Machine{}
	for _, m := range s.Machines() {
		byName[m.ComputerDNSName] = append(byName[m.ComputerDNSName], m)
	}
	var dups [][]Machine
	for _, ms := range byName {
		if len(ms) > 1 {
			dups = append(dups, ms)
		}
	}
	if len(dups) != 1 || len(dups[0]) != 2 {
		t.Fatalf("shared computer names: got %d groups, want exactly one pair", len(dups))
	}
	a, b := dups[0][0], dups[0][1]
	newer, older := a, b
	if older.LastSeen > newer.LastSeen { // the layout sorts as text
		newer, older = older, newer
	}
	if !newer.IsPotentialDuplication || !older.IsPotentialDuplication {
		t.Error("twins are not flagged isPotentialDuplication")
	}
	tok := getToken(t, s)
	rec := get(t, s, "/api/machines/"+url.PathEscape(strings.ToUpper(newer.ComputerDNSName)), tok)
	wantStatus(t, rec, http.StatusOK)
	if got := decode[Machine](t, rec).ID; got != newer.ID {
		t.Errorf("GET by shared name: got %s, want the most recently seen %s (not %s)", got, newer.ID, older.ID)
	}
	if m, _ := s.Machine(newer.ComputerDNSName); m.ID != newer.ID {
		t.Errorf("Machine(name): got %s, want %s", m.ID, newer.ID)
	}
	for _, m := range []Machine{a, b} { // both stay reachable by id
		wantStatus(t, get(t, s, "/api/machines/"+m.ID, tok), http.StatusOK)
	}
}

func TestLogonUsers(t *testing.T) {
	t.Parallel()
	s, _ := newTestSim(t, Options{})
	tok := getToken(t, s)
	id := s.ExampleMachineID()
	for _, target := range []string{"/api/machines/" + id + "/logonusers", "/api/v1.0/machines/" + strings.ToUpper(id) + "/LogonUsers"} {
		rec := get(t, s, target, tok)
		wantStatus(t, rec, http.StatusOK)
		if got := rec.Header().Get("Content-Type"); got != contentTypeOData {
			t.Errorf("Content-Type: got %q, want %q", got, contentTypeOData)
		}
		body := decode[collection[User]](t, rec)
		if want := APIContextBase + "/$metadata#Users"; body.Context != want {
			t.Errorf("@odata.context: got %q, want %q", body.Context, want)
		}
		want, _ := s.LogonUsers(id)
		gotJSON, _ := json.Marshal(body.Value)
		wantJSON, _ := json.Marshal(want)
		if string(gotJSON) != string(wantJSON) {
			t.Errorf("logon users:\ngot  %s\nwant %s", gotJSON, wantJSON)
		}
	}

	// A device without logon users answers an empty list, not null.
	var empty string
	for _, m := range s.Machines() {
		if u, _ := s.LogonUsers(m.ID); len(u) == 0 {
			empty = m.ID
			break
		}
	}
	rec := get(t, s, "/api/machines/"+empty+"/logonusers", tok)
	wantStatus(t, rec, http.StatusOK)
	if !strings.Contains(rec.Body.String(), `"value":[]`) {
		t.Errorf("empty logon users: got %s, want \"value\":[]", rec.Body.String())
	}

	// By name, and unknown ids, answer 404: the route takes a machine id only.
	for _, target := range []string{"/api/machines/" + s.ExampleMachineName() + "/logonusers", "/api/machines/ffff/logonusers"} {
		wantAPIError(t, get(t, s, target, tok), http.StatusNotFound, codeResourceNotFound)
	}
	if got := s.LogonUserCalls(id); got != 2 {
		t.Errorf("LogonUserCalls(%s): got %d, want 2", id, got)
	}
	if got := s.LogonUserCalls(s.ExampleMachineName()); got != 1 {
		t.Errorf("LogonUserCalls(name): got %d, want 1", got)
	}
	s.ResetStats()
	if got := len(s.LogonUserCallCounts()); got != 0 {
		t.Errorf("after ResetStats: %d ids counted, want 0", got)
	}
}

func TestRouting(t *testing.T) {
	t.Parallel()
	s, _ := newTestSim(t, Options{})
	tok := getToken(t, s)
	id := s.ExampleMachineID()
	tests := []struct {
		name, method, target string
		status               int
		code                 string
	}{
		{"unknown path", "GET", "/api/alerts", 404, codeNotFound},
		{"root", "GET", "/", 404, codeNotFound},
		{"too deep", "GET", "/api/machines/" + id + "/logonusers/x", 404, codeNotFound},
		{"unknown sub-resource", "GET", "/api/machines/" + id + "/software", 404, codeNotFound},
		{"POST list", "POST", "/api/machines", 405, "MethodNotAllowed"},
		{"DELETE machine", "DELETE", "/api/machines/" + id, 405, "MethodNotAllowed"},
		{"PUT logonusers", "PUT", "/api/machines/" + id + "/logonusers", 405, "MethodNotAllowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := call(t, s, tt.method, tt.target, tok)
			wantAPIError(t, rec, tt.status, tt.code)
			if tt.status == 405 && rec.Header().Get("Allow") != "GET" {
				t.Errorf("Allow: got %q, want GET", rec.Header().Get("Allow"))
			}
		})
	}
}

func TestURITooLong(t *testing.T) {
	t.Parallel()
	s, _ := newTestSim(t, Options{})
	tok := getToken(t, s)
	base := "/api/machines?$top=1&pad="
	atLimit := base + strings.Repeat("x", MaxURILength-len(base))
	wantStatus(t, get(t, s, atLimit, tok), http.StatusOK)
	wantAPIError(t, get(t, s, atLimit+"x", tok), http.StatusRequestURITooLong, "RequestUriTooLong")

	// A realistic cause: one `or` term per device for the whole data set.
	var terms []string
	for _, m := range s.Machines() {
		terms = append(terms, "id eq '"+m.ID+"'")
	}
	target := "/api/machines?$filter=" + url.QueryEscape(strings.Join(terms, " or "))
	wantAPIError(t, get(t, s, target, tok), http.StatusRequestURITooLong, "RequestUriTooLong")
	if got := s.Stats()[EndpointListMachines].ByStatus[414]; got != 2 {
		t.Errorf("414s in stats: got %d, want 2", got)
	}
}

func TestDeniedPermissions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		denied    string
		forbidden []string // endpoints answering 403
		allowed   []string
		role      string
	}{
		{"User.Read.All", []string{"logonusers"}, []string{"machine", "list"}, "User.Read.All"},
		{"machine.read.all", []string{"machine", "list"}, []string{"logonusers"}, "Machine.Read.All"},
	}
	for _, tt := range tests {
		t.Run(tt.denied, func(t *testing.T) {
			t.Parallel()
			s, _ := newTestSim(t, Options{DeniedPermissions: []string{tt.denied}})
			tok := getToken(t, s)
			targets := map[string]string{
				"machine":    "/api/machines/" + s.ExampleMachineID(),
				"list":       "/api/machines",
				"logonusers": "/api/machines/" + s.ExampleMachineID() + "/logonusers",
			}
			for _, name := range tt.forbidden {
				msg := wantAPIError(t, get(t, s, targets[name], tok), http.StatusForbidden, codeForbidden)
				if !strings.Contains(msg, "API required roles: "+tt.role) {
					t.Errorf("%s: message %q does not name the missing role %s", name, msg, tt.role)
				}
			}
			for _, name := range tt.allowed {
				wantStatus(t, get(t, s, targets[name], tok), http.StatusOK)
			}
		})
	}
}

func TestLatency(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s := New(Options{Latency: 2 * time.Second}) // default clock: the bubble's
		tok := getToken(t, s)                       // the token endpoint adds no latency
		start := time.Now()
		wantStatus(t, get(t, s, "/api/machines/"+s.ExampleMachineID(), tok), http.StatusOK)
		if got := time.Since(start); got != 2*time.Second {
			t.Errorf("latency: got %v, want 2s", got)
		}

		// A client giving up while the answer waits gets nothing; the call still counted.
		ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
		defer cancel()
		req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/api/machines", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		start = time.Now()
		s.ServeHTTP(rec, req)
		if got := time.Since(start); got != 500*time.Millisecond {
			t.Errorf("canceled call returned after %v, want 500ms", got)
		}
		if rec.Body.Len() != 0 || rec.Header().Get("Content-Type") != "" {
			t.Errorf("canceled call wrote an answer: %q", clip(rec.Body.String()))
		}
		st := s.Stats()[EndpointListMachines]
		if st.Canceled != 1 || st.Calls != 1 || st.MaxInAnyMinute != 1 {
			t.Errorf("stats after cancel: got %+v, want 1 call, 1 canceled, counted by the limit", st)
		}
	})
}

// TestOverHTTP runs the simulator behind a real server, as the standalone command does.
func TestOverHTTP(t *testing.T) {
	t.Parallel()
	s, _ := newTestSim(t, Options{})
	srv := httptest.NewServer(s)
	defer srv.Close()

	resp, err := http.PostForm(srv.URL+"/"+DemoTenantID+"/oauth2/v2.0/token", tokenForm())
	if err != nil {
		t.Fatal(err)
	}
	var tok tokenAnswer
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("token: status %d, err %v", resp.StatusCode, err)
	}

	do := func(target string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+target, nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	filter := url.QueryEscape("healthStatus eq 'Active' and startswith(computerDnsName,'srv-')")
	resp, body := do("/api/machines?$filter=" + filter + "&$top=3")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != contentTypeOData {
		t.Fatalf("list: status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var list collection[Machine]
	if err := json.Unmarshal(body, &list); err != nil || len(list.Value) != 3 {
		t.Fatalf("list: %d machines, err %v; want 3", len(list.Value), err)
	}
	for _, m := range list.Value {
		if !strings.HasPrefix(m.ComputerDNSName, "srv-") || m.HealthStatus != "Active" {
			t.Errorf("filtered list holds %s (%s)", m.ComputerDNSName, m.HealthStatus)
		}
	}
	resp, _ = do("/api/machines?$filter=" + strings.Repeat("x", MaxURILength))
	if resp.StatusCode != http.StatusRequestURITooLong {
		t.Errorf("long URI: status %d, want 414", resp.StatusCode)
	}
}

func TestAccessorsReturnCopies(t *testing.T) {
	t.Parallel()
	s, _ := newTestSim(t, Options{})
	id := s.ExampleMachineID()
	m, ok := s.Machine(id)
	if !ok {
		t.Fatal("example machine not found")
	}
	m.MachineTags[0] = "changed"
	*m.RiskScore = "changed"
	m.IPAddresses[0].IPAddress = "changed"
	users, _ := s.LogonUsers(id)
	*users[0].IsOnlyNetworkUser = true
	again, _ := s.Machine(id)
	againUsers, _ := s.LogonUsers(id)
	if again.MachineTags[0] == "changed" || *again.RiskScore == "changed" || again.IPAddresses[0].IPAddress == "changed" || *againUsers[0].IsOnlyNetworkUser {
		t.Error("changing a returned value changed the simulator's data")
	}
	if _, ok := s.LogonUsers(s.ExampleMachineName()); ok {
		t.Error("LogonUsers(name): got ok, want false (ids only, like the route)")
	}
	if !slices.Equal(machineIDs(s.Machines())[:1], []string{id}) {
		t.Error("Machines() does not start with the example machine")
	}
}
