package simulator

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// TestUserMachinesConsistent: for every account name of every logon user, the devices the
// endpoint answers are exactly those whose logon users include that name.
func TestUserMachinesConsistent(t *testing.T) {
	t.Parallel()
	for _, opts := range []Options{{}, {Seed: 3, Devices: 1000}} {
		s, _ := newTestSim(t, opts)
		want := map[string][]string{} // folded name → device ids in data-set order
		for _, m := range s.Machines() {
			users, _ := s.LogonUsers(m.ID)
			for _, u := range users {
				key := strings.ToLower(u.AccountName)
				if ids := want[key]; len(ids) == 0 || ids[len(ids)-1] != m.ID {
					want[key] = append(ids, m.ID)
				}
			}
		}
		for name, ids := range want {
			if got := machineIDs(s.UserMachines(strings.ToUpper(name))); !slices.Equal(got, ids) {
				t.Errorf("UserMachines(%q): got %d devices, want %d", name, len(got), len(ids))
			}
		}
	}
}

func TestUserMachinesOverHTTP(t *testing.T) {
	t.Parallel()
	s, _ := newTestSim(t, Options{})
	tok := getToken(t, s)
	ids := func(name string) []string { return orEmpty(machineIDs(s.UserMachines(name))) }
	if len(ids("zoë o'brien")) == 0 || len(ids("jane smith")) == 0 {
		t.Fatal("test setup: the data set lacks the non-ASCII or spaced account")
	}
	tests := []struct {
		name, path string
		want       []string
	}{
		{"plain", "jdoe", ids("jdoe")},
		{"case-insensitive", "JDoe", ids("jdoe")},
		{"space escaped", "jane%20smith", ids("jane smith")},
		{"non-ASCII and apostrophe escaped", url.PathEscape("zoë o'brien"), ids("zoë o'brien")},
		{"non-ASCII upper case", url.PathEscape("ZOË O'BRIEN"), ids("zoë o'brien")},
		{"domain and name", url.PathEscape(`contoso\jdoe`), []string{}},
		{"UPN", "jdoe@contoso.com", []string{}},
		{"unknown", "nobody-at-all", []string{}},
		{"v1.0 alias", "jdoe", ids("jdoe")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			prefix := "/api/users/"
			if strings.HasPrefix(tt.name, "v1.0") {
				prefix = "/api/v1.0/Users/"
			}
			rec := get(t, s, prefix+tt.path+"/machines", tok)
			if got := listIDs(t, rec); !slices.Equal(got, tt.want) {
				t.Errorf("got %d devices, want %d", len(got), len(tt.want))
			}
			if body := decode[collection[Machine]](t, rec); body.Context != APIContextBase+"/$metadata#Machines" || body.NextLink != "" {
				t.Errorf("context %q nextLink %q", body.Context, body.NextLink)
			}
			if len(tt.want) == 0 && !strings.Contains(rec.Body.String(), `"value":[]`) {
				t.Errorf("empty answer %s: want \"value\":[]", rec.Body.String())
			}
		})
	}
	wantAPIError(t, get(t, s, "/api/users/jdoe/machines?$filter="+url.QueryEscape("id eq 'x'"), tok), http.StatusBadRequest, codeODataError)
	wantAPIError(t, get(t, s, "/api/users/%20/machines", tok), http.StatusBadRequest, "InvalidInput")
	wantAPIError(t, call(t, s, http.MethodPost, "/api/users/jdoe/machines", tok), http.StatusMethodNotAllowed, "MethodNotAllowed")
}
