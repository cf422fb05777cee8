package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/mdegraph/mdegraph/internal/simulator"
)

// expected is what the answer for one id must be, taken from the simulator's data set. It is
// read independently of the service's code: simulator strings are parsed here, not with the
// service's decoders, so a decoding bug in the service cannot agree with itself.
type expected struct {
	id      string
	known   bool
	details bool
	shape   shape
	dnsName string // with details
	users   []wantUser
	alerts  []wantAlert
}

type wantUser struct {
	id, accountName string
	isDomainAdmin   bool
	logonTypes      []string
	lastSeen        time.Time
	lastSeenRaw     string
	machines        []wantMachine // with shape.userMachines
}

type wantMachine struct{ id, dnsName string }

type wantAlert struct {
	id, title, severity string // severity as the schema spells it: HIGH
	techniques          []string
}

// expectationFor reads what the simulator holds for device id, for a query of shape sh.
func expectationFor(ref *simulator.Simulator, id string, details bool, sh shape) expected {
	e := expected{id: id, details: details, shape: sh}
	m, ok := ref.Machine(id)
	if !ok {
		return e
	}
	e.known, e.dnsName = true, m.ComputerDNSName
	alerts, _ := ref.Alerts(id)
	for _, a := range alerts {
		// The simulator writes Defender's severities (High, UnSpecified); the schema upper-cases them.
		e.alerts = append(e.alerts, wantAlert{id: a.ID, title: a.Title, severity: strings.ToUpper(a.Severity), techniques: a.MITRETechniques})
	}
	users, _ := ref.LogonUsers(id)
	for _, u := range users {
		// The simulator writes user timestamps in whole seconds with a Z: RFC 3339.
		last, err := time.Parse(time.RFC3339, u.LastSeen)
		if err != nil {
			panic(fmt.Sprintf("simulator user %s of %s: lastSeen %q: %v", u.ID, id, u.LastSeen, err))
		}
		var types []string
		for t := range strings.SplitSeq(u.LogonTypes, ",") {
			if t = strings.TrimSpace(t); t != "" {
				types = append(types, t)
			}
		}
		w := wantUser{id: u.ID, accountName: u.AccountName, isDomainAdmin: u.IsDomainAdmin,
			logonTypes: types, lastSeen: last, lastSeenRaw: u.LastSeen}
		for _, um := range ref.UserMachines(u.AccountName) {
			w.machines = append(w.machines, wantMachine{id: um.ID, dnsName: um.ComputerDNSName})
		}
		e.users = append(e.users, w)
	}
	return e
}

// outcome classifies one answer.
type outcome int

const (
	correct  outcome = iota // exactly the simulator's data, fresh (or NOT_FOUND for an unknown id)
	stale                   // exactly the simulator's data, some of it marked stale in extensions.stale
	partial                 // the device, with each part the service could not fetch null and an error saying why
	declined                // no data, and an error saying why that a loaded service may give
	wrong                   // anything else
)

// verdict is the check of one answer.
type verdict struct {
	outcome outcome
	codes   []string // extensions.code of each error, "" for an error without one
	reason  string   // for wrong: what is wrong
	// noRetryAfter marks a RATE_LIMITED error without a positive integer retryAfter (wrong).
	noRetryAfter bool
	// retryAfter is the largest retryAfter of the RATE_LIMITED errors, in seconds; 0 if none.
	retryAfter int64
	// staleReasons are the reasons of the extensions.stale entries, one per entry.
	staleReasons []string
	// staleAge is the oldest extensions.stale entry's ageSeconds.
	staleAge int64
}

// Codes a correct service may answer a valid query with when it cannot answer it now: the
// quota is spent, or Defender is slow or failing. Any other code on these queries is wrong:
// the ids are valid, the credentials right, and NOT_FOUND is right only for unknown ids.
var declineCodes = []string{"RATE_LIMITED", "UPSTREAM_UNAVAILABLE"}

const codeNotFound = "NOT_FOUND"

