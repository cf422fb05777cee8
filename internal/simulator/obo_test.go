package simulator

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestOnBehalfOf(t *testing.T) {
	t.Parallel()
	s, _ := newIdentitySim(t, Options{TenantID: DemoTenantID})
	megan, _ := s.Person("megan")
	for name, aud := range map[string]string{"App ID URI": DefaultAudience, "client id": DefaultClientID} {
		t.Run(name, func(t *testing.T) {
			rec := postToken(t, s, DemoTenantID, oboForm(mint(t, s, TokenClaims{Person: "megan", Audience: aud})))
			wantStatus(t, rec, http.StatusOK)
			ans := decode[tokenAnswer](t, rec)
			if ans.TokenType != "Bearer" || ans.ExpiresIn != 3599 || len(ans.AccessToken) < 32 || strings.Count(ans.AccessToken, ".") == 2 {
				t.Errorf("answer %+v: want Bearer, 3599 s, an opaque token", ans)
			}
			if !strings.Contains(ans.Scope, "Machine.Read") || !strings.Contains(ans.Scope, "Alert.Read") {
				t.Errorf("scope: got %q, want the delegated Defender permissions", ans.Scope)
			}
			wantStatus(t, get(t, s, "/api/machines", ans.AccessToken), http.StatusOK)
		})
	}
	// A v1 assertion, and one with the production issuer, are Entra ID's own as well.
	for _, c := range []TokenClaims{{Person: "megan", Version: "1.0"}, {Person: "megan", Issuer: "https://login.microsoftonline.com/" + DemoTenantID + "/v2.0"}} {
		wantStatus(t, postToken(t, s, DemoTenantID, oboForm(mint(t, s, c))), http.StatusOK)
	}
	st := s.Stats()[EndpointToken]
	if st.ByIdentity[megan.OID] != 4 || st.ByIdentity[IdentityApp] != 0 {
		t.Errorf("token ByIdentity: got %v, want 4 for Megan, none for the app", st.ByIdentity)
	}
	if got := s.Stats()[EndpointListMachines].ByIdentity[megan.OID]; got != 2 {
		t.Errorf("list ByIdentity[megan]: got %d, want 2", got)
	}
}

func TestOnBehalfOfErrors(t *testing.T) {
	t.Parallel()
	s, clk := newIdentitySim(t, Options{TenantID: DemoTenantID})
	now := clk.Now()
	valid := mint(t, s, TokenClaims{Person: "grady"})
	parts := strings.Split(valid, ".")
	tampered := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
	with := func(key, value string, assertion string) url.Values {
		f := oboForm(assertion)
		if value == "" {
			f.Del(key)
		} else {
			f.Set(key, value)
		}
		return f
	}
	assert := func(c TokenClaims) url.Values { return oboForm(mint(t, s, c)) }
	tests := []struct {
		name      string
		form      url.Values
		status    int
		oauth     string
		aadsts    int
		substring string
	}{
		{"no requested_token_use", with("requested_token_use", "", valid), 400, "invalid_request", 900144, "requested_token_use"},
		{"wrong requested_token_use", with("requested_token_use", "id_token", valid), 400, "invalid_request", 90014, "on_behalf_of"},
		{"no assertion", with("assertion", "", ""), 400, "invalid_request", 900144, "assertion"},
		{"no scope", with("scope", "", valid), 400, "invalid_request", 900144, "scope"},
		{"scope without resource", with("scope", "Machine.Read", valid), 400, "invalid_scope", 70011, "resource"},
		{"wrong secret", with("client_secret", "nope", valid), 401, "invalid_client", 7000215, ""},
		{"unknown client", with("client_id", "other-app", valid), 400, "unauthorized_client", 700016, ""},
		{"malformed", oboForm("not-a-jwt"), 400, "invalid_grant", 50027, "malformed"},
		{"tampered signature", oboForm(tampered), 400, "invalid_grant", 50013, "signature"},
		{"unknown kid", assert(TokenClaims{Person: "grady", KeyID: "rotated-away"}), 400, "invalid_grant", 50013, "rotated-away"},
		{"expired", assert(TokenClaims{Person: "grady", IssuedAt: now.Add(-2 * time.Hour)}), 400, "invalid_grant", 500133, "valid time range"},
		{"not yet valid", assert(TokenClaims{Person: "grady", NotBefore: now.Add(10 * time.Minute)}), 400, "invalid_grant", 500133, "valid time range"},
		{"wrong audience", assert(TokenClaims{Person: "grady", Audience: "api://other"}), 400, "invalid_grant", 50013, "audience"},
		{"other tenant", assert(TokenClaims{Person: "grady", TenantID: "99999999-0000-4000-8000-000000000000"}), 400, "invalid_grant", 50013, "tenant"},
		{"foreign issuer", assert(TokenClaims{Person: "grady", Issuer: "https://evil.example/" + DemoTenantID + "/v2.0"}), 400, "invalid_grant", 50013, "issuer"},
		{"app-only assertion", assert(TokenClaims{AppOnly: true}), 400, "invalid_grant", 50013, "application token"},
		{"unknown person", assert(TokenClaims{OID: "00000000-1111-4222-8333-444444444444"}), 400, "invalid_grant", 50034, "does not exist"},
		{"consent missing", assert(TokenClaims{Person: "pradeep"}), 400, "invalid_grant", 65001, "consented"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := postToken(t, s, DemoTenantID, tt.form)
			wantStatus(t, rec, tt.status)
			e := decode[oauthErrorBody](t, rec)
			if e.Error != tt.oauth || len(e.ErrorCodes) != 1 || e.ErrorCodes[0] != tt.aadsts {
				t.Errorf("error %q codes %v, want %q [%d]", e.Error, e.ErrorCodes, tt.oauth, tt.aadsts)
			}
			if prefix := fmt.Sprintf("AADSTS%d: ", tt.aadsts); !strings.HasPrefix(e.ErrorDescription, prefix) || !strings.Contains(e.ErrorDescription, tt.substring) {
				t.Errorf("error_description %q: want prefix %q and %q", e.ErrorDescription, prefix, tt.substring)
			}
			if tt.aadsts == 65001 && e.Suberror != "consent_required" {
				t.Errorf("suberror: got %q, want consent_required", e.Suberror)
			}
			if strings.Contains(rec.Body.String(), DefaultClientSecret) {
				t.Error("the error echoes the client secret")
			}
		})
	}
}
