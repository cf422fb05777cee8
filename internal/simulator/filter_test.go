package simulator

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestFilterValid(t *testing.T) {
	t.Parallel()
	s, _ := newTestSim(t, Options{})
	all := s.Machines()
	ex, _ := s.Machine(s.ExampleMachineID())
	idsOf := func(ms []Machine) []string { return machineIDs(ms) }
	orOfIDs := func(ms []Machine) string {
		terms := make([]string, len(ms))
		for i, m := range ms {
			terms[i] = "id eq '" + m.ID + "'"
		}
		return strings.Join(terms, " or ")
	}
	isIn := func(ids []string) func(Machine) bool {
		return func(m Machine) bool { return slices.Contains(ids, m.ID) }
	}
	strEq := func(p *string, v string) bool { return p != nil && *p == v }
	cutoff := s.data.epoch.Add(-24 * time.Hour)

	tests := []struct {
		filter string
		want   func(Machine) bool
	}{
		{"id eq '" + ex.ID + "'", isIn([]string{ex.ID})},
		{"ID EQ '" + strings.ToUpper(ex.ID) + "'", isIn([]string{ex.ID})},
		{"id eq '" + all[3].ID + "' or id eq '" + all[7].ID + "' or id eq '" + all[9].ID + "'", isIn(idsOf([]Machine{all[3], all[7], all[9]}))},
		{orOfIDs(all[100:200]), isIn(idsOf(all[100:200]))},
		{orOfIDs(all), func(Machine) bool { return true }},
		{"id in ('" + all[4].ID + "', '" + all[5].ID + "')", isIn(idsOf(all[4:6]))},
		{"id IN ('" + all[4].ID + "')", isIn(idsOf(all[4:5]))},
		{"computerDnsName eq '" + ex.ComputerDNSName + "'", isIn([]string{ex.ID})},
		{"computerDnsName eq '" + strings.ToUpper(ex.ComputerDNSName) + "'", isIn([]string{ex.ID})},
		{"healthStatus eq 'Active'", func(m Machine) bool { return m.HealthStatus == "Active" }},
		{"healthStatus ne 'Active'", func(m Machine) bool { return m.HealthStatus != "Active" }},
		{"riskScore eq 'High'", func(m Machine) bool { return strEq(m.RiskScore, "High") }},
		{"riskScore eq null", func(m Machine) bool { return m.RiskScore == nil }},
		{"riskScore ne null", func(m Machine) bool { return m.RiskScore != nil }},
		{"riskScore ne 'High'", func(m Machine) bool { return !strEq(m.RiskScore, "High") }},
		{"osPlatform eq 'Linux'", func(m Machine) bool { return m.OSPlatform == "Linux" }},
		{"osPlatform eq 'Windows10' and healthStatus ne 'Active'", func(m Machine) bool { return m.OSPlatform == "Windows10" && m.HealthStatus != "Active" }},
		{"(osPlatform eq 'Linux' or osPlatform eq 'macOS') and exposureLevel eq 'High'", func(m Machine) bool {
			return (m.OSPlatform == "Linux" || m.OSPlatform == "macOS") && strEq(m.ExposureLevel, "High")
		}},
		{"osPlatform eq 'Linux' or osPlatform eq 'macOS' and exposureLevel eq 'High'", func(m Machine) bool {
			return m.OSPlatform == "Linux" || (m.OSPlatform == "macOS" && strEq(m.ExposureLevel, "High"))
		}},
		{"((((healthStatus eq 'Inactive'))))", func(m Machine) bool { return m.HealthStatus == "Inactive" }},
		{"healthStatus in ('Inactive','NoSensorData')", func(m Machine) bool { return m.HealthStatus == "Inactive" || m.HealthStatus == "NoSensorData" }},
		{"startswith(computerDnsName,'srv-')", func(m Machine) bool { return strings.HasPrefix(m.ComputerDNSName, "srv-") }},
		{"StartsWith(computerDnsName, 'SRV-SQL')", func(m Machine) bool { return strings.HasPrefix(m.ComputerDNSName, "srv-sql") }},
		{"rbacGroupId eq 12", func(m Machine) bool { return m.RBACGroupID == 12 }},
		{"rbacGroupId eq '12'", func(m Machine) bool { return m.RBACGroupID == 12 }},
		{"rbacGroupId gt 20", func(m Machine) bool { return m.RBACGroupID > 20 }},
		{"lastSeen gt " + cutoff.Format(time.RFC3339), func(m Machine) bool { return m.lastSeen.After(cutoff) }},
		{"lastSeen le '" + cutoff.Format(time.RFC3339) + "'", func(m Machine) bool { return !m.lastSeen.After(cutoff) }},
		{"machineTags/any(t: t eq 'VIP')", func(m Machine) bool { return slices.Contains(m.MachineTags, "VIP") }},
		{"machineTags/any(tag:tag eq 'test lab')", func(m Machine) bool { return slices.Contains(m.MachineTags, "Test Lab") }},
		{"aadDeviceId eq null and osPlatform eq 'Windows11'", func(m Machine) bool { return m.AADDeviceID == nil && m.OSPlatform == "Windows11" }},
		{"version eq '22H2' and deviceValue eq 'Normal' and onboardingStatus eq 'Onboarded'", func(m Machine) bool {
			return strEq(m.Version, "22H2") && strEq(m.DeviceValue, "Normal") && m.OnboardingStatus == "Onboarded"
		}},
		{"lastIpAddress eq '" + ex.LastIPAddress + "'", func(m Machine) bool { return m.LastIPAddress == ex.LastIPAddress }},
		{"computerDnsName eq 'o''brien-pc'", func(Machine) bool { return false }},
	}
	for _, tt := range tests {
		t.Run(clip(tt.filter), func(t *testing.T) {
			t.Parallel()
			f, err := parseFilter(tt.filter)
			if err != nil {
				t.Fatalf("parseFilter: %v", err)
			}
			var got, want []string
			for i := range all {
				if f.match(&all[i]) {
					got = append(got, all[i].ID)
				}
				if tt.want(all[i]) {
					want = append(want, all[i].ID)
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("matched %d devices, want %d", len(got), len(want))
			}
			if len(want) == 0 && !strings.Contains(tt.filter, "brien") {
				t.Errorf("filter matches nothing in the data set: the case proves little")
			}
		})
	}
}

func TestFilterOverHTTP(t *testing.T) {
	t.Parallel()
	s, _ := newTestSim(t, Options{})
	tok := getToken(t, s)
	all := s.Machines()
	terms := make([]string, 100)
	for i := range terms {
		terms[i] = "id eq '" + all[2*i].ID + "'"
	}
	// 100 `or` terms fit the URI limit when spaces travel as '+'.
	target := "/api/machines?$filter=" + url.QueryEscape(strings.Join(terms, " or "))
	if len(target) > MaxURILength {
		t.Fatalf("test setup: %d-byte URI", len(target))
	}
	got := listIDs(t, get(t, s, target, tok))
	if len(got) != 100 || got[0] != all[0].ID || got[99] != all[198].ID {
		t.Errorf("or of 100 ids: got %d ids, want the 100 asked for in data-set order", len(got))
	}
	in := "id in ('" + all[1].ID + "','" + all[2].ID + "')"
	if got := listIDs(t, get(t, s, "/api/machines?$filter="+url.QueryEscape(in), tok)); !slices.Equal(got, machineIDs(all[1:3])) {
		t.Errorf("in: got %v", got)
	}
	msg := wantAPIError(t, get(t, s, "/api/machines?$filter="+url.QueryEscape("id eq 'abc"), tok), http.StatusBadRequest, codeODataError)
	if !strings.Contains(msg, "position 7") || !strings.Contains(msg, "unterminated string") {
		t.Errorf("message: got %q, want the position and the problem", msg)
	}
}

func TestFilterInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		filter, want string
	}{
		{"", "empty"},
		{"   ", "empty"},
		{"id eq 'abc", "unterminated string"},
		{"id eq", "expected a value for id, found the end"},
		{"id = 'x'", "unexpected character '='"},
		{"id equals 'x'", "expected an operator"},
		{"foo eq 'x'", "'foo' is not a filterable property"},
		{"isAadJoined eq true", "not a filterable property"},
		{"id eq 'x' and", "expected a condition, found the end"},
		{"id eq 'x' xor id eq 'y'", "expected 'and', 'or' or the end of the filter, found 'xor'"},
		{"(id eq 'x'", "expected ')'"},
		{"id eq 'x')", "expected 'and', 'or' or the end of the filter, found ')'"},
		{"not id eq 'x'", "'not' is not supported"},
		{"contains(computerDnsName,'x')", "unsupported function 'contains'"},
		{"startswith(rbacGroupId,'1')", "needs a string property"},
		{"startswith(computerDnsName)", "expected ',' after the property"},
		{"startswith(computerDnsName,x)", "expected a quoted prefix"},
		{"rbacGroupId eq 'twelve'", "not an integer"},
		{"computerDnsName eq 12", "quote the value"},
		{"lastSeen gt 'yesterday'", "is a date-time"},
		{"riskScore gt null", "null can only be compared with eq or ne"},
		{"id in ()", "expected a value for id, found ')'"},
		{"id in ('a' 'b')", "expected ',' or ')'"},
		{"id in 'a'", "expected '(' after in"},
		{"machineTags eq 'x'", "machineTags is a collection"},
		{"machineTags/any(t: t ne 'x')", "only eq is supported"},
		{"machineTags/all(t: t eq 'x')", "expected any"},
		{"machineTags/any(t: x eq 'y')", "expected the lambda variable"},
		{"'x' eq id", "expected a condition"},
		{strings.Repeat("(", maxFilterDepth+1) + "id eq 'x'" + strings.Repeat(")", maxFilterDepth+1), "nested more than"},
		{"id eq 'x' @", "unexpected character '@'"},
		{"id eq 'x' or", "expected a condition, found the end"},
	}
	for _, tt := range tests {
		t.Run(clip(tt.filter), func(t *testing.T) {
			t.Parallel()
			_, err := parseFilter(tt.filter)
			var fe *filterError
			if !errors.As(err, &fe) {
				t.Fatalf("parseFilter(%q): got %v, want a *filterError", tt.filter, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error: got %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestLexStrings(t *testing.T) {
	t.Parallel()
	toks, err := lex(`computerDnsName eq 'o''brien ''x''' or id eq ''`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tk := range toks {
		if tk.kind == tokString {
			got = append(got, tk.text)
		}
	}
	if want := []string{"o'brien 'x'", ""}; !slices.Equal(got, want) {
		t.Errorf("strings: got %q, want %q", got, want)
	}
}

func TestListPaging(t *testing.T) {
	t.Parallel()
	s, _ := newTestSim(t, Options{})
	tok := getToken(t, s)
	all := machineIDs(s.Machines())
	tests := []struct {
		query string
		want  []string
	}{
		{"", all},
		{"?$top=10", all[:10]},
		{"?$TOP=3", all[:3]},
		{"?$skip=295", all[295:]},
		{"?$top=5&$skip=10", all[10:15]},
		{"?$top=0", []string{}},
		{"?$skip=1000", []string{}},
		{"?$top=10000", all},
		{"?api-version=1.0&$top=2", all[:2]}, // parameters without $ are ignored
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			t.Parallel()
			rec := get(t, s, "/api/machines"+tt.query, tok)
			if got := listIDs(t, rec); !slices.Equal(got, tt.want) {
				t.Errorf("got %d ids, want %d", len(got), len(tt.want))
			}
			body := decode[collection[Machine]](t, rec)
			if body.Context != APIContextBase+"/$metadata#Machines" || body.NextLink != "" {
				t.Errorf("context %q, nextLink %q", body.Context, body.NextLink)
			}
		})
	}

	bad := []struct{ query, want string }{
		{"?$top=-1", "non-negative integer"},
		{"?$top=ten", "non-negative integer"},
		{"?$top=10001", "The limit of '10000' for Top query has been exceeded"},
		{"?$skip=-3", "non-negative integer"},
		{"?$orderby=lastSeen", "'$orderby' is not supported"},
		{"?$select=id", "'$select' is not supported"},
		{"?$top=1&$top=2", "more than once"},
		{"?$top=1&$Top=2", "more than once"},
		{"?$filter=%zz", "malformed"},
	}
	for _, tt := range bad {
		msg := wantAPIError(t, get(t, s, "/api/machines"+tt.query, tok), http.StatusBadRequest, codeODataError)
		if !strings.Contains(msg, tt.want) {
			t.Errorf("%s: message %q, want %q", tt.query, msg, tt.want)
		}
	}
}

func TestListNextLink(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds 10005 devices")
	}
	s, _ := newTestSim(t, Options{Devices: MaxTop + 5, PerMinute: -1})
	tok := getToken(t, s)
	rec := get(t, s, "/api/machines", tok)
	body := decode[collection[Machine]](t, rec)
	if len(body.Value) != MaxTop || body.NextLink == "" {
		t.Fatalf("first page: %d machines, nextLink %q; want %d and a link", len(body.Value), body.NextLink, MaxTop)
	}
	u, err := url.Parse(body.NextLink)
	if err != nil || u.Host != "example.com" {
		t.Fatalf("nextLink %q must point back at the simulator (the request's host)", body.NextLink)
	}
	if got := listIDs(t, get(t, s, u.RequestURI(), tok)); len(got) != 5 {
		t.Errorf("second page: %d machines, want 5", len(got))
	}
	if got := decode[collection[Machine]](t, get(t, s, "/api/machines?$top=10000", tok)).NextLink; got != "" {
		t.Errorf("with $top: nextLink %q, want none (as upstream)", got)
	}
}

// FuzzParseFilter: the parser must never panic, must fail only with a *filterError, and a parsed
// filter must evaluate on every device without panicking.
func FuzzParseFilter(f *testing.F) {
	for _, seed := range []string{
		"id eq 'x'", "id eq 'a' or id eq 'b'", "id in ('a','b')", "(healthStatus eq 'Active') and riskScore ne null",
		"startswith(computerDnsName,'srv')", "machineTags/any(t: t eq 'VIP')", "lastSeen gt 2026-01-01T00:00:00Z",
		"rbacGroupId ge -5", "'", "((", "id eq 'it''s'", "x/any(", "machineTags/any(t:", "lastSeen lt 2026-13-45",
		"startswith(", "id in (", "\x00", "ñ eq 'ñ'",
	} {
		f.Add(seed)
	}
	ms := generate(3, 20, DemoTenantID).machines
	f.Fuzz(func(t *testing.T, src string) {
		e, err := parseFilter(src)
		if err != nil {
			var fe *filterError
			if !errors.As(err, &fe) {
				t.Fatalf("parseFilter(%q): error %T, want *filterError", src, err)
			}
			if fe.pos < 0 || fe.pos > len(src) {
				t.Fatalf("parseFilter(%q): position %d out of range", src, fe.pos)
			}
			return
		}
		for i := range ms {
			_ = e.match(&ms[i])
		}
		_ = fmt.Sprint(e)
	})
}

// TestFilterHostileLiterals sends string literals an attacker or a careless caller would build,
// through HTTP: a literal is one value whatever it holds, and a broken one is a 400 ODataError,
// never a wider match.
func TestFilterHostileLiterals(t *testing.T) {
	t.Parallel()
	s, _ := newTestSim(t, Options{})
	tok := getToken(t, s)
	all := machineIDs(s.Machines())
	ex := s.ExampleMachineName()
	tests := []struct {
		filter string
		want   []string // nil: 400
	}{
		{"computerDnsName eq 'x'' or 1 eq 1'", []string{}},                 // the quote is doubled: one literal
		{"computerDnsName eq 'x'' or computerDnsName ne ''y'", []string{}}, // ditto, with a property inside
		{"computerDnsName eq '" + ex + "'' or ''1'' eq ''1'", []string{}},
		{"computerDnsName eq 'O''Brien'", []string{}},
		{"computerDnsName eq '('", []string{}},
		{"computerDnsName eq ')' or (id eq '" + all[0] + "')", all[:1]},
		{"computerDnsName eq 'ñandú-ß.contoso.local'", []string{}},
		{"computerDnsName eq '日本'", []string{}},
		{"startswith(computerDnsName,'''')", []string{}}, // the prefix is one quote
		{"startswith(computerDnsName,''')", nil},         // unterminated
		{"startswith(computerDnsName,'')", all},
		{"computerDnsName eq '" + ex + "'", all[:1]},
		{"computerDnsName eq 'x' or 1 eq 1", nil},     // an unquoted value is no condition
		{"computerDnsName eq 'x'' or 1 eq 1", nil},    // unterminated: the injection closes nothing
		{"computerDnsName eq 'x' or '1' eq '1'", nil}, // a literal is no property
		{"computerDnsName eq 'x') or (1 eq 1", nil},
		{"computerDnsName eq \"x\"", nil},
		{"computerDnsName eq x", nil},
		{"ñ eq 'x'", nil},
		{"computerDnsName eq 'x'; drop", nil},
		{"computerDnsName eq 'x' --", nil},
	}
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			t.Parallel()
			rec := get(t, s, "/api/machines?$filter="+url.QueryEscape(tt.filter), tok)
			if tt.want == nil {
				wantAPIError(t, rec, http.StatusBadRequest, codeODataError)
				return
			}
			if got := listIDs(t, rec); !slices.Equal(got, tt.want) {
				t.Errorf("got %d devices, want %d", len(got), len(tt.want))
			}
		})
	}
}

// TestFilterStringRoundTrip: every string, quoted the OData way, parses back to itself.
func TestFilterStringRoundTrip(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"", "'", "''", "O'Brien", "a'' or 1 eq 1", "zoë o'brien", "(x)", "日本語", "tab\there", "%27"} {
		toks, err := lex("'" + strings.ReplaceAll(v, "'", "''") + "'")
		if err != nil || len(toks) != 2 || toks[0].kind != tokString || toks[0].text != v {
			t.Errorf("%q: tokens %+v, err %v", v, toks, err)
		}
	}
}
