package simulator

import (
	"bytes"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// snapshot renders the whole data set as the API would send it.
func snapshot(t *testing.T, s *Simulator) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, m := range s.Machines() {
		users, _ := s.LogonUsers(m.ID)
		if err := enc.Encode(m); err != nil {
			t.Fatal(err)
		}
		if err := enc.Encode(users); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func TestDeterminism(t *testing.T) {
	t.Parallel()
	a, _ := newTestSim(t, Options{Seed: 7})
	b, _ := newTestSim(t, Options{Seed: 7})
	if !bytes.Equal(snapshot(t, a), snapshot(t, b)) {
		t.Fatal("same seed, different data")
	}
	// And over the wire, where only the data can differ.
	ra := get(t, a, "/api/machines", getToken(t, a)).Body.Bytes()
	rb := get(t, b, "/api/machines", getToken(t, b)).Body.Bytes()
	if !bytes.Equal(ra, rb) {
		t.Error("same seed, different GET /api/machines bodies")
	}
	if a.ExampleMachineID() != b.ExampleMachineID() {
		t.Error("same seed, different example machine")
	}
	c, _ := newTestSim(t, Options{Seed: 8})
	if bytes.Equal(snapshot(t, a), snapshot(t, c)) {
		t.Error("different seeds, same data")
	}
	d, _ := newTestSim(t, Options{}) // seed 0 means 1
	e, _ := newTestSim(t, Options{Seed: 1})
	if !bytes.Equal(snapshot(t, d), snapshot(t, e)) {
		t.Error("seed 0 is not the default seed 1")
	}
}

var (
	idRE         = regexp.MustCompile(`^[0-9a-f]{40}$`)
	hostRE       = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]*[a-z0-9]$`)
	machineTSRE  = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$`)
	userTSRE     = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`)
	logonTypesRE = regexp.MustCompile(`^[A-Za-z]+(, [A-Za-z]+)*$`)
)

func TestDataInvariants(t *testing.T) {
	t.Parallel()
	for _, seed := range []int64{1, 2, 42, 1 << 40} {
		s, _ := newTestSim(t, Options{Seed: seed})
		checkInvariants(t, s)
	}
}

func checkInvariants(t *testing.T, s *Simulator) {
	t.Helper()
	ms := s.Machines()
	if len(ms) != DefaultDevices {
		t.Fatalf("devices: got %d, want %d", len(ms), DefaultDevices)
	}
	ids := map[string]bool{}
	platforms, health := map[string]int{}, map[string]int{}
	nulls := map[string]int{}
	for _, m := range ms {
		if !idRE.MatchString(m.ID) || ids[m.ID] {
			t.Errorf("id %q: want 40 lower-case hex digits, unique", m.ID)
		}
		ids[m.ID] = true
		if !hostRE.MatchString(m.ComputerDNSName) {
			t.Errorf("computerDnsName %q: want a lower-case DNS name", m.ComputerDNSName)
		}
		if !machineTSRE.MatchString(m.FirstSeen) || !machineTSRE.MatchString(m.LastSeen) || m.FirstSeen > m.LastSeen {
			t.Errorf("%s: firstSeen %q lastSeen %q", m.ID, m.FirstSeen, m.LastSeen)
		}
		platforms[m.OSPlatform]++
		health[m.HealthStatus]++
		for name, isNull := range map[string]bool{
			"riskScore": m.RiskScore == nil, "exposureLevel": m.ExposureLevel == nil, "osBuild": m.OSBuild == nil,
			"aadDeviceId": m.AADDeviceID == nil, "vmMetadata": m.VMMetadata != nil, "version": m.Version == nil,
			"rbacGroupName": m.RBACGroupName == nil,
		} {
			if isNull {
				nulls[name]++
			}
		}
		if m.MachineTags == nil || len(m.IPAddresses) == 0 {
			t.Errorf("%s: machineTags %v ipAddresses %v", m.ID, m.MachineTags, m.IPAddresses)
		}
	}
	for _, p := range []string{"Windows10", "Windows11", "WindowsServer2019", "WindowsServer2022", "Linux", "macOS"} {
		if platforms[p] == 0 {
			t.Errorf("no %s device", p)
		}
	}
	if health["Active"] < len(ms)/2 || health["Inactive"] == 0 || len(health) < 4 {
		t.Errorf("health states: %v", health)
	}
	for _, name := range []string{"riskScore", "exposureLevel", "osBuild", "aadDeviceId", "vmMetadata", "version", "rbacGroupName"} {
		if nulls[name] == 0 || nulls[name] == len(ms) {
			t.Errorf("%s: null (or, for vmMetadata, set) on %d of %d devices; want some but not all", name, nulls[name], len(ms))
		}
	}

	counts := map[int]int{}
	seen := map[string]bool{} // kinds of users seen
	for _, m := range ms {
		users, ok := s.LogonUsers(m.ID)
		if !ok {
			t.Fatalf("LogonUsers(%s): not found", m.ID)
		}
		counts[len(users)]++
		short, _, _ := strings.Cut(m.ComputerDNSName, ".")
		for _, u := range users {
			if u.ID != u.AccountDomain+`\`+u.AccountName {
				t.Errorf("user id %q: want domain\\name", u.ID)
			}
			if !logonTypesRE.MatchString(u.LogonTypes) {
				t.Errorf("logonTypes %q: want one comma-separated string", u.LogonTypes)
			}
			if !userTSRE.MatchString(u.FirstSeen) || !userTSRE.MatchString(u.LastSeen) || u.FirstSeen > u.LastSeen {
				t.Errorf("user %s: firstSeen %q lastSeen %q", u.ID, u.FirstSeen, u.LastSeen)
			}
			for _, ref := range []*string{u.MostPrevalentMachineID, u.LeastPrevalentMachineID} {
				if ref != nil && !ids[*ref] {
					t.Errorf("user %s: prevalence id %s is not a device of the set", u.ID, *ref)
				}
			}
			if u.LogOnMachinesCount != nil && *u.LogOnMachinesCount < 1 {
				t.Errorf("user %s: logOnMachinesCount %d", u.ID, *u.LogOnMachinesCount)
			}
			switch {
			case u.IsDomainAdmin:
				seen["admin"] = true
			case u.IsOnlyNetworkUser != nil && *u.IsOnlyNetworkUser:
				seen["network"] = true
				if u.LogonTypes != "Network" {
					t.Errorf("network-only user %s: logonTypes %q", u.ID, u.LogonTypes)
				}
			}
			if u.AccountDomain == short {
				seen["local"] = true
			} else if u.AccountDomain != "contoso" {
				t.Errorf("user %s: domain %q is neither contoso nor the host %q", u.ID, u.AccountDomain, short)
			}
			if strings.Contains(u.AccountName, " ") {
				seen["space"] = true
			}
			if strings.Contains(u.LogonTypes, ",") {
				seen["several types"] = true
			}
			if u.AccountSID != nil {
				seen["sid"] = true
			} else {
				seen["no sid"] = true
			}
			if u.LogOnMachinesCount == nil {
				seen["null count"] = true
			}
		}
	}
	for n := range counts {
		if n < 0 || n > 8 {
			t.Errorf("a device has %d logon users, want 0..8", n)
		}
	}
	if counts[0] == 0 || counts[8] == 0 {
		t.Errorf("logon users per device: %v; want devices with none and with 8", counts)
	}
	for _, kind := range []string{"admin", "network", "local", "space", "several types", "sid", "no sid", "null count"} {
		if !seen[kind] {
			t.Errorf("no logon user of kind %q", kind)
		}
	}

	ex, ok := s.Machine(s.ExampleMachineID())
	if !ok || ex.ComputerDNSName != s.ExampleMachineName() || ex.HealthStatus != "Active" {
		t.Errorf("example machine: %+v", ex)
	}
	users, _ := s.LogonUsers(ex.ID)
	if len(users) < 5 || !slices.ContainsFunc(users, func(u User) bool { return u.IsDomainAdmin }) {
		t.Errorf("example machine has %d users; want several with a domain admin", len(users))
	}
}

// TestWireTypes checks the JSON types a client must cope with: rbacGroupId a number, nullable
// fields present as null, timestamps as strings.
func TestWireTypes(t *testing.T) {
	t.Parallel()
	s, _ := newTestSim(t, Options{})
	rec := get(t, s, "/api/machines?$filter="+strings.ReplaceAll("riskScore eq null", " ", "+")+"&$top=1", getToken(t, s))
	var body struct {
		Value []map[string]any `json:"value"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || len(body.Value) != 1 {
		t.Fatalf("decode: %v, %d machines", err, len(body.Value))
	}
	m := body.Value[0]
	if _, ok := m["rbacGroupId"].(float64); !ok {
		t.Errorf("rbacGroupId: got %T, want a JSON number", m["rbacGroupId"])
	}
	for _, field := range []string{"riskScore", "mergedIntoMachineId", "exclusionReason"} {
		if v, ok := m[field]; !ok || v != nil {
			t.Errorf("%s: got %v (present %v), want null", field, v, ok)
		}
	}
	for _, field := range []string{"id", "computerDnsName", "firstSeen", "lastSeen", "osPlatform", "osVersion", "osProcessor",
		"version", "osBuild", "lastIpAddress", "lastExternalIpAddress", "agentVersion", "healthStatus", "onboardingStatus",
		"rbacGroupName", "exposureLevel", "deviceValue", "isAadJoined", "aadDeviceId", "machineTags", "ipAddresses",
		"defenderAvStatus", "managedBy", "isPotentialDuplication", "isExcluded", "vmMetadata", "osArchitecture"} {
		if _, ok := m[field]; !ok {
			t.Errorf("field %s missing", field)
		}
	}
}

func TestDeviceCountAndEpoch(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 2, 3, 10} {
		s, _ := newTestSim(t, Options{Devices: n})
		if got := len(s.Machines()); got != n {
			t.Errorf("Devices %d: got %d machines", n, got)
		}
		if _, ok := s.Machine(s.ExampleMachineName()); !ok {
			t.Errorf("Devices %d: example machine not found by name", n)
		}
	}
	s, _ := newTestSim(t, Options{})
	for _, m := range s.Machines() {
		last, err := time.Parse(time.RFC3339Nano, m.LastSeen)
		if err != nil || last.After(s.data.epoch) || last.Year() < 2025 {
			t.Errorf("%s: lastSeen %s outside the data set's epoch %s", m.ID, m.LastSeen, s.data.epoch)
		}
	}
}
