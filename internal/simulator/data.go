package simulator

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Wire layouts: machines carry seven fractional digits like live answers, users whole seconds
// like the documented logonusers example.
const (
	machineTimeLayout = "2006-01-02T15:04:05.0000000Z"
	userTimeLayout    = "2006-01-02T15:04:05Z"
)

// dataset is the simulator's read-only data, built once by generate.
type dataset struct {
	epoch     time.Time // "now" of the data set: every timestamp lies before it
	machines  []Machine
	users     [][]User         // users[i] are the logon users of machines[i]
	alerts    [][]Alert        // alerts[i] are the alerts of machines[i], newest first
	byID      map[string]int   // lower-cased id → index
	byName    map[string]int   // lower-cased computer name → index of the most recently seen device
	byNameAll map[string][]int // lower-cased computer name → every index, most recently seen first
	byAccount map[string][]int // foldKey(accountName) → indices of devices it logged on to, ascending
	example   int              // index of ExampleMachineID
}

// lookup resolves a device id or computer name the way GET /api/machines/{id} does.
func (d *dataset) lookup(idOrName string) (int, bool) {
	key := strings.ToLower(idOrName)
	if i, ok := d.byID[key]; ok {
		return i, true
	}
	i, ok := d.byName[key]
	return i, ok
}

// Indices with a fixed role in every data set of at least three devices: the example device, and
// the device whose computer name a re-onboarded twin (the last device) shares. Upstream one name can
// match several ids; GET by that name answers the most recently seen one, which is the twin.
const (
	exampleIndex = 0
	twinOriginal = 1
)

// generate builds the data set. Devices and logon users are drawn from one PCG stream in a fixed
// order and no map is ever ranged over, so a seed and a size always give the same bytes. What
// was added later (accounts with non-ASCII names, alerts) draws from streams of its own, so the
// devices and users of a seed stay what they were. tenant only fills the alerts' aadTenantId.
func generate(seed int64, n int, tenant string) *dataset {
	g := &generator{
		rng:   rand.New(rand.NewPCG(uint64(seed), uint64(seed)^0x9e3779b97f4a7c15)),
		names: map[string]bool{},
		ids:   map[string]bool{},
	}
	// A fixed epoch derived from the seed, never time.Now: the data must not drift between runs.
	g.epoch = time.Date(2026, 11, 20, 7, 0, 0, 0, time.UTC).
		Add(-time.Duration(g.rng.IntN(90*24*60)) * time.Minute)
	g.subscriptions = []string{g.guid(), g.guid()}
	g.domainSID = fmt.Sprintf("S-1-5-21-%d-%d-%d", 1e9+g.rng.IntN(1e9), 1e9+g.rng.IntN(1e9), 1e8+g.rng.IntN(9e8))
	g.buildAccounts(n)

	d := &dataset{
		epoch:    g.epoch,
		machines: make([]Machine, n),
		users:    make([][]User, n),
		byID:     make(map[string]int, n),
		byName:   make(map[string]int, n),
		example:  exampleIndex,
	}
	twin := -1
	if n >= 3 {
		twin = n - 1
	}
	for i := range n {
		switch i {
		case exampleIndex:
			d.machines[i] = g.exampleMachine()
		case twin:
			d.machines[i] = g.twinOf(&d.machines[twinOriginal])
		default:
			d.machines[i] = g.machine(pickW(g.rng, platformWeights))
		}
	}
	for i := range d.machines {
		if i == exampleIndex {
			d.users[i] = g.exampleUsers(i, &d.machines[i])
		} else {
			d.users[i] = g.users(i, &d.machines[i])
		}
	}
	g.fillPrevalence(d)
	addInternationalAccounts(d, rand.New(rand.NewPCG(uint64(seed), uint64(seed)^0x1f83d9abfb41bd6b)))
	d.index()
	d.alerts = generateAlerts(d, rand.New(rand.NewPCG(uint64(seed), uint64(seed)^0x5be0cd19137e2179)), tenant)
	return d
}

