package simulator

import (
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

var (
	alertIDRE    = regexp.MustCompile(`^da\d{18}_-?\d{1,10}$`)
	techniqueRE  = regexp.MustCompile(`^T\d{4}(\.\d{3})?$`)
	alertTimeRE  = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$`)
	alertTrimmed = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,7})?Z$`)
)

func TestAlertsDeterministic(t *testing.T) {
	t.Parallel()
	a, _ := newTestSim(t, Options{Seed: 5})
	b, _ := newTestSim(t, Options{Seed: 5})
	c, _ := newTestSim(t, Options{Seed: 6})
	all := func(s *Simulator) []byte {
		var out []Alert
		for _, m := range s.Machines() {
			al, _ := s.Alerts(m.ID)
			out = append(out, al...)
		}
		b, _ := json.Marshal(out)
		return b
	}
	if string(all(a)) != string(all(b)) {
		t.Error("same seed, different alerts")
	}
	if string(all(a)) == string(all(c)) {
		t.Error("different seeds, same alerts")
	}
}

func TestAlertFields(t *testing.T) {
	t.Parallel()
	for _, seed := range []int64{1, 2, 99} {
		s, _ := newTestSim(t, Options{Seed: seed})
		checkAlerts(t, s)
	}
}

func checkAlerts(t *testing.T, s *Simulator) {
	t.Helper()
	counts := map[int]int{}
	seen := map[string]bool{}
	ids := map[string]bool{}
	for _, m := range s.Machines() {
		alerts, ok := s.Alerts(m.ID)
		if !ok {
			t.Fatalf("Alerts(%s): not found", m.ID)
		}
		counts[len(alerts)]++
		if m.OnboardingStatus != "Onboarded" && len(alerts) > 0 {
			t.Errorf("%s is %s yet has alerts", m.ID, m.OnboardingStatus)
		}
		users, _ := s.LogonUsers(m.ID)
		for i, a := range alerts {
			if !alertIDRE.MatchString(a.ID) || ids[a.ID] {
				t.Errorf("alert id %q: want da<18 digits>_<int32>, unique", a.ID)
			}
			ids[a.ID] = true
			if a.MachineID != m.ID || a.ComputerDNSName != m.ComputerDNSName || !reflect.DeepEqual(a.RBACGroupName, m.RBACGroupName) {
				t.Errorf("alert %s: device %s %s, want %s %s", a.ID, a.MachineID, a.ComputerDNSName, m.ID, m.ComputerDNSName)
			}
			if !slices.Contains([]string{"UnSpecified", "Informational", "Low", "Medium", "High"}, a.Severity) ||
				!slices.Contains([]string{"Unknown", "New", "InProgress", "Resolved"}, a.Status) {
				t.Errorf("alert %s: severity %q status %q", a.ID, a.Severity, a.Status)
			}
			for _, ts := range []string{a.AlertCreationTime, a.FirstEventTime, a.LastEventTime} {
				if !alertTimeRE.MatchString(ts) {
					t.Errorf("alert %s: time %q", a.ID, ts)
				}
			}
			if !alertTrimmed.MatchString(a.LastUpdateTime) {
				t.Errorf("alert %s: lastUpdateTime %q", a.ID, a.LastUpdateTime)
			}
			first, last, created := parseTime(t, a.FirstEventTime), parseTime(t, a.LastEventTime), parseTime(t, a.AlertCreationTime)
			updated := parseTime(t, a.LastUpdateTime)
			if first.After(last) || last.After(created) || updated.Before(created.Truncate(100*time.Millisecond)) {
				t.Errorf("alert %s: first %v last %v created %v updated %v out of order", a.ID, first, last, created, updated)
			}
			if i > 0 && alerts[i-1].AlertCreationTime < a.AlertCreationTime {
				t.Errorf("%s: alerts not newest first", m.ID)
			}
			if (a.Status == "Resolved") != (a.ResolvedTime != nil) || (a.Status == "Resolved") != (a.Classification != nil && a.Determination != nil) {
				t.Errorf("alert %s: status %s, resolvedTime %v, classification %v", a.ID, a.Status, a.ResolvedTime, a.Classification)
			}
			for _, tech := range a.MITRETechniques {
				if !techniqueRE.MatchString(tech) {
					t.Errorf("alert %s: technique %q", a.ID, tech)
				}
			}
			if a.MITRETechniques == nil || a.Comments == nil || a.Evidence == nil || a.LoggedOnUsers == nil {
				t.Errorf("alert %s: a list is null", a.ID)
			}
			if a.Title == "" || a.Description == "" || a.Category == "" || a.DetectionSource == "" || !guidRE.MatchString(a.DetectorID) || a.IncidentID <= 0 {
				t.Errorf("alert %s: empty title, description, category, source, detector or incident", a.ID)
			}
			if (a.ThreatName != nil) != (a.DetectionSource == srcAV) {
				t.Errorf("alert %s: threatName %v from %s", a.ID, a.ThreatName, a.DetectionSource)
			}
			if a.RelatedUser != nil {
				matches := func(u User) bool {
					return u.AccountName == a.RelatedUser.UserName && strings.EqualFold(u.AccountDomain, a.RelatedUser.DomainName)
				}
				if !slices.ContainsFunc(users, matches) {
					t.Errorf("alert %s: related user %+v is not a logon user of the device", a.ID, *a.RelatedUser)
				}
				seen["related user"] = true
			}
			seen[a.Status] = true
			seen[a.Severity] = true
			if len(a.MITRETechniques) == 0 {
				seen["no technique"] = true
			}
			if strings.Contains(a.ID, "_-") {
				seen["negative id part"] = true
			}
		}
	}
	for n := range counts {
		if n < 0 || n > 5 {
			t.Errorf("a device has %d alerts, want 0 to 5", n)
		}
	}
	if counts[0] == 0 || counts[5] == 0 {
		t.Errorf("alerts per device: %v; want devices with none and with five", counts)
	}
	for _, kind := range []string{"related user", "New", "InProgress", "Resolved", "High", "Low", "no technique", "negative id part"} {
		if !seen[kind] {
			t.Errorf("no alert with %q", kind)
		}
	}
	if ex, _ := s.Alerts(s.ExampleMachineID()); len(ex) != 3 {
		t.Errorf("example device: %d alerts, want 3", len(ex))
	}
}

func parseTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

func TestAlertsOverHTTP(t *testing.T) {
	t.Parallel()
	s, _ := newTestSim(t, Options{})
	tok := getToken(t, s)
	id := s.ExampleMachineID()
	for _, target := range []string{"/api/machines/" + id + "/alerts", "/api/v1.0/Machines/" + strings.ToUpper(id) + "/Alerts/"} {
		rec := get(t, s, target, tok)
		wantStatus(t, rec, http.StatusOK)
		body := decode[collection[Alert]](t, rec)
		want, _ := s.Alerts(id)
		if body.Context != APIContextBase+"/$metadata#Alerts" || !reflect.DeepEqual(body.Value, want) || body.NextLink != "" {
			t.Errorf("%s: context %q, %d alerts (want %d), nextLink %q", target, body.Context, len(body.Value), len(want), body.NextLink)
		}
	}
	var quiet string
	for _, m := range s.Machines() {
		if a, _ := s.Alerts(m.ID); len(a) == 0 {
			quiet = m.ID
			break
		}
	}
	if rec := get(t, s, "/api/machines/"+quiet+"/alerts", tok); !strings.Contains(rec.Body.String(), `"value":[]`) {
		t.Errorf("no alerts: got %s, want \"value\":[]", rec.Body.String())
	}
	for _, target := range []string{"/api/machines/ffff/alerts", "/api/machines/" + s.ExampleMachineName() + "/alerts"} {
		wantAPIError(t, get(t, s, target, tok), http.StatusNotFound, codeResourceNotFound)
	}
	wantAPIError(t, get(t, s, "/api/machines/"+id+"/alerts?$top=1", tok), http.StatusBadRequest, codeODataError)
	wantStatus(t, get(t, s, "/api/machines/"+id+"/alerts?api-version=1", tok), http.StatusOK)
	if st := s.Stats()[EndpointMachineAlerts]; st.Calls != 7 || st.ByIdentity[IdentityApp] != 7 {
		t.Errorf("alerts stats: %+v, want 7 calls by the app", st)
	}
}
