package simulator

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

func demoRequest(t *testing.T, s *Simulator, method, path, contentType, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	return rec
}

func TestDemoPersons(t *testing.T) {
	t.Parallel()
	s, _ := newTestSim(t, Options{})
	rec := get(t, s, "/demo/persons", "")
	wantStatus(t, rec, http.StatusOK)
	ans := decode[demoPersonsAnswer](t, rec)
	if ans.TenantID != DemoTenantID || ans.Issuer != "http://example.com/"+DemoTenantID+"/v2.0" || ans.Audience != DefaultAudience {
		t.Errorf("answer header: %+v", ans)
	}
	if len(ans.Persons) != len(s.Persons()) {
		t.Fatalf("%d persons, want %d", len(ans.Persons), len(s.Persons()))
	}
	for _, p := range ans.Persons {
		if len(p.Groups) != len(p.RBACGroupIDs) {
			t.Errorf("%s: groups %v for ids %v", p.ID, p.Groups, p.RBACGroupIDs)
		}
		for _, g := range p.Groups {
			if (g.Name == nil) != (g.ID == GroupUnassigned) {
				t.Errorf("%s: group %d named %v", p.ID, g.ID, g.Name)
			}
		}
	}
	if rec.Header().Get("Access-Control-Allow-Origin") != "*" {
		t.Error("no CORS header")
	}
}

func TestDemoSignIn(t *testing.T) {
	t.Parallel()
	s, clk := newTestSim(t, Options{}) // issuer from the request's host, as in the playground
	tests := []struct {
		name, method, contentType, body string
		status                          int
		errCode                         string
	}{
		{"JSON by id", http.MethodPost, "application/json", `{"person":"megan"}`, 200, ""},
		{"JSON by UPN with audience", http.MethodPost, "application/json; charset=utf-8", `{"person":"Grady.Archie@contoso.com","audience":"api://other"}`, 200, ""},
		{"form", http.MethodPost, "application/x-www-form-urlencoded", "person=nestor", 200, ""},
		{"unknown person", http.MethodPost, "application/json", `{"person":"mallory"}`, 404, "unknown_person"},
		{"no person", http.MethodPost, "application/json", `{}`, 400, "invalid_request"},
		{"bad JSON", http.MethodPost, "application/json", `{"person":`, 400, "invalid_request"},
		{"GET", http.MethodGet, "", "", 405, "invalid_request"},
	}
	keys := fetchJWKS(t, s, "/"+DemoTenantID+"/discovery/v2.0/keys")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := demoRequest(t, s, tt.method, "/demo/signin", tt.contentType, tt.body)
			wantStatus(t, rec, tt.status)
			if tt.errCode != "" {
				e := decode[oauthErrorBody](t, rec)
				if e.Error != tt.errCode || e.ErrorDescription == "" {
					t.Errorf("error %+v, want %s", e, tt.errCode)
				}
				if tt.errCode == "unknown_person" && !strings.Contains(e.ErrorDescription, "adele, megan, grady") {
					t.Errorf("error %+v, want it to name the demo persons", e)
				}
				return
			}
			ans := decode[demoSignInAnswer](t, rec)
			aud := DefaultAudience
			if strings.Contains(tt.body, "api://other") {
				aud = "api://other"
			}
			claims, err := verify(ans.AccessToken, keys, jwt.WithTimeFunc(clk.Now), jwt.WithAudience(aud),
				jwt.WithIssuer("http://example.com/"+DemoTenantID+"/v2.0"))
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			if claims["oid"] != ans.Person.OID || ans.TokenType != "Bearer" || ans.ExpiresIn != 3599 {
				t.Errorf("answer %+v, oid claim %v", ans.Person, claims["oid"])
			}
		})
	}
	// The signed-in token works for on-behalf-of at once.
	rec := demoRequest(t, s, http.MethodPost, "/demo/signin", "application/json", `{"person":"megan"}`)
	tok := decode[demoSignInAnswer](t, rec).AccessToken
	wantStatus(t, postToken(t, s, DemoTenantID, oboForm(tok)), http.StatusOK)

	megan, _ := s.Person("megan")
	if got := s.Stats()[EndpointDemo].ByIdentity[megan.OID]; got != 2 {
		t.Errorf("demo sign-ins by Megan: got %d, want 2", got)
	}
}

func TestDemoRoutes(t *testing.T) {
	t.Parallel()
	s, _ := newTestSim(t, Options{})
	rec := demoRequest(t, s, http.MethodOptions, "/demo/signin", "", "")
	wantStatus(t, rec, http.StatusNoContent)
	if rec.Header().Get("Access-Control-Allow-Origin") != "*" || !strings.Contains(rec.Header().Get("Access-Control-Allow-Methods"), "POST") ||
		rec.Header().Get("Access-Control-Allow-Headers") != "Content-Type" {
		t.Errorf("preflight headers: %v", rec.Header())
	}
	wantStatus(t, demoRequest(t, s, http.MethodGet, "/demo/unknown", "", ""), http.StatusNotFound)
	wantStatus(t, demoRequest(t, s, http.MethodPost, "/demo/persons", "", ""), http.StatusMethodNotAllowed)
	wantStatus(t, demoRequest(t, s, http.MethodPost, "/demo/signin", "application/json", `{"person":"`+strings.Repeat("x", maxDemoBody)+`"}`), http.StatusBadRequest)
}