// index builds the lookup maps.
func (d *dataset) index() {
	d.byNameAll = map[string][]int{}
	d.byAccount = map[string][]int{}
	for i := range d.machines {
		m := &d.machines[i]
		d.byID[m.ID] = i
		name := strings.ToLower(m.ComputerDNSName)
		if j, ok := d.byName[name]; !ok || m.lastSeen.After(d.machines[j].lastSeen) {
			d.byName[name] = i
		}
		d.byNameAll[name] = append(d.byNameAll[name], i)
		for _, u := range d.users[i] {
			key := foldKey(u.AccountName)
			if idx := d.byAccount[key]; len(idx) == 0 || idx[len(idx)-1] != i {
				d.byAccount[key] = append(idx, i)
			}
		}
	}
	for _, idx := range d.byNameAll {
		slices.SortStableFunc(idx, func(a, b int) int { return d.machines[b].lastSeen.Compare(d.machines[a].lastSeen) })
	}
}

// foldKey is the key under which account names compare case-insensitively.
func foldKey(name string) string { return strings.ToLower(name) }

// generator holds the random stream and what must stay unique while the data set is drawn.
type generator struct {
	rng           *rand.Rand
	epoch         time.Time
	names, ids    map[string]bool // only looked up, never ranged over
	subscriptions []string
	domainSID     string
	accounts      []*account // the domain's accounts, in a fixed order
	byKind        map[accountKind][]*account
	locals        []*account // local accounts, one per (device, name)
}

const (
	platWin10  = "Windows10"
	platWin11  = "Windows11"
	platSrv19  = "WindowsServer2019"
	platSrv22  = "WindowsServer2022"
	platLinux  = "Linux"
	platMacOS  = "macOS"
	healthy    = "Active"
	onboarded  = "Onboarded"
	domainName = "contoso"
)

var platformWeights = []weighted[string]{
	{platWin10, 34}, {platWin11, 30}, {platSrv19, 10}, {platSrv22, 11}, {platLinux, 10}, {platMacOS, 5},
}

func isServer(platform string) bool { return platform == platSrv19 || platform == platSrv22 }

func isWindows(platform string) bool { return platform != platLinux && platform != platMacOS }

// machine draws one device of the given platform.
func (g *generator) machine(platform string) Machine {
	r := g.rng
	health := pickW(r, []weighted[string]{
		{healthy, 76}, {"Inactive", 10}, {"ImpairedCommunication", 5}, {"NoSensorData", 4},
		{"NoSensorDataImpairedCommunication", 2}, {"Unknown", 3},
	})
	var ago time.Duration
	switch health {
	case healthy:
		ago = between(g.rng, 0, 36*time.Hour)
	case "Inactive":
		ago = between(g.rng, 8*24*time.Hour, 90*24*time.Hour)
	default:
		ago = between(g.rng, 0, 10*24*time.Hour)
	}
	lastSeen := g.epoch.Add(-ago).Truncate(100 * time.Nanosecond)
	firstSeen := lastSeen.Add(-between(g.rng, 24*time.Hour, 700*24*time.Hour)).Truncate(100 * time.Nanosecond)
	m := Machine{
		ID:               g.machineID(),
		ComputerDNSName:  g.hostName(platform),
		OSPlatform:       platform,
		HealthStatus:     health,
		OnboardingStatus: pickW(r, []weighted[string]{{onboarded, 92}, {"CanBeOnboarded", 4}, {"Unsupported", 2}, {"InsufficientInfo", 2}}),
		OSProcessor:      "x64",
		OSArchitecture:   "64-bit",
		MachineTags:      []string{},
	}
	setSeen(&m, firstSeen, lastSeen)
	g.fillOS(&m)
	g.fillNetwork(&m)
	g.fillPosture(&m)
	g.fillManagement(&m)
	return m
}

func setSeen(m *Machine, first, last time.Time) {
	m.FirstSeen = first.UTC().Format(machineTimeLayout)
	m.LastSeen = last.UTC().Format(machineTimeLayout)
	m.firstSeen, m.lastSeen = first, last
}

// exampleMachine is the playground's device: healthy, recent, joined and interesting.
func (g *generator) exampleMachine() Machine {
	m := g.machine(platWin11)
	m.HealthStatus = healthy
	m.OnboardingStatus = onboarded
	last := g.epoch.Add(-between(g.rng, time.Minute, 2*time.Hour)).Truncate(100 * time.Nanosecond)
	first := last.Add(-between(g.rng, 200*24*time.Hour, 400*24*time.Hour)).Truncate(100 * time.Nanosecond)
	setSeen(&m, first, last)
	m.RiskScore, m.ExposureLevel, m.DeviceValue = ptr("Medium"), ptr("Medium"), ptr("High")
	m.Version, m.OSBuild = ptr("23H2"), ptr(int64(22631))
	m.AgentVersion = ptr(fmt.Sprintf("10.8760.%d.%d", *m.OSBuild, 1000+g.rng.IntN(4000)))
	m.DefenderAVStatus, m.ManagedBy, m.ManagedByStatus = "Updated", "Intune", "Success"
	m.IsAADJoined, m.AADDeviceID = true, ptr(g.guid())
	m.MachineTags = []string{"VIP", "Finance"}
	return m
}

