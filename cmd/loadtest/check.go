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
	dnsName string // with details
	users   []wantUser
}

type wantUser struct {
	id, accountName string
	isDomainAdmin   bool
	logonTypes      []string
	lastSeen        time.Time
	lastSeenRaw     string
}

// expectationFor reads what the simulator holds for device id.
func expectationFor(ref *simulator.Simulator, id string, details bool) expected {
	e := expected{id: id, details: details}
	m, ok := ref.Machine(id)
	if !ok {
		return e
	}
	e.known, e.dnsName = true, m.ComputerDNSName
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
		e.users = append(e.users, wantUser{id: u.ID, accountName: u.AccountName, isDomainAdmin: u.IsDomainAdmin,
			logonTypes: types, lastSeen: last, lastSeenRaw: u.LastSeen})
	}
	return e
}

// outcome classifies one answer.
type outcome int

const (
	correct  outcome = iota // exactly the simulator's data (or NOT_FOUND for an unknown id)
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
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
}

// gotMachine is the selection the load test asks for; any other field in the answer is wrong.
type gotMachine struct {
	ComputerDNSName *string    `json:"computerDnsName"`
	LogonUsers      *[]gotUser `json:"logonUsers"`
}

type gotUser struct {
	ID            *string  `json:"id"`
	AccountName   *string  `json:"accountName"`
	IsDomainAdmin *bool    `json:"isDomainAdmin"`
	LogonTypes    []string `json:"logonTypes"`
	LastSeen      *string  `json:"lastSeen"`
}

// check judges one HTTP answer to the query for want.
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
	if len(a.Errors) > 0 {
		return checkErrors(a, machine, want)
	}
	if !want.known {
		return wrongf("unknown id %s: answered %s without an error, want machine null and NOT_FOUND", want.id, clip(machine))
	}
	if len(machine) == 0 || string(machine) == "null" {
		return wrongf("device %s: machine is null without an error", want.id)
	}
	if reason := compareMachine(machine, want); reason != "" {
		return wrongf("device %s: %s", want.id, reason)
	}
	return verdict{outcome: correct}
}

func checkErrors(a gqlAnswer, machine json.RawMessage, want expected) verdict {
	v := verdict{outcome: declined}
	for _, e := range a.Errors {
		code, _ := e.Extensions["code"].(string)
		v.codes = append(v.codes, code)
		switch {
		case code == "":
			v.outcome, v.reason = wrong, fmt.Sprintf("device %s: an error without extensions.code: %q", want.id, e.Message)
		case code == "RATE_LIMITED":
			secs, ok := positiveInt(e.Extensions["retryAfter"])
			if !ok {
				v.outcome, v.noRetryAfter = wrong, true
				v.reason = fmt.Sprintf("device %s: RATE_LIMITED without a positive integer retryAfter (extensions %v)", want.id, e.Extensions)
			}
			v.retryAfter = max(v.retryAfter, secs)
		}
	}
	if v.outcome == wrong {
		return v
	}
	if len(machine) != 0 && string(machine) != "null" {
		v.outcome, v.reason = wrong, fmt.Sprintf("device %s: machine %s alongside errors %v, want null", want.id, clip(machine), v.codes)
		return v
	}
	if !want.known && slices.Equal(v.codes, []string{codeNotFound}) {
		v.outcome = correct
		return v
	}
	for _, c := range v.codes {
		if !slices.Contains(declineCodes, c) {
			what := "device " + want.id
			if !want.known {
				what = "unknown id " + want.id
			}
			v.outcome, v.reason = wrong, fmt.Sprintf("%s: error codes %v, want %s", what, v.codes, wantCodes(want))
			return v
		}
	}
	return v
}

func wantCodes(want expected) string {
	s := "the data, or only " + strings.Join(declineCodes, "/")
	if !want.known {
		s = "exactly one NOT_FOUND, or only " + strings.Join(declineCodes, "/")
	}
	return s
}

// compareMachine returns what differs between the answer and the simulator's data, "" if nothing.
func compareMachine(raw json.RawMessage, want expected) string {
	var m gotMachine
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return fmt.Sprintf("machine %s: %v", clip(raw), err)
	}
	switch {
	case want.details && (m.ComputerDNSName == nil || *m.ComputerDNSName != want.dnsName):
		return fmt.Sprintf("computerDnsName %s, want %q", strOrNull(m.ComputerDNSName), want.dnsName)
	case !want.details && m.ComputerDNSName != nil:
		return "computerDnsName answered but not asked for"
	case m.LogonUsers == nil:
		return "logonUsers missing or null"
	case len(*m.LogonUsers) != len(want.users):
		return fmt.Sprintf("%d logon users, want %d", len(*m.LogonUsers), len(want.users))
	}
	for i, g := range *m.LogonUsers {
		w := want.users[i]
		if g.ID == nil || *g.ID != w.id {
			return fmt.Sprintf("user %d: id %s, want %q (order must match Defender's)", i, strOrNull(g.ID), w.id)
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
	}
	return ""
}

// positiveInt returns v, decoded with UseNumber, if it is a JSON integer above 0.
func positiveInt(v any) (int64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	i, err := n.Int64()
	if err != nil || i <= 0 {
		return 0, false
	}
	return i, true
}

func wrongf(format string, args ...any) verdict {
	return verdict{outcome: wrong, reason: fmt.Sprintf(format, args...)}
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
