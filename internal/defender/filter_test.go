package defender

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// literals splits an OData expression into its skeleton, each string literal replaced by '?',
// and the literals' values (a doubled quote read as one). ok is false for an unterminated
// literal. It is the tests' own reading of OData's quoting, not the code's.
func literals(expr string) (skeleton string, values []string, ok bool) {
	var b, v strings.Builder
	in := false
	for i := 0; i < len(expr); i++ {
		c := expr[i]
		switch {
		case !in && c == '\'':
			in = true
			v.Reset()
		case !in:
			b.WriteByte(c)
		case c == '\'' && i+1 < len(expr) && expr[i+1] == '\'':
			v.WriteByte('\'')
			i++
		case c == '\'':
			in = false
			b.WriteString("'?'")
			values = append(values, v.String())
		default:
			v.WriteByte(c)
		}
	}
	return b.String(), values, !in
}

// hostile are values a caller could try to end a literal with and add a condition, or to
// break the URL: each must stay one literal, or be refused.
var hostile = []string{
	"' or 1 eq 1", "x') or (id ne '", "''", "'", "a'b", "o'brien", ")", "(", "a) or startswith(id,'",
	"desk%27 or 1 eq 1", "a&$top=1", "a#b", "a?b", "a b", "é ü ß 日本 🙂", "\\'", "--", "*", "a,b",
	strings.Repeat("'", 100), strings.Repeat("x", 253),
}

func TestMachineFilterOData(t *testing.T) {
	t.Parallel()
	after := time.Date(2026, 10, 1, 12, 0, 0, 0, time.FixedZone("CEST", 2*3600))
	before := time.Date(2026, 11, 1, 0, 0, 0, 500, time.UTC)
	tests := []struct {
		name      string
		f         MachineFilter
		want      string
		wantField string // the InvalidInputError's field; "" when accepted
	}{
		{"nothing", MachineFilter{}, "", ""},
		{"prefix", MachineFilter{ComputerDNSNamePrefix: "desk-"}, "startswith(computerDnsName,'desk-')", ""},
		{"every field, in a fixed order", MachineFilter{
			ComputerDNSNamePrefix: "srv", HealthStatus: "Active", RiskScore: "High", ExposureLevel: "Medium", OSPlatform: "Windows11",
			MachineTag: "vip", LastSeenAfter: after, LastSeenBefore: before, RBACGroupID: "12",
		}, "startswith(computerDnsName,'srv') and healthStatus eq 'Active' and riskScore eq 'High' and exposureLevel eq 'Medium' and " +
			"osPlatform eq 'Windows11' and machineTags/any(t: t eq 'vip') and lastSeen gt 2026-10-01T10:00:00Z and " +
			"lastSeen lt 2026-11-01T00:00:00.0000005Z and rbacGroupId eq 12", ""},
		{"a quote is doubled", MachineFilter{MachineTag: "o'brien"}, "machineTags/any(t: t eq 'o''brien')", ""},
		{"the classic injection stays a literal", MachineFilter{ComputerDNSNamePrefix: "' or 1 eq 1"},
			"startswith(computerDnsName,''' or 1 eq 1')", ""},
		{"leading zeros of a group id", MachineFilter{RBACGroupID: "0012"}, "rbacGroupId eq 12", ""},
		{"unicode", MachineFilter{MachineTag: "Büro 東京"}, "machineTags/any(t: t eq 'Büro 東京')", ""},

		{"an enum value with a quote", MachineFilter{HealthStatus: "Active' or 1 eq 1"}, "", "healthStatus"},
		{"an enum value with a space", MachineFilter{OSPlatform: "Windows 11"}, "", "osPlatform"},
		{"an enum value starting with a digit", MachineFilter{RiskScore: "1High"}, "", "riskScore"},
		{"an enum value too long", MachineFilter{ExposureLevel: strings.Repeat("a", 65)}, "", "exposureLevel"},
		{"a control character", MachineFilter{MachineTag: "a\x00b"}, "", "machineTag"},
		{"a newline", MachineFilter{ComputerDNSNamePrefix: "a\nb"}, "", "computerDnsName prefix"},
		{"invalid UTF-8", MachineFilter{MachineTag: "a\xffb"}, "", "machineTag"},
		{"a prefix longer than a DNS name", MachineFilter{ComputerDNSNamePrefix: strings.Repeat("x", 254)}, "", "computerDnsName prefix"},
		{"a tag too long", MachineFilter{MachineTag: strings.Repeat("t", 257)}, "", "machineTag"},
		{"a group id that is not a number", MachineFilter{RBACGroupID: "12 or 1 eq 1"}, "", "deviceGroupId"},
		{"a negative group id", MachineFilter{RBACGroupID: "-1"}, "", "deviceGroupId"},
		{"a group id past int64", MachineFilter{RBACGroupID: "99999999999999999999"}, "", "deviceGroupId"},
		{"before not after after", MachineFilter{LastSeenAfter: before, LastSeenBefore: after}, "", "lastSeenBefore"},
		{"a year past 9999", MachineFilter{LastSeenAfter: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}, "", "lastSeenAfter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tt.f.OData()
			if tt.wantField != "" {
				var invalid *InvalidInputError
				if !errors.As(err, &invalid) || invalid.Field != tt.wantField {
					t.Fatalf("OData() = %q, %v; want an *InvalidInputError for %s", got, err, tt.wantField)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("OData() =\n %q, %v\nwant\n %q", got, err, tt.want)
			}
		})
	}
}