// twinOf draws a re-onboarded copy of orig: same name, new id, seen after orig went quiet.
func (g *generator) twinOf(orig *Machine) Machine {
	m := g.machine(orig.OSPlatform)
	g.names[m.ComputerDNSName] = false
	m.ComputerDNSName = orig.ComputerDNSName
	origLast := g.epoch.Add(-between(g.rng, 20*24*time.Hour, 30*24*time.Hour)).Truncate(100 * time.Nanosecond)
	origFirst := origLast.Add(-between(g.rng, 100*24*time.Hour, 300*24*time.Hour)).Truncate(100 * time.Nanosecond)
	setSeen(orig, origFirst, origLast)
	orig.HealthStatus = "Inactive"
	last := g.epoch.Add(-between(g.rng, 0, 12*time.Hour)).Truncate(100 * time.Nanosecond)
	first := origLast.Add(between(g.rng, time.Hour, 48*time.Hour)).Truncate(100 * time.Nanosecond)
	setSeen(&m, first, last)
	m.HealthStatus, m.OnboardingStatus = healthy, onboarded
	orig.IsPotentialDuplication, m.IsPotentialDuplication = true, true
	return m
}

// hostName draws a unique lower-case computer DNS name in the style of the platform.
func (g *generator) hostName(platform string) string {
	r := g.rng
	for try := 0; ; try++ {
		var name string
		switch {
		case isServer(platform):
			role := pick(r, []string{"sql", "web", "app", "file", "dc", "exch", "print", "rds", "ca", "bkp", "iis", "hv"})
			name = fmt.Sprintf("srv-%s%02d.corp.contoso.com", role, 1+r.IntN(40))
		case platform == platLinux:
			base := pick(r, []string{"ubuntu-web", "rhel-db", "k8s-node", "deb-build", "ubuntu-ci", "rhel-app", "nginx-edge"})
			name = fmt.Sprintf("%s%02d", base, 1+r.IntN(60)) + pickW(r, []weighted[string]{{".corp.contoso.com", 80}, {"", 20}})
		case platform == platMacOS:
			if r.IntN(2) == 0 {
				name = pick(r, firstNames) + "s-macbook-pro.contoso.local"
			} else {
				name = "mac-" + g.hex(6) + ".contoso.local"
			}
		default:
			name = pick(r, []string{"desk", "lap"}) + "-" + g.hex(6) +
				pickW(r, []weighted[string]{{".contoso.local", 50}, {".corp.contoso.com", 45}, {"", 5}})
		}
		if try > 20 {
			short, rest, _ := strings.Cut(name, ".")
			name = fmt.Sprintf("%s-%s", short, g.hex(4))
			if rest != "" {
				name += "." + rest
			}
		}
		if !g.names[name] {
			g.names[name] = true
			return name
		}
	}
}

// fillOS sets version, build, OS version and agent version, consistent with the platform.
func (g *generator) fillOS(m *Machine) {
	r := g.rng
	var build int64
	switch m.OSPlatform {
	case platWin10:
		v := pick(r, []string{"21H2", "22H2", "22H2"})
		m.Version, build = ptr(v), map[string]int64{"21H2": 19044, "22H2": 19045}[v]
		if r.IntN(100) < 3 {
			m.OSProcessor, m.OSArchitecture = "x86", "32-bit"
		}
	case platWin11:
		v := pick(r, []string{"22H2", "23H2", "23H2"})
		m.Version, build = ptr(v), map[string]int64{"22H2": 22621, "23H2": 22631}[v]
	case platSrv19:
		m.Version, build = ptr("1809"), 17763
	case platSrv22:
		m.Version, build = ptr("21H2"), 20348
	case platLinux:
		m.OSVersion = ptr(pick(r, []string{"22.04", "20.04", "9.3", "8.9", "12"}))
	case platMacOS:
		m.OSVersion = ptr(pick(r, []string{"14.4.1", "14.5", "13.6.7"}))
		m.OSProcessor = pick(r, []string{"x64", "ARM64", "ARM64"})
	}
	if build != 0 && r.IntN(100) >= 5 { // osBuild is sometimes null upstream
		m.OSBuild = ptr(build)
	}
	if m.OnboardingStatus != onboarded {
		return // discovered, not onboarded: no sensor, no agent
	}
	if isWindows(m.OSPlatform) {
		m.AgentVersion = ptr(fmt.Sprintf("10.%d.%d.%d", pick(r, []int{8560, 8672, 8750, 8760}), max(build, 17763), 1000+r.IntN(4000)))
	} else {
		m.AgentVersion = ptr(fmt.Sprintf("101.%d.%04d", pick(r, []int{24052, 24072, 24082, 24092}), 1+r.IntN(20)))
	}
}

