package simulator

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// TestPersonVisibility calls every API endpoint with each demo person's Defender token (and the
// app's) and checks that a person sees exactly the devices of their groups.
func TestPersonVisibility(t *testing.T) {
	t.Parallel()
	s, _ := newIdentitySim(t, Options{PerMinute: -1, PerHour: -1})
	all := s.Machines()
	// The account with the most devices spans several groups.
	account := "administrator"
	if len(s.UserMachines(account)) < 10 {
		t.Fatalf("test setup: %s logged on to %d devices", account, len(s.UserMachines(account)))
	}
	tests := []struct {
		person string // "" is the application
	}{{""}, {"adele"}, {"megan"}, {"grady"}, {"lee"}, {"nestor"}}
	for _, tt := range tests {
		t.Run("person="+tt.person, func(t *testing.T) {
			t.Parallel()
			sees := func(Machine) bool { return true }
			tok := getToken(t, s)
			if tt.person != "" {
				p, _ := s.Person(tt.person)
				sees = p.CanSee
				tok = personToken(t, s, tt.person)
			}
			var visible, hiddenIDs []string
			for _, m := range all {
				if sees(m) {
					visible = append(visible, m.ID)
				} else {
					hiddenIDs = append(hiddenIDs, m.ID)
				}
			}

			// The list: exactly the visible devices, or 404 for someone who sees none.
			rec := get(t, s, "/api/machines", tok)
			if len(visible) == 0 {
				wantAPIError(t, rec, http.StatusNotFound, codeResourceNotFound)
			} else if got := listIDs(t, rec); !slices.Equal(got, visible) {
				t.Errorf("list: got %d devices, want %d", len(got), len(visible))
			}
			// A filter cannot reach past the groups either.
			if len(hiddenIDs) > 0 && len(visible) > 0 {
				f := url.QueryEscape("id eq '" + hiddenIDs[0] + "'")
				if got := listIDs(t, get(t, s, "/api/machines?$filter="+f, tok)); len(got) != 0 {
					t.Errorf("a filter on a hidden id listed %v", got)
				}
			}
			// One device, its logon users, its alerts: 200 for a visible one, 404 for a hidden one.
			for _, id := range firstOf(visible, 3) {
				for _, suffix := range []string{"", "/logonusers", "/alerts"} {
					wantStatus(t, get(t, s, "/api/machines/"+id+suffix, tok), http.StatusOK)
				}
			}
			for _, id := range firstOf(hiddenIDs, 3) {
				for _, suffix := range []string{"", "/logonusers", "/alerts"} {
					msg := wantAPIError(t, get(t, s, "/api/machines/"+id+suffix, tok), http.StatusNotFound, codeResourceNotFound)
					if want := "Machine " + id + " was not found"; msg != want {
						t.Errorf("hidden device message %q, want the unknown device's %q", msg, want)
					}
				}
			}
			// A user's machines: the account's devices the person may see; never 404.
			var want []string
			for _, m := range s.UserMachines(account) {
				if sees(m) {
					want = append(want, m.ID)
				}
			}
			if got := listIDs(t, get(t, s, "/api/users/"+account+"/machines", tok)); !slices.Equal(got, orEmpty(want)) {
				t.Errorf("users/%s/machines: got %d, want %d", account, len(got), len(want))
			}
		})
	}
}

func firstOf(ids []string, n int) []string { return ids[:min(n, len(ids))] }

func orEmpty(ids []string) []string {
	if ids == nil {
		return []string{}
	}
	return ids
}

func TestPersonsDifferAndCoverGroups(t *testing.T) {
	t.Parallel()
	s, _ := newIdentitySim(t, Options{})
	persons := s.Persons()
	if len(persons) < 4 {
		t.Fatalf("%d demo persons, want at least four", len(persons))
	}
	seen := map[string]bool{}
	var noGroups, withRole, withoutRole int
	for _, p := range persons {
		if !guidRE.MatchString(p.OID) || !strings.HasSuffix(p.UPN, "@contoso.com") {
			t.Errorf("%s: oid %q upn %q", p.ID, p.OID, p.UPN)
		}
		key := fmt.Sprint(p.RBACGroupIDs)
		if seen[key] {
			t.Errorf("%s: the same device groups as another person", p.ID)
		}
		seen[key] = true
		if len(p.RBACGroupIDs) == 0 {
			noGroups++
		}
		if slices.Contains(p.AppRoles, AppRoleRead) {
			withRole++
		} else {
			withoutRole++
		}
		for _, key := range []string{p.ID, p.OID, p.UPN} {
			if got, ok := s.Person(key); !ok || got.OID != p.OID {
				t.Errorf("Person(%q): got %v, %v", key, got.ID, ok)
			}
		}
	}
	if noGroups != 1 || withRole == 0 || withoutRole == 0 {
		t.Errorf("persons without groups %d (want 1), with the role %d, without %d (want some of each)", noGroups, withRole, withoutRole)
	}
	// Every group of the data set is someone's, and the groups split the devices.
	groups := map[int]int{}
	for _, m := range s.Machines() {
		groups[m.RBACGroupID]++
	}
	adele, _ := s.Person("adele")
	for g := range groups {
		if !slices.Contains(adele.RBACGroupIDs, g) {
			t.Errorf("group %d is nobody's", g)
		}
	}
	persons[0].RBACGroupIDs[0] = -1
	if again, _ := s.Person(persons[0].ID); again.RBACGroupIDs[0] == -1 {
		t.Error("Persons returned the simulator's own slice")
	}
}

