package defender

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MachineRef is what the API accepts where it says {id} for a machine: a device id (40 hex
// digits, normalised to lower case) or a computer DNS name (normalised to lower case).
type MachineRef string

const maxDNSName = 253

// ParseMachineRef validates s before it can reach an upstream URL. It accepts a 40-hex device
// id or a DNS-name-shaped computer name (labels of letters, digits, '-' or '_', 1 to 63
// characters each, 253 in all, not all digits: Windows computer names cannot be), after
// trimming surrounding white space and one trailing dot (a fully qualified name's root). A
// short host name (no dot) is accepted, though Defender looks devices up by their full DNS
// name (see IsShortName). Anything else is an *InvalidInputError.
func ParseMachineRef(s string) (MachineRef, error) {
	s = strings.TrimSpace(s)
	if name, ok := strings.CutSuffix(s, "."); ok && name != "" {
		s = name
	}
	if isDeviceID(s) {
		return MachineRef(strings.ToLower(s)), nil
	}
	if n := len(s); n >= nearDeviceID && n <= 2*40-nearDeviceID && isHex(s) {
		return "", &InvalidInputError{Field: "id", Value: s,
			Reason: fmt.Sprintf("has %d hex digits; a device id has exactly 40", n)}
	}
	if reason := dnsNameProblem(s); reason != "" {
		return "", &InvalidInputError{Field: "id", Value: s, Reason: reason}
	}
	if isDigits(s) {
		// machine(id: 1000) with an integer literal arrives as "1000": that would call
		// GET /api/machines/1000, which no device answers.
		return "", &InvalidInputError{Field: "id", Value: s,
			Reason: "is all digits: a device id is 40 hex digits, and a Windows computer name cannot be all digits"}
	}
	return MachineRef(strings.ToLower(s)), nil
}

// IsDeviceID reports whether r is a device id rather than a computer name.
func (r MachineRef) IsDeviceID() bool { return isDeviceID(string(r)) }

// IsShortName reports whether r is a computer name without a domain (desk-1 rather than
// desk-1.contoso.local). Defender finds devices by their full DNS name, so such a name is
// likely not found even when the device exists.
func (r MachineRef) IsShortName() bool {
	return r != "" && !r.IsDeviceID() && !strings.Contains(string(r), ".")
}

// String returns the normalised id or name.
func (r MachineRef) String() string { return string(r) }

// nearDeviceID is the length from which a string of hex digits is taken for a mistyped device
// id rather than a computer name: no host is named with 30 to 50 hex digits, and accepting
// such a typo as a name would spend an upstream call to learn that it does not exist.
const nearDeviceID = 30

func isDeviceID(s string) bool { return len(s) == 40 && isHex(s) }

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// dnsNameProblem says what makes s unacceptable as a computer DNS name, or "" if it is fine.
func dnsNameProblem(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case len(s) > maxDNSName:
		return fmt.Sprintf("is %d characters long; a device id is 40 hex digits and a computer name at most %d characters", len(s), maxDNSName)
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" {
			return "is neither a 40-hex device id nor a computer DNS name (empty label)"
		}
		if len(label) > 63 {
			return "is neither a 40-hex device id nor a computer DNS name (a label is longer than 63 characters)"
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return "is neither a 40-hex device id nor a computer DNS name (a label starts or ends with '-')"
		}
		for _, c := range label {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return fmt.Sprintf("is neither a 40-hex device id nor a computer DNS name (character %q is not allowed)", c)
			}
		}
	}
	return ""
}

// AccountName is an account's name without its domain (jdoe, not contoso\jdoe nor
// jdoe@contoso.com): what GET /api/users/{accountName}/machines takes.
type AccountName string

// maxAccountName bounds an account name in bytes: Windows' own limits are far lower (20
// characters for a SAM account name, 64 for a UPN's name part), other platforms' are not.
const maxAccountName = 256

// ParseAccountName validates s before it can reach an upstream URL. Account names may hold
// spaces, apostrophes and letters of any script ("sql service", "o'brien", "jürgen"); they are
// sent path-escaped, exactly as given. Refused, as an *InvalidInputError: the empty name, more
// than 256 bytes, invalid UTF-8, control characters, '/' and names made of dots only (they
// would change the URL's path), and a domain or a UPN ('\' or '@'), which Defender does not
// match: it wants the bare name (../shared/UPSTREAM.md).
func ParseAccountName(s string) (AccountName, error) {
	refuse := func(reason string) (AccountName, error) {
		return "", &InvalidInputError{Field: "accountName", Value: s, Reason: reason}
	}
	switch {
	case strings.TrimSpace(s) == "":
		return refuse("must not be empty")
	case len(s) > maxAccountName:
		return refuse(fmt.Sprintf("is %d bytes long; an account name is at most %d", len(s), maxAccountName))
	case !utf8.ValidString(s):
		return refuse("is not valid UTF-8")
	case strings.Trim(s, ".") == "":
		return refuse("is made of dots only")
	case strings.ContainsRune(s, '\\'):
		return refuse(`holds a domain (domain\name): give the account name alone, e.g. jdoe`)
	case strings.ContainsRune(s, '@'):
		return refuse("looks like a UPN (name@domain): give the account name alone, e.g. jdoe")
	case strings.ContainsRune(s, '/'):
		return refuse("holds '/', which no account name does")
	case strings.ContainsFunc(s, unicode.IsControl):
		return refuse("holds a control character")
	}
	return AccountName(s), nil
}

// String returns the name.
func (n AccountName) String() string { return string(n) }
