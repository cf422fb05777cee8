package simulator

import (
	"cmp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// fieldKind is the type of a filterable property.
type fieldKind int

const (
	kindString fieldKind = iota
	kindInt
	kindTime
	kindTags
)

// filterField is one property $filter may name, with how to read it from a Machine.
type filterField struct {
	name string
	kind fieldKind
	str  func(*Machine) *string // kindString; nil result is JSON null
	num  func(*Machine) int64   // kindInt
	tm   func(*Machine) time.Time
}

func stringField(name string, get func(*Machine) *string) filterField {
	return filterField{name: name, kind: kindString, str: get}
}

// filterFields are the properties the upstream documents as filterable on GET /api/machines.
var filterFields = []filterField{
	stringField("computerDnsName", func(m *Machine) *string { return &m.ComputerDNSName }),
	stringField("id", func(m *Machine) *string { return &m.ID }),
	stringField("version", func(m *Machine) *string { return m.Version }),
	stringField("deviceValue", func(m *Machine) *string { return m.DeviceValue }),
	stringField("aadDeviceId", func(m *Machine) *string { return m.AADDeviceID }),
	{name: "machineTags", kind: kindTags},
	{name: "lastSeen", kind: kindTime, tm: func(m *Machine) time.Time { return m.lastSeen }},
	stringField("exposureLevel", func(m *Machine) *string { return m.ExposureLevel }),
	stringField("onboardingStatus", func(m *Machine) *string { return &m.OnboardingStatus }),
	stringField("lastIpAddress", func(m *Machine) *string { return &m.LastIPAddress }),
	stringField("healthStatus", func(m *Machine) *string { return &m.HealthStatus }),
	stringField("osPlatform", func(m *Machine) *string { return &m.OSPlatform }),
	stringField("riskScore", func(m *Machine) *string { return m.RiskScore }),
	{name: "rbacGroupId", kind: kindInt, num: func(m *Machine) int64 { return int64(m.RBACGroupID) }},
}

// lookupField finds a property by name, ignoring case; nil if it is not filterable.
func lookupField(name string) *filterField {
	for i := range filterFields {
		if strings.EqualFold(filterFields[i].name, name) {
			return &filterFields[i]
		}
	}
	return nil
}

func filterableNames() string {
	names := make([]string, len(filterFields))
	for i, f := range filterFields {
		names[i] = f.name
	}
	return strings.Join(names, ", ")
}

// compare orders m's property against v (negative, zero, positive) and reports whether the
// property has a value at all; the order is meaningless when either side is null.
func (f *filterField) compare(m *Machine, v filterValue) (int, bool) {
	switch f.kind {
	case kindString:
		s := f.str(m)
		if s == nil {
			return 0, false
		}
		return compareFold(*s, v.s), true
	case kindInt:
		return cmp.Compare(f.num(m), v.n), true
	case kindTime:
		return f.tm(m).Compare(v.t), true
	}
	return 0, false
}

// compareFold orders two strings ignoring case, without allocating: a filter of hundreds of ids
// is matched against every device.
func compareFold(a, b string) int {
	for a != "" && b != "" {
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		if ra, rb = unicode.ToLower(ra), unicode.ToLower(rb); ra != rb {
			return cmp.Compare(ra, rb)
		}
		a, b = a[na:], b[nb:]
	}
	return cmp.Compare(len(a), len(b))
}
