package defender

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Machine is a device as GET /api/machines/{id} and GET /api/machines return it.
// Fields the API documents as nullable are pointers; fields it may add later are ignored.
type Machine struct {
	ID                     string      `json:"id"`
	ComputerDNSName        string      `json:"computerDnsName"`
	FirstSeen              *Time       `json:"firstSeen"`
	LastSeen               *Time       `json:"lastSeen"`
	OSPlatform             string      `json:"osPlatform"`
	OSVersion              *string     `json:"osVersion"`
	OSProcessor            *string     `json:"osProcessor"`
	OSArchitecture         *string     `json:"osArchitecture"`
	Version                *string     `json:"version"`
	OSBuild                *FlexInt    `json:"osBuild"`
	LastIPAddress          *string     `json:"lastIpAddress"`
	LastExternalIPAddress  *string     `json:"lastExternalIpAddress"`
	AgentVersion           *string     `json:"agentVersion"`
	HealthStatus           *string     `json:"healthStatus"`
	OnboardingStatus       *string     `json:"onboardingStatus"`
	RiskScore              *string     `json:"riskScore"`
	ExposureLevel          *string     `json:"exposureLevel"`
	DeviceValue            *string     `json:"deviceValue"`
	RBACGroupID            *FlexString `json:"rbacGroupId"`
	RBACGroupName          *string     `json:"rbacGroupName"`
	IsAADJoined            *bool       `json:"isAadJoined"`
	AADDeviceID            *string     `json:"aadDeviceId"`
	MachineTags            []string    `json:"machineTags"`
	IPAddresses            []IPAddress `json:"ipAddresses"`
	DefenderAVStatus       *string     `json:"defenderAvStatus"`
	ManagedBy              *string     `json:"managedBy"`
	IsPotentialDuplication *bool       `json:"isPotentialDuplication"`
	MergedIntoMachineID    *string     `json:"mergedIntoMachineId"`
	IsExcluded             *bool       `json:"isExcluded"`
	ExclusionReason        *string     `json:"exclusionReason"`
	VMMetadata             *VMMetadata `json:"vmMetadata"`
}

// IPAddress is one network adapter address of a Machine.
type IPAddress struct {
	IPAddress         *string `json:"ipAddress"`
	MACAddress        *string `json:"macAddress"`
	Type              *string `json:"type"`
	OperationalStatus *string `json:"operationalStatus"`
}

// VMMetadata describes the cloud virtual machine behind a Machine, when there is one.
type VMMetadata struct {
	VMID           *string `json:"vmId"`
	CloudProvider  *string `json:"cloudProvider"`
	ResourceID     *string `json:"resourceId"`
	SubscriptionID *string `json:"subscriptionId"`
}

// User is one entry of GET /api/machines/{id}/logonusers: an account seen logging on to the device.
type User struct {
	ID                      string   `json:"id"`
	AccountName             string   `json:"accountName"`
	AccountDomain           string   `json:"accountDomain"`
	AccountSID              *string  `json:"accountSid"`
	FirstSeen               *Time    `json:"firstSeen"`
	LastSeen                *Time    `json:"lastSeen"`
	LogonTypes              string   `json:"logonTypes"`
	IsDomainAdmin           *bool    `json:"isDomainAdmin"`
	IsOnlyNetworkUser       *bool    `json:"isOnlyNetworkUser"`
	MostPrevalentMachineID  *string  `json:"mostPrevalentMachineId"`
	LeastPrevalentMachineID *string  `json:"leastPrevalentMachineId"`
	LogOnMachinesCount      *FlexInt `json:"logOnMachinesCount"`
}