// TestMachineFilterHostileStrings: whatever a free-text value holds, it is one literal whose
// value is exactly the input, and the rest of the expression is the same as for a benign value.
func TestMachineFilterHostileStrings(t *testing.T) {
	t.Parallel()
	for _, s := range hostile {
		f := MachineFilter{ComputerDNSNamePrefix: s, MachineTag: s}
		assertOneLiteralEach(t, f, s)
	}
}

// assertOneLiteralEach checks f's expression: the prefix and the tag, both v, are each one
// literal with v's value, in the skeleton of a benign filter.
func assertOneLiteralEach(t *testing.T, f MachineFilter, v string) {
	t.Helper()
	expr, err := f.OData()
	if err != nil {
		var invalid *InvalidInputError
		if !errors.As(err, &invalid) {
			t.Errorf("%q: error %v, want an *InvalidInputError", v, err)
		}
		return
	}
	if v == "" { // the zero value sets nothing
		if expr != "" {
			t.Errorf("an empty prefix and tag: expression %q, want none", expr)
		}
		return
	}
	want, _ := MachineFilter{ComputerDNSNamePrefix: "x", MachineTag: "x"}.OData()
	wantSkeleton, _, _ := literals(want)
	skeleton, values, ok := literals(expr)
	if !ok || skeleton != wantSkeleton || len(values) != 2 || values[0] != v || values[1] != v {
		t.Errorf("%q: expression %q reads as %q with literals %q; want %q with two literals of the input", v, expr, skeleton, values, wantSkeleton)
	}
}

func FuzzMachineFilterOData(f *testing.F) {
	for _, s := range hostile {
		f.Add(s, "Active", "12")
	}
	f.Add("desk", "Active' or 'a' eq 'a", "1 or 1 eq 1")
	f.Fuzz(func(t *testing.T, text, word, group string) {
		assertOneLiteralEach(t, MachineFilter{ComputerDNSNamePrefix: text, MachineTag: text}, text)
		expr, err := MachineFilter{HealthStatus: word, RBACGroupID: group}.OData()
		if err != nil {
			return
		}
		// Accepted words and ids add exactly one term each, with no quote inside the literal.
		skeleton, values, ok := literals(expr)
		if !ok || strings.Count(skeleton, " and ") > 1 || strings.ContainsAny(skeleton, "()") {
			t.Errorf("word %q, group %q: expression %q (skeleton %q, literals %q)", word, group, expr, skeleton, values)
		}
	})
}