// gqlAnswer is a GraphQL response; numbers stay json.Number so retryAfter is checked exactly.
type gqlAnswer struct {
	Data *struct {
		Machine json.RawMessage `json:"machine"`
	} `json:"data"`
	Errors []struct {
		Message    string         `json:"message"`
		Path       []any          `json:"path"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
	Extensions struct {
		Stale []struct {
			Path       []any  `json:"path"`
			AgeSeconds any    `json:"ageSeconds"`
			Reason     string `json:"reason"`
		} `json:"stale"`
	} `json:"extensions"`
}

// The parts of the machine the load test asks for, each from its own upstream call: the
// details (computerDnsName, with -details), the logon users, each user's machines and the
// alerts. An error or an extensions.stale entry names its part by its path: ["machine"] is
// the details, ["machine", "logonUsers"] the logon users, ["machine", "logonUsers", i,
// "machines"] user i's machines (part "machines:i"), ["machine", "alerts"] the alerts.
const (
	partDetails = "details"
	partUsers   = "logonUsers"
	partAlerts  = "alerts"
)

// partOf names the part a path points into ("" for a path that names none).
func partOf(path []any) string {
	if len(path) == 0 || path[0] != "machine" {
		return ""
	}
	switch {
	case len(path) == 1:
		return partDetails
	case len(path) >= 4 && path[1] == "logonUsers" && path[3] == "machines":
		if i, ok := path[2].(json.Number); ok {
			return "machines:" + i.String()
		}
	case path[1] == "logonUsers":
		return partUsers
	case path[1] == "alerts":
		return partAlerts
	}
	return ""
}

// staleReasons are the reasons an extensions.stale entry may give.
var staleReasons = []string{"RATE_LIMITED", "UPSTREAM_UNAVAILABLE"}

// gotMachine is the selection the load test asks for; any other field in the answer is wrong.
type gotMachine struct {
	ComputerDNSName *string     `json:"computerDnsName"`
	LogonUsers      *[]gotUser  `json:"logonUsers"`
	Alerts          *[]gotAlert `json:"alerts"`
}

type gotUser struct {
	ID            *string           `json:"id"`
	AccountName   *string           `json:"accountName"`
	IsDomainAdmin *bool             `json:"isDomainAdmin"`
	LogonTypes    []string          `json:"logonTypes"`
	LastSeen      *string           `json:"lastSeen"`
	Machines      *[]gotUserMachine `json:"machines"`
}

type gotUserMachine struct {
	ID              *string `json:"id"`
	ComputerDNSName *string `json:"computerDnsName"`
}

type gotAlert struct {
	ID              *string  `json:"id"`
	Title           *string  `json:"title"`
	Severity        *string  `json:"severity"`
	MitreTechniques []string `json:"mitreTechniques"`
}

// check judges one HTTP answer to the query for want. A stale answer is correct only when
// extensions.stale marks it and its data is the simulator's; a partial one only when every
// part that is null has an error with a code a loaded service may give, at its path.
func check(status int, body []byte, want expected) verdict {
	if status != http.StatusOK {
		return wrongf("HTTP %d: %s", status, clip(body))
	}
	var a gqlAnswer
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&a); err != nil {
		return wrongf("not a JSON GraphQL answer (%v): %s", err, clip(body))
	}
	var machine json.RawMessage
	if a.Data != nil {
		machine = a.Data.Machine
	}
	v := verdict{}
	failed := map[string]bool{}
	for _, e := range a.Errors {
		code, _ := e.Extensions["code"].(string)
		v.codes = append(v.codes, code)
		failed[partOf(e.Path)] = true
		switch {
		case code == "":
			return v.wrong("device %s: an error without extensions.code: %q", want.id, e.Message)
		case code == "RATE_LIMITED":
			secs, ok := positiveInt(e.Extensions["retryAfter"])
			if !ok {
				v.noRetryAfter = true
				return v.wrong("device %s: RATE_LIMITED without a positive integer retryAfter (extensions %v)", want.id, e.Extensions)
			}
			v.retryAfter = max(v.retryAfter, secs)
		}
	}
	staleParts := map[string]bool{}
	for _, st := range a.Extensions.Stale {
		age, ok := nonNegativeInt(st.AgeSeconds)
		part := partOf(st.Path)
		if !ok || part == "" || !slices.Contains(staleReasons, st.Reason) {
			return v.wrong("device %s: extensions.stale entry %+v: want a path into the machine, a whole ageSeconds and a reason of %v", want.id, st, staleReasons)
		}
		staleParts[part] = true
		v.staleReasons = append(v.staleReasons, st.Reason)
		v.staleAge = max(v.staleAge, age)
	}

	if len(machine) == 0 || string(machine) == "null" {
		return checkNull(v, want, len(a.Extensions.Stale) > 0)
	}
	switch {
	case !want.known:
		return v.wrong("unknown id %s: answered %s, want machine null and NOT_FOUND", want.id, clip(machine))
	case failed[""]:
		return v.wrong("device %s: an error outside the machine's parts, alongside the machine %s: %v", want.id, clip(machine), v.codes)
	}
	for _, c := range v.codes {
		if !slices.Contains(declineCodes, c) {
			return v.wrong("device %s: error codes %v alongside the machine, want only %s", want.id, v.codes, strings.Join(declineCodes, "/"))
		}
	}
	for part := range staleParts {
		if failed[part] {
			return v.wrong("device %s: %s both stale and failed", want.id, part)
		}
	}
	if reason := compareMachine(machine, want, failed); reason != "" {
		return v.wrong("device %s: %s", want.id, reason)
	}
	switch {
	case len(a.Errors) > 0:
		v.outcome = partial
	case len(staleParts) > 0:
		v.outcome = stale
	default:
		v.outcome = correct
	}
	return v
}

// checkNull judges an answer whose machine is null: NOT_FOUND alone for an unknown id, or
// errors with only the codes a loaded service may give.
func checkNull(v verdict, want expected, anyStale bool) verdict {
	switch {
	case len(v.codes) == 0 && !want.known:
		return v.wrong("unknown id %s: machine null without an error, want NOT_FOUND", want.id)
	case len(v.codes) == 0:
		return v.wrong("device %s: machine is null without an error", want.id)
	case anyStale:
		return v.wrong("device %s: extensions.stale for a machine that is null", want.id)
	case !want.known && slices.Equal(v.codes, []string{codeNotFound}):
		v.outcome = correct
		return v
	}
	for _, c := range v.codes {
		if !slices.Contains(declineCodes, c) {
			what := "device " + want.id
			if !want.known {
				what = "unknown id " + want.id
			}
			return v.wrong("%s: error codes %v, want %s", what, v.codes, wantCodes(want))
		}
	}
	v.outcome = declined
	return v
}

func wantCodes(want expected) string {
	s := "the data, or only " + strings.Join(declineCodes, "/")
	if !want.known {
		s = "exactly one NOT_FOUND, or only " + strings.Join(declineCodes, "/")
	}
	return s
}

// compareMachine returns what differs between the answer and the simulator's data, "" if
// nothing. A part an error covers (failed) must be null; every other part asked must be there,
// and every part not asked absent.
func compareMachine(raw json.RawMessage, want expected, failed map[string]bool) string {
	var m gotMachine
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return fmt.Sprintf("machine %s: %v", clip(raw), err)
	}
	sh := want.shape
	asked, lost := 0, 0
	for part, isAsked := range map[string]bool{partDetails: want.details, partUsers: sh.users, partAlerts: sh.alerts} {
		if isAsked {
			asked++
		}
		if isAsked && failed[part] {
			lost++
		}
	}
	switch {
	case asked > 0 && lost == asked:
		return "every part failed, yet the machine is not null"
	case failed[partDetails] && (!want.details || m.ComputerDNSName != nil):
		return fmt.Sprintf("an error for the details, yet computerDnsName is %s (details asked: %v)", strOrNull(m.ComputerDNSName), want.details)
	case want.details && !failed[partDetails] && (m.ComputerDNSName == nil || *m.ComputerDNSName != want.dnsName):
		return fmt.Sprintf("computerDnsName %s, want %q", strOrNull(m.ComputerDNSName), want.dnsName)
	case !want.details && m.ComputerDNSName != nil:
		return "computerDnsName answered but not asked for"
	}
	if reason := compareAlerts(m.Alerts, want, failed[partAlerts]); reason != "" {
		return reason
	}
	switch {
	case !sh.users && m.LogonUsers != nil:
		return "logonUsers answered but not asked for"
	case !sh.users:
		return ""
	case failed[partUsers] && m.LogonUsers != nil:
		return "an error for logonUsers, yet they are there"
	case failed[partUsers]:
		return ""
	case m.LogonUsers == nil:
		return "logonUsers missing or null without an error"
	case len(*m.LogonUsers) != len(want.users):
		return fmt.Sprintf("%d logon users, want %d", len(*m.LogonUsers), len(want.users))
	}
	for i, g := range *m.LogonUsers {
		if reason := compareUser(g, want.users[i], sh, failed[fmt.Sprintf("machines:%d", i)]); reason != "" {
			return reason
		}
	}
	return ""
}

// compareUser returns what differs between logon user g and w.
func compareUser(g gotUser, w wantUser, sh shape, machinesFailed bool) string {
	if g.ID == nil || *g.ID != w.id {
		return fmt.Sprintf("user: id %s, want %q (order must match Defender's)", strOrNull(g.ID), w.id)
	}
	if g.AccountName == nil || *g.AccountName != w.accountName {
		return fmt.Sprintf("user %s: accountName %s, want %q", w.id, strOrNull(g.AccountName), w.accountName)
	}
	if g.IsDomainAdmin == nil || *g.IsDomainAdmin != w.isDomainAdmin {
		got := "null"
		if g.IsDomainAdmin != nil {
			got = fmt.Sprint(*g.IsDomainAdmin)
		}
		return fmt.Sprintf("user %s: isDomainAdmin %s, want %v", w.id, got, w.isDomainAdmin)
	}
	if !slices.Equal(g.LogonTypes, w.logonTypes) || g.LogonTypes == nil {
		return fmt.Sprintf("user %s: logonTypes %q, want %q", w.id, g.LogonTypes, w.logonTypes)
	}
	if g.LastSeen == nil {
		return fmt.Sprintf("user %s: lastSeen null, want %s", w.id, w.lastSeenRaw)
	}
	if t, err := time.Parse(time.RFC3339Nano, *g.LastSeen); err != nil || !t.Equal(w.lastSeen) {
		return fmt.Sprintf("user %s: lastSeen %q, want %s", w.id, *g.LastSeen, w.lastSeenRaw)
	}
	switch {
	case !sh.userMachines && g.Machines != nil:
		return fmt.Sprintf("user %s: machines answered but not asked for", w.id)
	case !sh.userMachines:
		return ""
	case machinesFailed && g.Machines != nil:
		return fmt.Sprintf("user %s: an error for its machines, yet they are there", w.id)
	case machinesFailed:
		return ""
	case g.Machines == nil:
		return fmt.Sprintf("user %s: machines missing or null without an error", w.id)
	case len(*g.Machines) != len(w.machines):
		return fmt.Sprintf("user %s: %d machines, want %d", w.id, len(*g.Machines), len(w.machines))
	}
	for j, gm := range *g.Machines {
		wm := w.machines[j]
		if gm.ID == nil || *gm.ID != wm.id || gm.ComputerDNSName == nil || *gm.ComputerDNSName != wm.dnsName {
			return fmt.Sprintf("user %s: machine %d is %s %s, want %s %s (order must match Defender's)", w.id, j, strOrNull(gm.ID), strOrNull(gm.ComputerDNSName), wm.id, wm.dnsName)
		}
	}
	return ""
}

// compareAlerts returns what differs between the alerts answered and want's.
func compareAlerts(got *[]gotAlert, want expected, failed bool) string {
	switch {
	case !want.shape.alerts && got != nil:
		return "alerts answered but not asked for"
	case !want.shape.alerts:
		return ""
	case failed && got != nil:
		return "an error for the alerts, yet they are there"
	case failed:
		return ""
	case got == nil:
		return "alerts missing or null without an error"
	case len(*got) != len(want.alerts):
		return fmt.Sprintf("%d alerts, want %d", len(*got), len(want.alerts))
	}
	for i, g := range *got {
		w := want.alerts[i]
		switch {
		case g.ID == nil || *g.ID != w.id:
			return fmt.Sprintf("alert %d: id %s, want %q (order must match Defender's)", i, strOrNull(g.ID), w.id)
		case g.Title == nil || *g.Title != w.title:
			return fmt.Sprintf("alert %s: title %s, want %q", w.id, strOrNull(g.Title), w.title)
		case g.Severity == nil || *g.Severity != w.severity:
			return fmt.Sprintf("alert %s: severity %s, want %q", w.id, strOrNull(g.Severity), w.severity)
		case g.MitreTechniques == nil || !slices.Equal(g.MitreTechniques, w.techniques) && len(g.MitreTechniques)+len(w.techniques) > 0:
			return fmt.Sprintf("alert %s: mitreTechniques %q, want %q", w.id, g.MitreTechniques, w.techniques)
		}
	}
	return ""
}

// positiveInt returns v, decoded with UseNumber, if it is a JSON integer above 0.
func positiveInt(v any) (int64, bool) {
	i, ok := nonNegativeInt(v)
	return i, ok && i > 0
}

// nonNegativeInt returns v, decoded with UseNumber, if it is a JSON integer of 0 or more.
func nonNegativeInt(v any) (int64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	i, err := n.Int64()
	if err != nil || i < 0 {
		return 0, false
	}
	return i, true
}

func wrongf(format string, args ...any) verdict {
	return verdict{outcome: wrong, reason: fmt.Sprintf(format, args...)}
}

// wrong is v judged wrong for the reason given.
func (v verdict) wrong(format string, args ...any) verdict {
	v.outcome, v.reason = wrong, fmt.Sprintf(format, args...)
	return v
}

func strOrNull(s *string) string {
	if s == nil {
		return "null"
	}
	return fmt.Sprintf("%q", *s)
}

// clip shortens a body for a report line.
func clip(b []byte) string {
	const n = 300
	s := strings.TrimSpace(string(b))
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