// TestForbidHiddenDevices: the option answers 403 where the default answers 404.
func TestForbidHiddenDevices(t *testing.T) {
	t.Parallel()
	s, _ := newIdentitySim(t, Options{ForbidHiddenDevices: true})
	grady, _ := s.Person("grady")
	var hidden string
	for _, m := range s.Machines() {
		if !grady.CanSee(m) {
			hidden = m.ID
			break
		}
	}
	tok := personToken(t, s, "grady")
	for _, suffix := range []string{"", "/logonusers", "/alerts"} {
		wantAPIError(t, get(t, s, "/api/machines/"+hidden+suffix, tok), http.StatusForbidden, codeForbidden)
	}
	wantAPIError(t, get(t, s, "/api/machines/0000000000000000000000000000000000000000", tok), http.StatusNotFound, codeResourceNotFound)
	wantStatus(t, get(t, s, "/api/machines/"+hidden, getToken(t, s)), http.StatusOK) // the app sees it
}

// TestDuplicateNameForPerson: a person asking by a shared computer name gets the most recently
// seen device of that name among those they may see.
func TestDuplicateNameForPerson(t *testing.T) {
	t.Parallel()
	s, _ := newIdentitySim(t, Options{})
	all := s.Machines()
	newer, older := all[len(all)-1], all[twinOriginal]
	if newer.ComputerDNSName != older.ComputerDNSName {
		t.Fatal("test setup: the twins do not share a name")
	}
	for _, p := range s.Persons() {
		if len(p.RBACGroupIDs) == 0 || p.ConsentMissing {
			continue
		}
		rec := get(t, s, "/api/machines/"+newer.ComputerDNSName, personToken(t, s, p.ID))
		switch {
		case p.CanSee(newer):
			if got := decode[Machine](t, rec).ID; got != newer.ID {
				t.Errorf("%s: got %s, want the newer twin", p.ID, got)
			}
		case p.CanSee(older):
			if got := decode[Machine](t, rec).ID; got != older.ID {
				t.Errorf("%s: got %s, want the older twin, the only one visible", p.ID, got)
			}
		default:
			wantAPIError(t, rec, http.StatusNotFound, codeResourceNotFound)
		}
	}
}

// TestDelegatedPermissions: DeniedPermissions takes delegated permissions away from persons'
// tokens without touching the app's roles.
func TestDelegatedPermissions(t *testing.T) {
	t.Parallel()
	s, _ := newIdentitySim(t, Options{DeniedPermissions: []string{PermissionAlertRead}})
	id := s.ExampleMachineID()
	msg := wantAPIError(t, get(t, s, "/api/machines/"+id+"/alerts", personToken(t, s, "adele")), http.StatusForbidden, codeForbidden)
	if want := "API required permissions: Alert.Read."; !strings.Contains(msg, want) {
		t.Errorf("message %q lacks %q", msg, want)
	}
	wantStatus(t, get(t, s, "/api/machines/"+id+"/alerts", getToken(t, s)), http.StatusOK)

	app, _ := newIdentitySim(t, Options{DeniedPermissions: []string{PermissionAlertReadAll, PermissionMachineReadAll}})
	tok := getToken(t, app)
	for _, target := range []string{"/api/machines/" + id + "/alerts", "/api/users/jdoe/machines", "/api/machines"} {
		wantAPIError(t, get(t, app, target, tok), http.StatusForbidden, codeForbidden)
	}
	wantStatus(t, get(t, app, "/api/machines/"+id+"/alerts", personToken(t, app, "adele")), http.StatusOK)
}