// Alert is one entry of GET /api/machines/{id}/alerts: a detection Defender raised on the device
// (Defender's Alert resource, defender-endpoint/api/alerts.md). Fields the API documents as
// nullable are pointers; fields it may add later are ignored. Severity, Status and
// Classification are enumerations Defender may extend.
type Alert struct {
	ID         string   `json:"id"`
	IncidentID *FlexInt `json:"incidentId"`
	// Severity is UnSpecified, Informational, Low, Medium or High.
	Severity *string `json:"severity"`
	// Status is Unknown, New, InProgress or Resolved.
	Status *string `json:"status"`
	// Classification is TruePositive, InformationalExpectedActivity or FalsePositive; null
	// until an analyst classifies the alert.
	Classification *string `json:"classification"`
	// Determination is the analyst's finding (Malware, SecurityTesting, NotMalicious, Other,
	// ...), a list Microsoft revises; null until set.
	Determination     *string  `json:"determination"`
	Category          *string  `json:"category"`
	Title             *string  `json:"title"`
	Description       *string  `json:"description"`
	DetectionSource   *string  `json:"detectionSource"`
	AlertCreationTime *Time    `json:"alertCreationTime"`
	FirstEventTime    *Time    `json:"firstEventTime"`
	LastEventTime     *Time    `json:"lastEventTime"`
	LastUpdateTime    *Time    `json:"lastUpdateTime"`
	ResolvedTime      *Time    `json:"resolvedTime"`
	MachineID         *string  `json:"machineId"`
	ComputerDNSName   *string  `json:"computerDnsName"`
	ThreatName        *string  `json:"threatName"`
	MITRETechniques   []string `json:"mitreTechniques"`
	// RelatedUser is the account the alert is about, when there is one.
	RelatedUser *RelatedUser `json:"relatedUser"`
}

// RelatedUser is the account an Alert is about. Live alerts write the domain in upper case
// (a NetBIOS name) where logon users have it in lower case: compare them case-insensitively.
type RelatedUser struct {
	UserName   *string `json:"userName"`
	DomainName *string `json:"domainName"`
}

// LogonTypeList splits the upstream's logonTypes string ("Interactive, Network") into its parts.
// Separators seen or plausible (comma, semicolon, whitespace around them) are all accepted.
func (u User) LogonTypeList() []string {
	fields := strings.FieldsFunc(u.LogonTypes, func(r rune) bool { return r == ',' || r == ';' || r == '|' })
	out := make([]string, 0, len(fields))
	for _, f := range fields {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// Time is a timestamp as the API writes it: ISO-8601, usually UTC with a Z and up to seven
// fractional digits, occasionally without a zone (read as UTC).
type Time struct{ time.Time }

var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.9999999",
	"2006-01-02T15:04:05",
	"2006-01-02 15:04:05.9999999Z07:00",
	"2006-01-02 15:04:05.9999999",
}

// ParseTime parses a timestamp in any layout the API is known to use.
func ParseTime(s string) (time.Time, error) {
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("defender: unrecognised timestamp %q", s)
}

// UnmarshalJSON accepts null (leaving the zero time), and any layout ParseTime knows.
func (t *Time) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("defender: timestamp: %w", err)
	}
	if s == "" {
		return nil
	}
	v, err := ParseTime(s)
	if err != nil {
		return err
	}
	t.Time = v
	return nil
}

// MarshalJSON writes RFC 3339 in UTC, the way the API does.
func (t Time) MarshalJSON() ([]byte, error) {
	return json.Marshal(t.UTC().Format(time.RFC3339Nano))
}

// FlexInt is an integer the API may send as a JSON number or as a numeric string.
type FlexInt int64

// UnmarshalJSON accepts 42, "42" and null.
func (n *FlexInt) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	s := string(bytes.Trim(b, `"`))
	if s == "" {
		return nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil {
			return fmt.Errorf("defender: integer: %q", s)
		}
		v = int64(f)
	}
	*n = FlexInt(v)
	return nil
}

// FlexString is a string the API may send as a JSON number (rbacGroupId is documented as a
// string and sent as a number).
type FlexString string

// UnmarshalJSON accepts a string, a number or null.
func (s *FlexString) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return fmt.Errorf("defender: string: %w", err)
		}
		*s = FlexString(v)
		return nil
	}
	var num json.Number
	if err := json.Unmarshal(b, &num); err != nil {
		return fmt.Errorf("defender: string or number: %w", err)
	}
	*s = FlexString(num.String())
	return nil
}