// fillNetwork sets the addresses: a primary adapter, its IPv6 link-local address, sometimes a
// disconnected second adapter.
func (g *generator) fillNetwork(m *Machine) {
	r := g.rng
	subnet := map[bool]int{true: 10, false: 20}[isServer(m.OSPlatform)]
	if m.OSPlatform == platLinux {
		subnet = 30
	}
	m.LastIPAddress = fmt.Sprintf("10.%d.%d.%d", subnet, r.IntN(64), 2+r.IntN(250))
	m.LastExternalIPAddress = pick(r, []string{"203.0.113.10", "203.0.113.24", "198.51.100.7", "198.51.100.61", "192.0.2.45"})
	mac := strings.ToUpper(g.hex(12))
	adapter := "Ethernet"
	if strings.HasPrefix(m.ComputerDNSName, "lap-") || m.OSPlatform == platMacOS {
		adapter = "Wireless80211"
	}
	m.IPAddresses = []IPAddress{
		{IPAddress: m.LastIPAddress, MACAddress: mac, Type: adapter, OperationalStatus: "Up"},
		{
			IPAddress:  fmt.Sprintf("fe80::%x:%x:%x:%x", r.IntN(0x10000), r.IntN(0x10000), r.IntN(0x10000), r.IntN(0x10000)),
			MACAddress: mac, Type: adapter, OperationalStatus: "Up",
		},
	}
	if r.IntN(100) < 15 {
		m.IPAddresses = append(m.IPAddresses, IPAddress{
			IPAddress: fmt.Sprintf("169.254.%d.%d", r.IntN(255), 1+r.IntN(254)), MACAddress: strings.ToUpper(g.hex(12)),
			Type: "Ethernet", OperationalStatus: "Down",
		})
	}
}

// fillPosture sets risk, exposure, value, AV status, groups and tags.
func (g *generator) fillPosture(m *Machine) {
	r := g.rng
	m.RiskScore = nullable(pickW(r, []weighted[string]{{"None", 30}, {"Informational", 10}, {"Low", 25}, {"Medium", 20}, {"High", 10}, {"", 5}}))
	m.ExposureLevel = nullable(pickW(r, []weighted[string]{{"None", 5}, {"Low", 35}, {"Medium", 40}, {"High", 15}, {"", 5}}))
	highValue := 8
	if isServer(m.OSPlatform) {
		highValue = 30
	}
	m.DeviceValue = nullable(pickW(r, []weighted[string]{{"Normal", 85}, {"High", highValue}, {"Low", 5}, {"", 2}}))
	m.DefenderAVStatus = pickW(r, []weighted[string]{{"Updated", 80}, {"NotUpdated", 10}, {"Disabled", 3}, {"NotSupported", 2}, {"Unknown", 5}})
	if m.OnboardingStatus != onboarded {
		m.RiskScore, m.DefenderAVStatus = nil, "Unknown"
	}

	var grp int
	switch {
	case isServer(m.OSPlatform) && (strings.HasPrefix(m.ComputerDNSName, "srv-dc") || strings.HasPrefix(m.ComputerDNSName, "srv-ca")):
		grp = GroupServersTier0
	case isServer(m.OSPlatform):
		grp = pickW(r, []weighted[int]{{GroupServers, 90}, {GroupUnassigned, 10}})
	case m.OSPlatform == platLinux:
		grp = GroupLinuxServers
	case m.OSPlatform == platMacOS:
		grp = GroupMac
	default:
		grp = pickW(r, []weighted[int]{{GroupWorkstations, 70}, {GroupWorkstationsFinance, 20}, {GroupUnassigned, 10}})
	}
	m.RBACGroupID, m.RBACGroupName = grp, nullable(groupNames[grp]) // group 0 is "unassigned" and has no name

	tags := []string{"VIP", "Finance", "HR", "Remote", "BYOD", "Test Lab"}
	if isServer(m.OSPlatform) || m.OSPlatform == platLinux {
		tags = []string{"Prod", "PCI", "Tier0", "Test Lab", "DMZ"}
	}
	for range pickW(r, []weighted[int]{{0, 50}, {1, 30}, {2, 15}, {3, 5}}) {
		t := pick(r, tags)
		if !m.hasTag(t) {
			m.MachineTags = append(m.MachineTags, t)
		}
	}
}

