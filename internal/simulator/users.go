package simulator

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// accountKind is what an account is used for; it decides its logon types and flags.
type accountKind int

const (
	kindUser    accountKind = iota // a person's domain account
	kindAdmin                      // a domain admin
	kindService                    // a domain service account
	kindNetwork                    // a domain account only ever seen on network logons
	kindLocal                      // an account local to one device
)

// account is one identity across the devices it logged on to.
type account struct {
	name, domain string
	kind         accountKind
	sid          *string
	noPrevalence bool   // upstream sometimes sends null prevalence and count
	seats        []seat // where it appears, in generation order
}

// seat locates one User entry: d.users[machine][user].
type seat struct{ machine, user int }

func (a *account) id() string { return a.domain + `\` + a.name }

var (
	firstNames = []string{
		"anna", "ben", "carla", "david", "emma", "farid", "grace", "hiro", "ines", "jack", "kofi", "lena",
		"maria", "nina", "omar", "priya", "quinn", "rosa", "sam", "tara", "umar", "vera", "wei", "yusuf",
		"zoe", "john", "jane", "alex", "maya", "leo",
	}
	lastNames = []string{
		"doe", "smith", "garcia", "nguyen", "muller", "rossi", "kowalski", "tanaka", "silva", "okafor",
		"jensen", "novak", "haddad", "ivanova", "brown", "martin", "larsen", "costa", "petrov", "kim",
	}
	// fixedAccounts exist in every data set, so the example device and the invariants the tests
	// check (admins, network-only users, names with a space) never depend on luck.
	fixedAccounts = []struct {
		name string
		kind accountKind
	}{
		{"administrator", kindAdmin}, {"adm-jdoe", kindAdmin}, {"adm-asmith", kindAdmin},
		{"adm-mgarcia", kindAdmin}, {"adm-tnguyen", kindAdmin},
		{"svc-sql", kindService}, {"svc-backup", kindService}, {"sql service", kindService},
		{"svc-scan", kindNetwork}, {"svc-monitor", kindNetwork}, {"nessus scanner", kindNetwork}, {"svc-print", kindNetwork},
		{"jane smith", kindUser}, {"jdoe", kindUser},
	}
)

// buildAccounts draws the domain's accounts: the fixed ones, then people scaled to the data set.
func (g *generator) buildAccounts(devices int) {
	r := g.rng
	taken := map[string]bool{}
	add := func(name string, kind accountKind) {
		taken[name] = true
		a := &account{name: name, domain: domainName, kind: kind, noPrevalence: r.IntN(100) < 10}
		if name == "administrator" {
			a.sid = ptr(g.domainSID + "-500")
		} else if r.IntN(100) < 30 {
			a.sid = ptr(fmt.Sprintf("%s-%d", g.domainSID, 1100+len(g.accounts)))
		}
		g.accounts = append(g.accounts, a)
	}
	for _, f := range fixedAccounts {
		add(f.name, f.kind)
	}
	for people := min(40+devices/4, 5000); people > 0; {
		first, last := pick(r, firstNames), pick(r, lastNames)
		name := pickW(r, []weighted[string]{
			{first[:1] + last, 60}, {first + "." + last, 30}, {first + " " + last, 10},
		})
		if taken[name] { // namesakes get a number, as directories do
			name = fmt.Sprintf("%s%d", name, 2+r.IntN(98))
		}
		if taken[name] {
			continue
		}
		kind := kindUser
		if r.IntN(100) < 8 {
			kind = kindNetwork
		}
		add(name, kind)
		people--
	}
}

// ofKind lists the domain accounts of one kind, in their fixed order.
func (g *generator) ofKind(kind accountKind) []*account {
	if g.byKind == nil {
		g.byKind = map[accountKind][]*account{}
		for _, a := range g.accounts {
			g.byKind[a.kind] = append(g.byKind[a.kind], a)
		}
	}
	return g.byKind[kind]
}

func (g *generator) named(name string) *account {
	for _, a := range g.accounts {
		if a.name == name {
			return a
		}
	}
	panic("simulator: no fixed account " + name)
}

// kindWeights says who logs on to a device of this platform.
func kindWeights(platform string) []weighted[accountKind] {
	switch {
	case isServer(platform):
		return []weighted[accountKind]{{kindUser, 20}, {kindAdmin, 30}, {kindNetwork, 20}, {kindLocal, 10}, {kindService, 20}}
	case platform == platLinux:
		return []weighted[accountKind]{{kindUser, 15}, {kindAdmin, 10}, {kindNetwork, 15}, {kindLocal, 55}, {kindService, 5}}
	case platform == platMacOS:
		return []weighted[accountKind]{{kindUser, 40}, {kindNetwork, 5}, {kindLocal, 55}}
	default:
		return []weighted[accountKind]{{kindUser, 55}, {kindAdmin, 8}, {kindNetwork, 12}, {kindLocal, 15}, {kindService, 5}}
	}
}

// users draws 0 to 8 logon users for device i.
func (g *generator) users(i int, m *Machine) []User {
	r := g.rng
	count := 0
	if r.IntN(100) >= 8 {
		count = 1 + r.IntN(8)
	}
	weights := kindWeights(m.OSPlatform)
	out := make([]User, 0, count)
	onDevice := map[string]bool{}
	for range count {
		for try := 0; try < 10; try++ {
			kind := pickW(r, weights)
			var a *account
			if kind == kindLocal {
				name := g.localName(m.OSPlatform)
				if onDevice[shortHost(m.ComputerDNSName)+`\`+name] {
					continue
				}
				a = g.local(m, name)
			} else {
				a = pick(r, g.ofKind(kind))
				if onDevice[a.id()] {
					continue
				}
			}
			onDevice[a.id()] = true
			out = g.seat(out, i, m, a, g.logonTypes(kind))
			break
		}
	}
	return out
}

// exampleUsers gives the example device one account of every interesting kind.
func (g *generator) exampleUsers(i int, m *Machine) []User {
	var out []User
	out = g.seat(out, i, m, g.named("jdoe"), "Interactive, RemoteInteractive")
	out = g.seat(out, i, m, g.named("jane smith"), "Interactive")
	out = g.seat(out, i, m, g.named("adm-jdoe"), "RemoteInteractive")
	out = g.seat(out, i, m, g.named("svc-scan"), "Network")
	out = g.seat(out, i, m, g.local(m, "administrator"), "Interactive")
	out = g.seat(out, i, m, g.named("svc-backup"), "Batch, Service")
	return out
}

// seat appends account a's entry on device i to out. Prevalence fields are filled later, when
// every device is known.
func (g *generator) seat(out []User, i int, m *Machine, a *account, logonTypes string) []User {
	r := g.rng
	span := m.lastSeen.Sub(m.firstSeen)
	last := m.lastSeen.Add(-between(g.rng, 0, min(span, 30*24*time.Hour)))
	first := m.firstSeen.Add(between(g.rng, 0, last.Sub(m.firstSeen)))
	u := User{
		ID:            a.id(),
		AccountName:   a.name,
		AccountDomain: a.domain,
		AccountSID:    clonePtr(a.sid),
		FirstSeen:     first.Truncate(time.Second).Format(userTimeLayout),
		LastSeen:      last.Truncate(time.Second).Format(userTimeLayout),
		LogonTypes:    logonTypes,
		IsDomainAdmin: a.kind == kindAdmin,
	}
	switch {
	case a.kind == kindNetwork:
		u.IsOnlyNetworkUser = ptr(true)
	case r.IntN(100) >= 5: // sometimes null upstream
		u.IsOnlyNetworkUser = ptr(false)
	}
	a.seats = append(a.seats, seat{machine: i, user: len(out)})
	return append(out, u)
}

// logonTypes draws the comma-separated logon types of one account kind.
func (g *generator) logonTypes(kind accountKind) string {
	var opts []weighted[string]
	switch kind {
	case kindNetwork:
		return "Network"
	case kindAdmin:
		opts = []weighted[string]{{"RemoteInteractive", 40}, {"Interactive, RemoteInteractive", 25}, {"Network, RemoteInteractive", 20}, {"Interactive, Network, RemoteInteractive", 15}}
	case kindService:
		opts = []weighted[string]{{"Service", 50}, {"Batch, Service", 30}, {"Batch", 20}}
	case kindLocal:
		opts = []weighted[string]{{"Interactive", 60}, {"Interactive, Network", 25}, {"RemoteInteractive", 15}}
	default:
		opts = []weighted[string]{
			{"Interactive", 45}, {"Interactive, RemoteInteractive", 15}, {"CachedInteractive, Interactive", 10},
			{"RemoteInteractive", 10}, {"Interactive, Network", 10}, {"Interactive, Unlock", 10},
		}
	}
	return pickW(g.rng, opts)
}

// localName draws the name of a local account of the platform.
func (g *generator) localName(platform string) string {
	switch platform {
	case platLinux:
		return pick(g.rng, []string{"root", "azureuser", "ubuntu", "ansible", "deploy"})
	case platMacOS:
		return pick(g.rng, []string{"admin", "itsupport", pick(g.rng, firstNames)})
	default:
		return pick(g.rng, []string{"administrator", "localadmin", "defaultuser0", "support", "kioskuser0", "labadmin"})
	}
}

// local makes the local account name of device m: its domain is the device's short host name.
func (g *generator) local(m *Machine, name string) *account {
	a := &account{name: name, domain: shortHost(m.ComputerDNSName), kind: kindLocal, noPrevalence: g.rng.IntN(100) < 30}
	if isWindows(m.OSPlatform) && g.rng.IntN(100) < 40 {
		rid := 1001
		if name == "administrator" {
			rid = 500
		}
		a.sid = ptr(fmt.Sprintf("S-1-5-21-%d-%d-%d-%d", 1e9+g.rng.IntN(1e9), 1e9+g.rng.IntN(1e9), 1e8+g.rng.IntN(9e8), rid))
	}
	g.locals = append(g.locals, a)
	return a
}

// fillPrevalence sets the cross-device fields of every entry: how many devices the account logged
// on to and which ones it uses most and least. They point at real devices of the set or are null.
func (g *generator) fillPrevalence(d *dataset) {
	for _, a := range append(append([]*account{}, g.accounts...), g.locals...) {
		if len(a.seats) == 0 || a.noPrevalence {
			continue
		}
		count := len(a.seats)
		var most, least *string
		if a.kind != kindNetwork { // upstream has no prevalence for network-only accounts
			most = &d.machines[pick(g.rng, a.seats).machine].ID
			least = &d.machines[pick(g.rng, a.seats).machine].ID
		}
		for _, s := range a.seats {
			u := &d.users[s.machine][s.user]
			u.LogOnMachinesCount = ptr(count)
			u.MostPrevalentMachineID, u.LeastPrevalentMachineID = clonePtr(most), clonePtr(least)
		}
	}
}

// shortHost is the first label of a DNS name: a local account's domain.
func shortHost(dnsName string) string {
	short, _, _ := strings.Cut(dnsName, ".")
	return short
}

// internationalNames are domain accounts whose names need care in a URL and an OData literal:
// letters outside ASCII, spaces, an apostrophe.
var internationalNames = []string{"renée.dubois", "jürgen weiß", "søren.ødegård", "łukasz.wójcik", "zoë o'brien", "josé garcía"}

// addInternationalAccounts seats each of internationalNames on one to three ordinary devices
// (never the example device or the re-onboarded pair), appended after their other logon users,
// drawing from r alone.
func addInternationalAccounts(d *dataset, r *rand.Rand) {
	n := len(d.machines)
	var candidates []int
	for i := range d.machines {
		if i == exampleIndex || i == twinOriginal || (n >= 3 && i == n-1) {
			continue
		}
		if c := len(d.users[i]); c >= 1 && c <= 6 && isWindows(d.machines[i].OSPlatform) {
			candidates = append(candidates, i)
		}
	}
	if len(candidates) == 0 {
		return
	}
	for _, name := range internationalNames {
		var devices []int
		for range 1 + r.IntN(3) {
			if i := pick(r, candidates); !slices.Contains(devices, i) {
				devices = append(devices, i)
			}
		}
		slices.Sort(devices)
		count := len(devices)
		most, least := d.machines[pick(r, devices)].ID, d.machines[pick(r, devices)].ID
		for _, i := range devices {
			m := &d.machines[i]
			span := m.lastSeen.Sub(m.firstSeen)
			last := m.lastSeen.Add(-time.Duration(r.Int64N(int64(min(span, 30*24*time.Hour)) + 1)))
			first := m.firstSeen.Add(time.Duration(r.Int64N(int64(last.Sub(m.firstSeen)) + 1)))
			d.users[i] = append(d.users[i], User{
				ID:                      domainName + `\` + name,
				AccountName:             name,
				AccountDomain:           domainName,
				FirstSeen:               first.Truncate(time.Second).Format(userTimeLayout),
				LastSeen:                last.Truncate(time.Second).Format(userTimeLayout),
				LogonTypes:              pick(r, []string{"Interactive", "Interactive, RemoteInteractive", "CachedInteractive, Interactive"}),
				LogOnMachinesCount:      ptr(count),
				IsOnlyNetworkUser:       ptr(false),
				MostPrevalentMachineID:  ptr(most),
				LeastPrevalentMachineID: ptr(least),
			})
		}
	}
}
