package simulator

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzServeHTTP: whatever the request target, the simulator answers without panicking, with a
// JSON body (or 204 for a preflight), and a person's token never reveals a device outside their
// groups.
func FuzzServeHTTP(f *testing.F) {
	s := New(Options{Devices: 40, PerMinute: -1, PerHour: -1, Authority: testAuthority})
	appRec := httptest.NewRecorder()
	s.ServeHTTP(appRec, formRequest("/t/oauth2/v2.0/token", tokenForm().Encode()))
	var app tokenAnswer
	_ = json.Unmarshal(appRec.Body.Bytes(), &app)
	assertion, _ := s.SignIn("grady")
	oboRec := httptest.NewRecorder()
	s.ServeHTTP(oboRec, formRequest("/t/oauth2/v2.0/token", oboForm(assertion).Encode()))
	var person tokenAnswer
	_ = json.Unmarshal(oboRec.Body.Bytes(), &person)
	if app.AccessToken == "" || person.AccessToken == "" {
		f.Fatal("setup: no tokens")
	}
	grady, _ := s.Person("grady")
	hidden := map[string]bool{}
	for _, m := range s.Machines() {
		if !grady.CanSee(m) {
			hidden[m.ID] = true
		}
	}
	id := s.ExampleMachineID()
	for _, seed := range []string{
		"/api/machines", "/api/machines/" + id, "/api/machines/" + id + "/alerts", "/api/machines/" + id + "/logonusers",
		"/api/users/jdoe/machines", "/api/users/zo%C3%AB%20o'brien/machines", "/api/machines?$filter=id eq 'x''y'&$top=3",
		"/api/machines?$skip=-1", "/api/v1.0/users//machines", "/t/v2.0/.well-known/openid-configuration",
		"/common/discovery/v2.0/keys", "/demo/persons", "/demo/signin", "/%zz/oauth2/v2.0/token", "/api/users/%2F/machines",
	} {
		f.Add(seed, false)
		f.Add(seed, true)
	}
	f.Fuzz(func(t *testing.T, target string, asPerson bool) {
		if !strings.HasPrefix(target, "/") {
			target = "/" + target
		}
		req, err := http.NewRequest(http.MethodGet, "http://example.com"+target, nil)
		if err != nil {
			return // not a request a client could send
		}
		tok := app.AccessToken
		if asPerson {
			tok = person.AccessToken
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("GET %s: status %d, body not JSON: %q", target, rec.Code, clip(rec.Body.String()))
		}
		if !asPerson || rec.Code != http.StatusOK {
			return
		}
		var body struct {
			ID    string `json:"id"`
			Value []struct {
				ID        string `json:"id"`
				MachineID string `json:"machineId"`
			} `json:"value"`
		}
		_ = json.Unmarshal(rec.Body.Bytes(), &body)
		if hidden[body.ID] {
			t.Fatalf("GET %s: Grady sees device %s", target, body.ID)
		}
		for _, v := range body.Value {
			if hidden[v.ID] || hidden[v.MachineID] {
				t.Fatalf("GET %s: Grady sees device %s%s", target, v.ID, v.MachineID)
			}
		}
	})
}

// FuzzOnBehalfOfAssertion: any assertion is refused with an OAuth error unless it is a valid
// token of the simulator's own, and the answer never echoes the client secret.
func FuzzOnBehalfOfAssertion(f *testing.F) {
	s := New(Options{Authority: testAuthority})
	valid, _ := s.SignIn("megan")
	parts := strings.Split(valid, ".")
	for _, seed := range []string{valid, "", "a.b.c", parts[0] + "." + parts[1] + ".", parts[0] + ".." + parts[2],
		"eyJhbGciOiJub25lIn0.eyJvaWQiOiJ4In0.", strings.Repeat("A", 5000)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, assertion string) {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, formRequest("/t/oauth2/v2.0/token", oboForm(assertion).Encode()))
		if strings.Contains(rec.Body.String(), DefaultClientSecret) {
			t.Fatal("the answer echoes the client secret")
		}
		if rec.Code == http.StatusOK {
			if assertion != valid {
				t.Fatalf("accepted assertion %q", clip(assertion))
			}
			return
		}
		var e oauthErrorBody
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" || len(e.ErrorCodes) != 1 {
			t.Fatalf("status %d: not an OAuth error: %q", rec.Code, clip(rec.Body.String()))
		}
	})
}

func formRequest(path, body string) *http.Request {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req
}
