package defender

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// MachineFilter is a typed $filter of GET /api/machines. Each field set adds one condition, and
// a machine matches when it meets them all (the conditions are joined with and); the zero
// value matches every machine. Only properties Defender documents as filterable are used
// (../shared/UPSTREAM.md, "Endpoints"), with the documented operators: eq, gt, lt,
// startswith(computerDnsName,'x') and machineTags/any(t: t eq 'x').
type MachineFilter struct {
	// ComputerDNSNamePrefix keeps the machines whose computer DNS name starts with it
	// (case-insensitively, as Defender compares names).
	ComputerDNSNamePrefix string
	// HealthStatus, RiskScore, ExposureLevel and OSPlatform keep the machines with that value,
	// in Defender's spelling ("Active", "High", "Medium", "Windows11"): one word of ASCII
	// letters and digits.
	HealthStatus, RiskScore, ExposureLevel, OSPlatform string
	// MachineTag keeps the machines that carry the tag.
	MachineTag string
	// LastSeenAfter and LastSeenBefore keep the machines last seen after (before) the instant;
	// the zero time sets no bound.
	LastSeenAfter, LastSeenBefore time.Time
	// RBACGroupID keeps the machines of the device group with that id: decimal digits.
	RBACGroupID string
}

// Bounds on the filter's free-text values, in bytes: a computer DNS name has at most 253
// characters; Defender documents no bound on tags, and 256 bytes keeps the URL short.
const (
	maxPrefix = maxDNSName
	maxTag    = 256
	maxWord   = 64
)

// OData returns the $filter expression of f, "" when f sets nothing, or an *InvalidInputError
// naming the first field it refuses, before anything reaches a URL. Strings are OData string
// literals, quoted with a single quote and a quote inside written twice, so no value can end
// its literal and add a condition:
//
//	machineTags/any(t: t eq 'o''brien')
//
// Control characters and invalid UTF-8 are refused. Enumeration values must be one word;
// dates are written in RFC 3339, UTC; the device group id is a number. The expression is the
// same for the same filter, so it can key a cache or a cursor.
func (f MachineFilter) OData() (string, error) {
	var terms []string
	add := func(format string, args ...any) { terms = append(terms, fmt.Sprintf(format, args...)) }
	if v := f.ComputerDNSNamePrefix; v != "" {
		lit, err := stringLiteral("computerDnsName prefix", v, maxPrefix)
		if err != nil {
			return "", err
		}
		add("startswith(computerDnsName,%s)", lit)
	}
	for _, w := range []struct{ property, value string }{
		{"healthStatus", f.HealthStatus}, {"riskScore", f.RiskScore},
		{"exposureLevel", f.ExposureLevel}, {"osPlatform", f.OSPlatform},
	} {
		if w.value == "" {
			continue
		}
		if !isWord(w.value) {
			return "", &InvalidInputError{Field: w.property, Value: w.value,
				Reason: fmt.Sprintf("must be one word of letters and digits (at most %d), as Defender spells it, e.g. Active or Windows11", maxWord)}
		}
		add("%s eq '%s'", w.property, w.value)
	}
	if v := f.MachineTag; v != "" {
		lit, err := stringLiteral("machineTag", v, maxTag)
		if err != nil {
			return "", err
		}
		add("machineTags/any(t: t eq %s)", lit)
	}
	after, before := f.LastSeenAfter, f.LastSeenBefore
	for _, b := range []struct {
		field, op string
		t         time.Time
	}{{"lastSeenAfter", "gt", after}, {"lastSeenBefore", "lt", before}} {
		if b.t.IsZero() {
			continue
		}
		if y := b.t.UTC().Year(); y < 1 || y > 9999 {
			return "", &InvalidInputError{Field: b.field, Value: b.t.String(), Reason: "must be between the years 1 and 9999"}
		}
		add("lastSeen %s %s", b.op, b.t.UTC().Format(time.RFC3339Nano))
	}
	if !after.IsZero() && !before.IsZero() && !after.Before(before) {
		return "", &InvalidInputError{Field: "lastSeenBefore", Value: before.UTC().Format(time.RFC3339Nano),
			Reason: "must be later than lastSeenAfter, or no machine can match"}
	}
	if v := f.RBACGroupID; v != "" {
		n, err := strconv.ParseUint(v, 10, 63)
		if err != nil || !isDigits(v) {
			return "", &InvalidInputError{Field: "deviceGroupId", Value: v, Reason: "must be a device group id: decimal digits"}
		}
		add("rbacGroupId eq %d", n)
	}
	return strings.Join(terms, " and "), nil
}

// stringLiteral quotes v as an OData string literal, or refuses it as field.
func stringLiteral(field, v string, maxLen int) (string, error) {
	refuse := func(reason string) (string, error) {
		return "", &InvalidInputError{Field: field, Value: v, Reason: reason}
	}
	switch {
	case len(v) > maxLen:
		return refuse(fmt.Sprintf("is %d bytes long; at most %d", len(v), maxLen))
	case !utf8.ValidString(v):
		return refuse("is not valid UTF-8")
	case strings.ContainsFunc(v, unicode.IsControl):
		return refuse("holds a control character")
	}
	return "'" + strings.ReplaceAll(v, "'", "''") + "'", nil
}

// isWord reports whether s is one word of ASCII letters and digits, starting with a letter.
func isWord(s string) bool {
	if s == "" || len(s) > maxWord {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}