// fillManagement sets Entra join, management and cloud VM metadata.
func (g *generator) fillManagement(m *Machine) {
	r := g.rng
	switch {
	case isServer(m.OSPlatform):
		m.ManagedBy = pickW(r, []weighted[string]{{"ConfigMgr", 40}, {"MicrosoftDefenderForEndpoint", 50}, {"Unknown", 10}})
	case m.OSPlatform == platLinux:
		m.ManagedBy = pickW(r, []weighted[string]{{"MicrosoftDefenderForEndpoint", 80}, {"Unknown", 20}})
	case m.OSPlatform == platMacOS:
		m.ManagedBy = pickW(r, []weighted[string]{{"Intune", 70}, {"MicrosoftDefenderForEndpoint", 30}})
		m.IsAADJoined = r.IntN(100) < 30
	default:
		m.ManagedBy = pickW(r, []weighted[string]{{"Intune", 55}, {"ConfigMgr", 20}, {"MicrosoftDefenderForEndpoint", 20}, {"Unknown", 5}})
		m.IsAADJoined = r.IntN(100) < 70
	}
	m.ManagedByStatus = pickW(r, []weighted[string]{{"Success", 97}, {"Failed", 3}})
	if m.ManagedBy == "Unknown" || m.OnboardingStatus != onboarded {
		m.ManagedBy, m.ManagedByStatus = "Unknown", "Unknown"
	}
	if m.IsAADJoined {
		m.AADDeviceID = ptr(g.guid())
	}
	if (isServer(m.OSPlatform) || m.OSPlatform == platLinux) && r.IntN(100) < 45 {
		sub := pick(r, g.subscriptions)
		short, _, _ := strings.Cut(m.ComputerDNSName, ".")
		m.VMMetadata = &VMMetadata{
			VMID:          g.guid(),
			CloudProvider: "Azure",
			ResourceID: fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/virtualMachines/%s",
				sub, pick(r, []string{"rg-prod-weu", "rg-infra", "rg-aks-nodes"}), short),
			SubscriptionID: sub,
		}
	}
}

// machineID draws a unique 40-hex-digit id, the shape of every upstream example.
func (g *generator) machineID() string {
	for {
		id := g.hex(40)
		if !g.ids[id] {
			g.ids[id] = true
			return id
		}
	}
}

// hex draws n lower-case hex digits.
func (g *generator) hex(n int) string {
	const digits = "0123456789abcdef"
	var b strings.Builder
	b.Grow(n)
	for b.Len() < n {
		v := g.rng.Uint64()
		for k := 0; k < 16 && b.Len() < n; k++ {
			b.WriteByte(digits[v&0xf])
			v >>= 4
		}
	}
	return b.String()
}

// guid draws a version-4-shaped GUID.
func (g *generator) guid() string {
	h := g.hex(32)
	return h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-" + string("89ab"[g.rng.IntN(4)]) + h[17:20] + "-" + h[20:32]
}

// between draws a duration in [lo, hi) from r; lo when the range is empty, without a draw.
func between(r *rand.Rand, lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(r.Int64N(int64(hi-lo)))
}

type weighted[T any] struct {
	v T
	w int
}

func pickW[T any](r *rand.Rand, opts []weighted[T]) T {
	total := 0
	for _, o := range opts {
		total += o.w
	}
	n := r.IntN(total)
	for _, o := range opts {
		if n < o.w {
			return o.v
		}
		n -= o.w
	}
	panic("simulator: unreachable")
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

// nullable maps "" to null.
func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
