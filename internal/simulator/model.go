package simulator

import (
	"slices"
	"strings"
	"time"
)

// Machine is a device exactly as the simulator writes it on the wire: nullable fields are
// pointers (written as null), timestamps are the strings sent, field order follows live answers.
// It carries one field live answers have and the documentation omits (managedByStatus), so a
// client that decodes strictly fails here rather than in production.
type Machine struct {
	ID                     string      `json:"id"`
	MergedIntoMachineID    *string     `json:"mergedIntoMachineId"`
	IsPotentialDuplication bool        `json:"isPotentialDuplication"`
	IsExcluded             bool        `json:"isExcluded"`
	ExclusionReason        *string     `json:"exclusionReason"`
	ComputerDNSName        string      `json:"computerDnsName"`
	FirstSeen              string      `json:"firstSeen"`
	LastSeen               string      `json:"lastSeen"`
	OSPlatform             string      `json:"osPlatform"`
	OSVersion              *string     `json:"osVersion"`
	OSProcessor            string      `json:"osProcessor"`
	Version                *string     `json:"version"`
	LastIPAddress          string      `json:"lastIpAddress"`
	LastExternalIPAddress  string      `json:"lastExternalIpAddress"`
	AgentVersion           *string     `json:"agentVersion"`
	OSBuild                *int64      `json:"osBuild"`
	HealthStatus           string      `json:"healthStatus"`
	DeviceValue            *string     `json:"deviceValue"`
	RBACGroupID            int         `json:"rbacGroupId"`
	RBACGroupName          *string     `json:"rbacGroupName"`
	RiskScore              *string     `json:"riskScore"`
	ExposureLevel          *string     `json:"exposureLevel"`
	IsAADJoined            bool        `json:"isAadJoined"`
	AADDeviceID            *string     `json:"aadDeviceId"`
	MachineTags            []string    `json:"machineTags"`
	DefenderAVStatus       string      `json:"defenderAvStatus"`
	OnboardingStatus       string      `json:"onboardingStatus"`
	OSArchitecture         string      `json:"osArchitecture"`
	ManagedBy              string      `json:"managedBy"`
	ManagedByStatus        string      `json:"managedByStatus"`
	IPAddresses            []IPAddress `json:"ipAddresses"`
	VMMetadata             *VMMetadata `json:"vmMetadata"`

	firstSeen, lastSeen time.Time // FirstSeen and LastSeen as times, for $filter, names and users
}

// IPAddress is one adapter address of a Machine. macAddress is 12 upper-case hex digits without
// separators, as upstream.
type IPAddress struct {
	IPAddress         string `json:"ipAddress"`
	MACAddress        string `json:"macAddress"`
	Type              string `json:"type"`
	OperationalStatus string `json:"operationalStatus"`
}

// VMMetadata describes the cloud virtual machine behind a Machine.
type VMMetadata struct {
	VMID           string `json:"vmId"`
	CloudProvider  string `json:"cloudProvider"`
	ResourceID     string `json:"resourceId"`
	SubscriptionID string `json:"subscriptionId"`
}

// User is one logon user of a device as the simulator writes it on the wire. LogonTypes is one
// string, comma-and-space separated when there are several ("Interactive, RemoteInteractive").
// Timestamps have whole seconds, like the upstream's documented example, unlike Machine's seven
// fractional digits: a client must read both.
type User struct {
	ID                      string  `json:"id"`
	AccountName             string  `json:"accountName"`
	AccountDomain           string  `json:"accountDomain"`
	AccountSID              *string `json:"accountSid"`
	FirstSeen               string  `json:"firstSeen"`
	LastSeen                string  `json:"lastSeen"`
	LogonTypes              string  `json:"logonTypes"`
	LogOnMachinesCount      *int    `json:"logOnMachinesCount"`
	IsDomainAdmin           bool    `json:"isDomainAdmin"`
	IsOnlyNetworkUser       *bool   `json:"isOnlyNetworkUser"`
	MostPrevalentMachineID  *string `json:"mostPrevalentMachineId"`
	LeastPrevalentMachineID *string `json:"leastPrevalentMachineId"`
}

// clone deep-copies m so callers cannot change the simulator's data through pointers or slices.
func (m Machine) clone() Machine {
	c := m
	c.MergedIntoMachineID = clonePtr(m.MergedIntoMachineID)
	c.ExclusionReason = clonePtr(m.ExclusionReason)
	c.OSVersion = clonePtr(m.OSVersion)
	c.Version = clonePtr(m.Version)
	c.AgentVersion = clonePtr(m.AgentVersion)
	c.OSBuild = clonePtr(m.OSBuild)
	c.DeviceValue = clonePtr(m.DeviceValue)
	c.RBACGroupName = clonePtr(m.RBACGroupName)
	c.RiskScore = clonePtr(m.RiskScore)
	c.ExposureLevel = clonePtr(m.ExposureLevel)
	c.AADDeviceID = clonePtr(m.AADDeviceID)
	c.MachineTags = append([]string{}, m.MachineTags...)
	c.IPAddresses = append([]IPAddress{}, m.IPAddresses...)
	c.VMMetadata = clonePtr(m.VMMetadata)
	return c
}

// clone deep-copies u.
func (u User) clone() User {
	c := u
	c.AccountSID = clonePtr(u.AccountSID)
	c.LogOnMachinesCount = clonePtr(u.LogOnMachinesCount)
	c.IsOnlyNetworkUser = clonePtr(u.IsOnlyNetworkUser)
	c.MostPrevalentMachineID = clonePtr(u.MostPrevalentMachineID)
	c.LeastPrevalentMachineID = clonePtr(u.LeastPrevalentMachineID)
	return c
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

func ptr[T any](v T) *T { return &v }

// hasTag reports whether m carries tag, compared case-insensitively like $filter strings.
func (m *Machine) hasTag(tag string) bool {
	return slices.ContainsFunc(m.MachineTags, func(t string) bool { return strings.EqualFold(t, tag) })
}
