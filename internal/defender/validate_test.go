package defender

import (
	"net/url"
	"strings"
	"testing"
)

func TestParseMachineRef(t *testing.T) {
	t.Parallel()
	label63 := strings.Repeat("a", 63)
	name253 := strings.Join([]string{label63, label63, label63, strings.Repeat("b", 61)}, ".") // 63*3+61+3 = 253
	tests := []struct {
		in       string
		want     string // "" means an error is expected
		deviceID bool
	}{
		{deviceID, deviceID, true},
		{strings.ToUpper(deviceID), deviceID, true},
		{"1E5bc9d7E413ddd7902c2932e418702b84d0cc07", deviceID, true},
		{"host-1", "host-1", false},
		{"HOST-1.Contoso.com", "host-1.contoso.com", false},
		{"desktop_42.corp.contoso.com", "desktop_42.corp.contoso.com", false},
		{"a", "a", false},
		{"1234567890a", "1234567890a", false},
		{"1000.contoso.local", "1000.contoso.local", false}, // only the whole name may not be all digits
		{strings.Repeat("1", 40), strings.Repeat("1", 40), true},
		// Surrounding white space is trimmed, and a fully qualified name's trailing dot.
		{" host-1.contoso.local ", "host-1.contoso.local", false},
		{"\thost-1\n", "host-1", false},
		{"  " + deviceID + "\n", deviceID, true},
		{"host-1.contoso.local.", "host-1.contoso.local", false},
		{"HOST.", "host", false},
		{" host. ", "host", false},
		{deviceID[:29], deviceID[:29], false},                     // 29 hex: short enough to be a host name
		{strings.Repeat("g", 40), strings.Repeat("g", 40), false}, // 40 chars, not hex
		{label63, label63, false},
		{name253, name253, false},

		{"", "", false},
		{name253 + "b", "", false},           // 254 characters
		{strings.Repeat("a", 64), "", false}, // label too long
		{"host..", "", false},                // one trailing dot only
		{".host", "", false},
		{"a..b", "", false},
		{"..", "", false},
		{".", "", false},
		{"../x", "", false},
		{"../../api/machines", "", false},
		{"-host", "", false},
		{"host-", "", false},
		{"a.-b.c", "", false},
		{"a/b", "", false},
		{"a?b", "", false},
		{"a#b", "", false},
		{"a%2Fb", "", false},
		{"a b", "", false},
		{" ", "", false},
		{"1000", "", false}, // machine(id: 1000): no such computer name
		{"0", "", false},
		{strings.Repeat("9", 29), "", false},
		{"a\x00b", "", false},
		{"hôst", "", false},
		{"хост", "", false},
		{"host\u200b", "", false},
		{"a'b", "", false},
		{"a:b", "", false},
		{"a@b", "", false},
		{`a\b`, "", false},
		{deviceID[:39], "", false},                      // 39 hex: a mistyped device id
		{deviceID + "0", "", false},                     // 41 hex: likewise
		{strings.ToUpper(deviceID[:30]), "", false},     // 30 hex
		{deviceID + strings.Repeat("f", 10), "", false}, // 50 hex
	}
	for _, tt := range tests {
		ref, err := ParseMachineRef(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("ParseMachineRef(%q) = %q, want an error", tt.in, ref)
				continue
			}
			ie := errorAs[*InvalidInputError](t, err)
			assertEqual(t, "field", ie.Field, "id")
			continue
		}
		if err != nil {
			t.Errorf("ParseMachineRef(%q): %v", tt.in, err)
			continue
		}
		assertEqual(t, "ParseMachineRef("+tt.in+")", ref.String(), tt.want)
		assertEqual(t, "IsDeviceID("+tt.in+")", ref.IsDeviceID(), tt.deviceID)
	}
}

// TestParseMachineRefReasons checks that the error says what is wrong in the user's terms.
func TestParseMachineRefReasons(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{deviceID[:39], "has 39 hex digits; a device id has exactly 40"},
		{deviceID + "0", "has 41 hex digits; a device id has exactly 40"},
		{"ünïcode.local", `character 'ü' is not allowed`},
		{"host​", `character '\u200b' is not allowed`},
		{"a/b", `character '/' is not allowed`},
		{"", "must not be empty"},
		{" \t", "must not be empty"},
		{"1000", "all digits"},
	}
	for _, tt := range tests {
		_, err := ParseMachineRef(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseMachineRef(%q) = %v, want an error containing %q", tt.in, err, tt.want)
		}
	}
}

func FuzzParseMachineRef(f *testing.F) {
	for _, s := range []string{
		deviceID, strings.ToUpper(deviceID), "host-1.contoso.com", "HOST_1", "a", "", ".", "..", "../x", "a/b",
		"a?b", "a#b", "a%2Fb", "a b", "hôst", "хост", "-a", "a-", "a..b", "host.", strings.Repeat("a", 63),
		strings.Repeat("a", 64), strings.Repeat("a.", 127), strings.Repeat("ab.", 85), "\x00", "\xff\xfe",
		" host ", "host.", "host..", " . ", "1000", "0", "\t" + deviceID, deviceID + ".", strings.Repeat("1", 40),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ref, err := ParseMachineRef(s)
		if err != nil {
			if _, ok := err.(*InvalidInputError); !ok {
				t.Fatalf("ParseMachineRef(%q): error %T, want *InvalidInputError", s, err)
			}
			if ref != "" {
				t.Errorf("ParseMachineRef(%q) = %q with an error", s, ref)
			}
			return
		}
		r := ref.String()
		if r == "" || len(r) > 253 {
			t.Errorf("ParseMachineRef(%q) = %q: length %d, want 1 to 253", s, r, len(r))
		}
		for i := 0; i < len(r); i++ {
			c := r[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
				t.Fatalf("ParseMachineRef(%q) = %q: byte %q outside [a-z0-9._-]", s, r, c)
			}
		}
		if e := url.PathEscape(r); e != r {
			t.Errorf("ParseMachineRef(%q) = %q: url.PathEscape changes it to %q", s, r, e)
		}
		if r == "." || r == ".." || strings.Contains(r, "..") {
			t.Errorf("ParseMachineRef(%q) = %q: a dot segment could walk the URL path", s, r)
		}
		if trimmed := strings.TrimSuffix(strings.TrimSpace(s), "."); !strings.EqualFold(r, trimmed) {
			t.Errorf("ParseMachineRef(%q) = %q: want s in lower case, without surrounding space or a trailing dot", s, r)
		}
		if isDigits(r) && !ref.IsDeviceID() {
			t.Errorf("ParseMachineRef(%q) = %q: an all-digit name accepted", s, r)
		}
		if ref.IsShortName() == (ref.IsDeviceID() || strings.Contains(r, ".")) {
			t.Errorf("ParseMachineRef(%q) = %q: IsShortName %v", s, r, ref.IsShortName())
		}
		if !ref.IsDeviceID() && len(r) >= nearDeviceID && len(r) <= 80-nearDeviceID && isHex(r) {
			t.Errorf("ParseMachineRef(%q) = %q: %d hex digits accepted as a name, want a mistyped id", s, r, len(r))
		}
		again, err := ParseMachineRef(r)
		if err != nil || again != ref {
			t.Errorf("ParseMachineRef(%q) = %q, %v: not idempotent", r, again, err)
		}
	})
}
