package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// shape is what each query asks of its device, besides its logon users' basic fields: each
// user's other devices (LogonUser.machines: one call per distinct account name), the device's
// alerts (Machine.alerts: one call per device).
type shape struct {
	name         string
	users        bool // logonUsers
	userMachines bool // logonUsers { machines }
	alerts       bool // alerts
}

// shapes are the -shape values.
var shapes = map[string]shape{
	"logonusers":     {name: "logonusers", users: true},
	"users-machines": {name: "users-machines", users: true, userMachines: true},
	"alerts":         {name: "alerts", alerts: true},
	"graph":          {name: "graph", users: true, userMachines: true, alerts: true},
}

// shapeNames lists the -shape values, sorted.
func shapeNames() string { return strings.Join(slices.Sorted(maps.Keys(shapes)), ", ") }

// query is the GraphQL query of the shape; details adds a detail field (one machine call).
func (s shape) query(details bool) string {
	var b strings.Builder
	b.WriteString("query($id: ID!) { machine(id: $id) { ")
	if details {
		b.WriteString("computerDnsName ")
	}
	if s.users {
		b.WriteString("logonUsers { id accountName isDomainAdmin logonTypes lastSeen ")
		if s.userMachines {
			b.WriteString("machines { id computerDnsName } ")
		}
		b.WriteString("} ")
	}
	if s.alerts {
		b.WriteString("alerts { id title severity mitreTechniques } ")
	}
	b.WriteString("} }")
	return b.String()
}

// describe says in a few words what the shape asks, for the report.
func (s shape) describe() string {
	var parts []string
	if s.users {
		parts = append(parts, "logon users")
	}
	if s.userMachines {
		parts = append(parts, "each user's machines")
	}
	if s.alerts {
		parts = append(parts, "alerts")
	}
	return fmt.Sprintf("%s (%s)", s.name, strings.Join(parts, ", "))
}
