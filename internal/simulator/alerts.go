package simulator

import (
	"crypto/sha1"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Alert is one alert of a device as GET /api/machines/{id}/alerts writes it, with the fields of
// the Defender Alert resource (defender-endpoint/api/alerts.md). Nullable fields are pointers;
// mitreTechniques, comments and evidence are lists, empty rather than null. Times have seven
// fractional digits except lastUpdateTime, which live answers trim ("2021-01-26T20:33:59.2Z"):
// a client must read both.
type Alert struct {
	ID                 string         `json:"id"`
	IncidentID         int64          `json:"incidentId"`
	InvestigationID    *int64         `json:"investigationId"`
	AssignedTo         *string        `json:"assignedTo"`
	Severity           string         `json:"severity"`
	Status             string         `json:"status"`
	Classification     *string        `json:"classification"`
	Determination      *string        `json:"determination"`
	InvestigationState string         `json:"investigationState"`
	DetectionSource    string         `json:"detectionSource"`
	DetectorID         string         `json:"detectorId"`
	Category           string         `json:"category"`
	ThreatFamilyName   *string        `json:"threatFamilyName"`
	Title              string         `json:"title"`
	Description        string         `json:"description"`
	AlertCreationTime  string         `json:"alertCreationTime"`
	FirstEventTime     string         `json:"firstEventTime"`
	LastEventTime      string         `json:"lastEventTime"`
	LastUpdateTime     string         `json:"lastUpdateTime"`
	ResolvedTime       *string        `json:"resolvedTime"`
	MachineID          string         `json:"machineId"`
	ComputerDNSName    string         `json:"computerDnsName"`
	RBACGroupName      *string        `json:"rbacGroupName"`
	AADTenantID        string         `json:"aadTenantId"`
	ThreatName         *string        `json:"threatName"`
	MITRETechniques    []string       `json:"mitreTechniques"`
	RelatedUser        *RelatedUser   `json:"relatedUser"`
	LoggedOnUsers      []LoggedOnUser `json:"loggedOnUsers"`
	Comments           []AlertComment `json:"comments"`
	Evidence           []any          `json:"evidence"`
}

// RelatedUser is the account an alert is about. It is one of the device's logon users; the
// domain is written in upper case, as NetBIOS names are in live alerts ("CONTOSO" for the
// logon user's "contoso"), so a client joining the two must compare case-insensitively.
type RelatedUser struct {
	UserName   string `json:"userName"`
	DomainName string `json:"domainName"`
}

// LoggedOnUser is an account logged on to the device when the alert was raised.
type LoggedOnUser struct {
	AccountName string `json:"accountName"`
	DomainName  string `json:"domainName"`
}

// AlertComment is a comment analysts left on an alert.
type AlertComment struct {
	Comment     string `json:"comment"`
	CreatedBy   string `json:"createdBy"`
	CreatedTime string `json:"createdTime"`
}

func (a Alert) clone() Alert {
	c := a
	c.InvestigationID = clonePtr(a.InvestigationID)
	c.AssignedTo = clonePtr(a.AssignedTo)
	c.Classification = clonePtr(a.Classification)
	c.Determination = clonePtr(a.Determination)
	c.ThreatFamilyName = clonePtr(a.ThreatFamilyName)
	c.ResolvedTime = clonePtr(a.ResolvedTime)
	c.RBACGroupName = clonePtr(a.RBACGroupName)
	c.ThreatName = clonePtr(a.ThreatName)
	c.MITRETechniques = slices.Clone(a.MITRETechniques)
	c.RelatedUser = clonePtr(a.RelatedUser)
	c.LoggedOnUsers = slices.Clone(a.LoggedOnUsers)
	c.Comments = slices.Clone(a.Comments)
	c.Evidence = slices.Clone(a.Evidence)
	return c
}

// alertKind is one kind of detection: what Defender names and files it under.
type alertKind struct {
	title, category, source, description string
	techniques                           []string
	severity                             []weighted[string]
	threat, family                       string // antivirus detections only
	platforms                            string // "w" Windows, "l" Linux, "m" macOS
	userless                             bool   // about the device, not an account
}

const (
	srcEDR    = "WindowsDefenderAtp"
	srcAV     = "WindowsDefenderAv"
	srcCustom = "CustomDetection"
	srcAIR    = "AutomatedInvestigation"
)

var (
	sevHigh   = []weighted[string]{{"High", 70}, {"Medium", 30}}
	sevMedium = []weighted[string]{{"Medium", 60}, {"High", 15}, {"Low", 25}}
	sevLow    = []weighted[string]{{"Low", 60}, {"Informational", 30}, {"Medium", 10}}
)

// alertKinds are modelled on detections Defender for Endpoint raises; techniques are MITRE
// ATT&CK ids. Antivirus detections carry a threat name and often no technique.
var alertKinds = []alertKind{
	{title: "Suspicious PowerShell command line", category: "Execution", source: srcEDR, platforms: "w", severity: sevMedium,
		techniques:  []string{"T1059.001", "T1027"},
		description: "A suspicious PowerShell command line was observed. Attackers use encoded or obfuscated PowerShell commands to download and run payloads without writing them to disk."},
	{title: "Credential dumping activity observed", category: "CredentialAccess", source: srcEDR, platforms: "w", severity: sevHigh,
		techniques:  []string{"T1003.001"},
		description: "A process accessed the memory of the Local Security Authority Subsystem Service (lsass.exe) in a way consistent with credential theft."},
	{title: "'Mimikatz' credential theft tool", category: "CredentialAccess", source: srcAV, platforms: "w", severity: sevHigh,
		techniques: []string{"T1003"}, threat: "HackTool:Win32/Mimikatz.D", family: "Mimikatz",
		description: "The Mimikatz credential theft tool was detected. Attackers use it to harvest plaintext passwords, hashes and Kerberos tickets from memory."},
	{title: "'Wacatac' malware was detected", category: "Malware", source: srcAV, platforms: "w", severity: sevMedium,
		threat: "Trojan:Win32/Wacatac.B!ml", family: "Wacatac",
		description: "Malware was detected and blocked by Microsoft Defender Antivirus. Check that no other component of it is still present."},
	{title: "Suspicious scheduled task", category: "Persistence", source: srcEDR, platforms: "w", severity: sevMedium,
		techniques:  []string{"T1053.005"},
		description: "A scheduled task was created or changed to run a suspicious program, a common way for attackers to keep a foothold."},
	{title: "Anomalous account lookups", category: "Discovery", source: srcEDR, platforms: "w", severity: sevLow,
		techniques:  []string{"T1087.002", "T1069.002"},
		description: "A process queried many accounts and groups in Active Directory, as attackers do to map a domain."},
	{title: "Suspicious remote PowerShell execution", category: "LateralMovement", source: srcEDR, platforms: "w", severity: sevMedium,
		techniques:  []string{"T1021.006", "T1059.001"},
		description: "PowerShell commands were run on this device from another device over WinRM in a way that suggests lateral movement."},
	{title: "Ransomware behavior detected in the file system", category: "Ransomware", source: srcEDR, platforms: "w", severity: sevHigh,
		techniques:  []string{"T1486", "T1490"},
		description: "A process changed many files in a way typical of ransomware encrypting data and deleting backups."},
	{title: "Attempt to turn off Microsoft Defender Antivirus protection", category: "DefenseEvasion", source: srcEDR, platforms: "w", severity: sevMedium,
		techniques:  []string{"T1562.001"},
		description: "A process tried to turn off real-time protection or add broad exclusions to Microsoft Defender Antivirus."},
	{title: "Unexpected behavior observed by a process run with no command line arguments", category: "DefenseEvasion", source: srcEDR, platforms: "w", severity: sevMedium,
		techniques:  []string{"T1055"},
		description: "A process that normally runs with arguments ran without any and behaved unexpectedly, which suggests code was injected into it."},
	{title: "'BitTorrent' unwanted software was detected", category: "UnwantedSoftware", source: srcAV, platforms: "wm", severity: sevLow,
		threat: "PUA:Win32/BitTorrent", family: "BitTorrent",
		description: "Potentially unwanted software was detected. It is not malicious but may be against policy."},
	{title: "Rare remote administration tool executed", category: "SuspiciousActivity", source: srcCustom, platforms: "wlm", severity: sevLow,
		techniques:  []string{"T1219"},
		description: "A custom detection rule found a remote administration tool rarely seen in the organization."},
	{title: "Suspicious network connection to a rare external host", category: "CommandAndControl", source: srcEDR, platforms: "wlm", severity: sevLow, userless: true,
		techniques:  []string{"T1071.001"},
		description: "The device connected to an external host that is rarely contacted in the organization, using a pattern seen in command-and-control traffic."},
	{title: "Reverse shell activity detected", category: "Execution", source: srcEDR, platforms: "l", severity: sevHigh,
		techniques:  []string{"T1059.004"},
		description: "A shell process had its input and output redirected to a network connection, which gives a remote attacker interactive control."},
	{title: "Suspicious crontab modification", category: "Persistence", source: srcEDR, platforms: "l", severity: sevMedium,
		techniques:  []string{"T1053.003"},
		description: "A crontab was changed to run a suspicious command periodically."},
	{title: "Suspicious LaunchAgent plist file created", category: "Persistence", source: srcEDR, platforms: "m", severity: sevMedium,
		techniques:  []string{"T1543.001"},
		description: "A LaunchAgent property list was created that starts a suspicious program at sign-in."},
}

// Resolution verdicts: classification with the determinations that go with it.
var verdicts = []struct {
	classification string
	determinations []string
	weight         int
}{
	{"TruePositive", []string{"Malware", "MultiStagedAttack", "CompromisedAccount", "MaliciousUserActivity"}, 45},
	{"InformationalExpectedActivity", []string{"SecurityTesting", "LineOfBusinessApplication", "ConfirmedActivity"}, 30},
	{"FalsePositive", []string{"NotMalicious", "NotEnoughDataToValidate", "Other"}, 25},
}

// verdictWeights picks an index of verdicts.
var verdictWeights = func() []weighted[int] {
	w := make([]weighted[int], len(verdicts))
	for j, v := range verdicts {
		w[j] = weighted[int]{j, v.weight}
	}
	return w
}()

// alertTimeLayout is the layout of every alert time but lastUpdateTime, which trims zeros.
const (
	alertTimeLayout   = "2006-01-02T15:04:05.0000000Z"
	alertUpdateLayout = "2006-01-02T15:04:05.9999999Z"
	// dotnetEpochTicks is 1970-01-01 in .NET ticks (100 ns since 0001-01-01): alert ids embed the
	// creation time in ticks after "da".
	dotnetEpochTicks = 621355968000000000
)

// generateAlerts draws 0 to 5 alerts per onboarded device from r alone, in device order: the
// example device always has three. Incident ids grow in that order; an alert may join the
// incident of the device's previous alert.
func generateAlerts(d *dataset, r *rand.Rand, tenant string) [][]Alert {
	out := make([][]Alert, len(d.machines))
	incident := int64(10000 + r.IntN(90000))
	for i := range d.machines {
		m := &d.machines[i]
		if m.OnboardingStatus != onboarded {
			continue
		}
		n := pickW(r, []weighted[int]{{0, 45}, {1, 24}, {2, 13}, {3, 9}, {4, 5}, {5, 4}})
		if i == exampleIndex {
			n = 3
		}
		kinds := kindsFor(m.OSPlatform)
		for range n {
			if len(out[i]) == 0 || r.IntN(100) >= 30 {
				incident += 1 + int64(r.IntN(40))
			}
			out[i] = append(out[i], newAlert(r, m, d.users[i], pick(r, kinds), incident, tenant, d.epoch))
		}
		slices.SortStableFunc(out[i], func(a, b Alert) int { return strings.Compare(b.AlertCreationTime, a.AlertCreationTime) })
	}
	return out
}

// kindsFor lists the alert kinds a platform raises.
func kindsFor(platform string) []alertKind {
	letter := "w"
	switch platform {
	case platLinux:
		letter = "l"
	case platMacOS:
		letter = "m"
	}
	var out []alertKind
	for _, k := range alertKinds {
		if strings.Contains(k.platforms, letter) {
			out = append(out, k)
		}
	}
	return out
}

// newAlert draws one alert of kind k on device m, between its first and last report.
func newAlert(r *rand.Rand, m *Machine, users []User, k alertKind, incident int64, tenant string, epoch time.Time) Alert {
	span := m.lastSeen.Sub(m.firstSeen)
	first := m.lastSeen.Add(-between(r, 0, min(span, 60*24*time.Hour))).Truncate(100 * time.Nanosecond)
	last := first.Add(between(r, 0, 2*time.Hour)).Truncate(100 * time.Nanosecond)
	created := last.Add(between(r, time.Minute, 20*time.Minute)).Truncate(100 * time.Nanosecond)
	updated := created.Add(between(r, time.Second, 3*24*time.Hour)).Truncate(100 * time.Millisecond)
	if updated.After(epoch) {
		updated = epoch
	}
	a := Alert{
		ID:                 fmt.Sprintf("da%d_%d", created.UnixNano()/100+dotnetEpochTicks, int32(r.Uint32())),
		IncidentID:         incident,
		Severity:           pickW(r, k.severity),
		Status:             pickW(r, []weighted[string]{{"New", 40}, {"InProgress", 20}, {"Resolved", 37}, {"Unknown", 3}}),
		InvestigationState: "UnsupportedAlertType",
		DetectionSource:    k.source,
		DetectorID:         detectorID(k.title),
		Category:           k.category,
		Title:              k.title,
		Description:        k.description,
		AlertCreationTime:  created.UTC().Format(alertTimeLayout),
		FirstEventTime:     first.UTC().Format(alertTimeLayout),
		LastEventTime:      last.UTC().Format(alertTimeLayout),
		LastUpdateTime:     updated.UTC().Format(alertUpdateLayout),
		MachineID:          m.ID,
		ComputerDNSName:    m.ComputerDNSName,
		RBACGroupName:      clonePtr(m.RBACGroupName),
		AADTenantID:        tenant,
		MITRETechniques:    append([]string{}, k.techniques...),
		LoggedOnUsers:      []LoggedOnUser{},
		Comments:           []AlertComment{},
		Evidence:           []any{},
	}
	if k.threat != "" {
		a.ThreatName, a.ThreatFamilyName = ptr(k.threat), ptr(k.family)
	}
	if k.source == srcEDR && isWindows(m.OSPlatform) && r.IntN(100) < 60 {
		a.InvestigationID = ptr(int64(1000 + r.IntN(9000)))
		a.InvestigationState = pick(r, []string{"Queued", "Running", "Benign", "SuccessfullyRemediated", "PartiallyInvestigated"})
		if r.IntN(100) < 25 {
			a.DetectionSource = srcAIR
		}
	}
	switch a.Status {
	case "Resolved":
		v := pickW(r, verdictWeights)
		a.Classification = ptr(verdicts[v].classification)
		a.Determination = ptr(pick(r, verdicts[v].determinations))
		a.ResolvedTime = ptr(updated.UTC().Format(alertTimeLayout))
		a.AssignedTo = ptr(pick(r, []string{"adele.vance@contoso.com", "grady.archie@contoso.com", "Automation"}))
		if r.IntN(100) < 40 {
			a.Comments = append(a.Comments, AlertComment{
				Comment:     pick(r, []string{"Confirmed with the device owner.", "Closed after investigation.", "Known admin tool, expected on this host."}),
				CreatedBy:   *a.AssignedTo,
				CreatedTime: updated.UTC().Format(alertTimeLayout),
			})
		}
	case "InProgress":
		a.AssignedTo = ptr(pick(r, []string{"adele.vance@contoso.com", "megan.bowen@contoso.com", "grady.archie@contoso.com"}))
	}
	// Who was there: up to two interactive users; the related user is one of the device's logon
	// users, preferring people to network-only and service accounts.
	var people []User
	for _, u := range users {
		if (u.IsOnlyNetworkUser == nil || !*u.IsOnlyNetworkUser) && !strings.Contains(u.LogonTypes, "Service") && !strings.HasPrefix(u.LogonTypes, "Batch") {
			people = append(people, u)
		}
	}
	for j := 0; j < len(people) && j < 2; j++ {
		a.LoggedOnUsers = append(a.LoggedOnUsers, LoggedOnUser{AccountName: people[j].AccountName, DomainName: strings.ToUpper(people[j].AccountDomain)})
	}
	if !k.userless && len(users) > 0 {
		u := users[r.IntN(len(users))]
		if len(people) > 0 {
			u = people[r.IntN(len(people))]
		}
		a.RelatedUser = &RelatedUser{UserName: u.AccountName, DomainName: strings.ToUpper(u.AccountDomain)}
	}
	return a
}

// detectorID is a stable GUID per kind of detection, like Defender's detectorId.
func detectorID(title string) string {
	h := sha1.Sum([]byte(title))
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}
