package main

import (
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mdegraph/mdegraph/internal/simulator"
)

// answerFor writes the GraphQL answer a correct service gives for want, as gqlgen would.
func answerFor(t *testing.T, want expected, edit func(users []map[string]any, machine map[string]any)) []byte {
	t.Helper()
	users := make([]map[string]any, len(want.users))
	for i, u := range want.users {
		users[i] = map[string]any{"id": u.id, "accountName": u.accountName, "isDomainAdmin": u.isDomainAdmin,
			"logonTypes": u.logonTypes, "lastSeen": u.lastSeen.Format(time.RFC3339Nano)}
		if want.shape.userMachines {
			ms := []map[string]any{}
			for _, m := range u.machines {
				ms = append(ms, map[string]any{"id": m.id, "computerDnsName": m.dnsName})
			}
			users[i]["machines"] = ms
		}
	}
	machine := map[string]any{}
	if want.shape.users {
		machine["logonUsers"] = users
	}
	if want.shape.alerts {
		alerts := []map[string]any{}
		for _, a := range want.alerts {
			alerts = append(alerts, map[string]any{"id": a.id, "title": a.title, "severity": a.severity, "mitreTechniques": append([]string{}, a.techniques...)})
		}
		machine["alerts"] = alerts
	}
	if want.details {
		machine["computerDnsName"] = want.dnsName
	}
	if edit != nil {
		edit(users, machine)
	}
	b, err := json.Marshal(map[string]any{"data": map[string]any{"machine": machine}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func errorAnswer(ext string) []byte {
	return []byte(`{"errors":[{"message":"m","path":["machine"],"extensions":` + ext + `}],"data":{"machine":null}}`)
}

func TestCheck(t *testing.T) {
	t.Parallel()
	sim := simulator.New(simulator.Options{Devices: 5})
	known := expectationFor(sim, sim.ExampleMachineID(), false, shapes["logonusers"])
	withDetails := expectationFor(sim, sim.ExampleMachineID(), true, shapes["logonusers"])
	unknown := expectationFor(sim, unknownID(1, 0), false, shapes["logonusers"])
	graph := expectationFor(sim, sim.ExampleMachineID(), false, shapes["graph"])
	alertsOnly := expectationFor(sim, sim.ExampleMachineID(), false, shapes["alerts"])
	unknownAlerts := expectationFor(sim, unknownID(1, 0), false, shapes["alerts"])
	if len(graph.alerts) < 2 || len(graph.users[0].machines) < 2 {
		t.Fatalf("fixture: the example device must have alerts (%d) and a user with several machines (%d)", len(graph.alerts), len(graph.users[0].machines))
	}
	if !known.known || len(known.users) < 2 || unknown.known {
		t.Fatalf("fixture: the example device must be known with several users (%d), the unknown id unknown", len(known.users))
	}

	tests := []struct {
		name         string
		status       int
		body         []byte
		want         expected
		outcome      outcome
		reason       string // a substring of the reason, for wrong answers
		noRetryAfter bool
		retryAfter   int64
		staleReasons []string
		staleAge     int64
	}{
		{name: "correct", body: answerFor(t, known, nil), want: known, outcome: correct},
		{name: "correct with details", body: answerFor(t, withDetails, nil), want: withDetails, outcome: correct},
		{name: "the same instant written another way", want: known, outcome: correct,
			body: answerFor(t, known, func(us []map[string]any, _ map[string]any) {
				us[0]["lastSeen"] = known.users[0].lastSeen.In(time.FixedZone("", 3600)).Format("2006-01-02T15:04:05.000-07:00")
			})},
		{name: "wrong account name", want: known, outcome: wrong, reason: "accountName",
			body: answerFor(t, known, func(us []map[string]any, _ map[string]any) { us[1]["accountName"] = "mallory" })},
		{name: "users out of order", want: known, outcome: wrong, reason: "order",
			body: answerFor(t, known, func(us []map[string]any, _ map[string]any) { us[0], us[1] = us[1], us[0] })},
		{name: "a user missing", want: known, outcome: wrong, reason: "logon users",
			body: answerFor(t, known, func(us []map[string]any, m map[string]any) { m["logonUsers"] = us[1:] })},
		{name: "logon types joined", want: known, outcome: wrong, reason: "logonTypes",
			body: answerFor(t, known, func(us []map[string]any, _ map[string]any) {
				us[0]["logonTypes"] = []string{strings.Join(known.users[0].logonTypes, ", ")}
			})},
		{name: "isDomainAdmin null", want: known, outcome: wrong, reason: "isDomainAdmin",
			body: answerFor(t, known, func(us []map[string]any, _ map[string]any) { us[0]["isDomainAdmin"] = nil })},
		{name: "lastSeen a second off", want: known, outcome: wrong, reason: "lastSeen",
			body: answerFor(t, known, func(us []map[string]any, _ map[string]any) {
				us[0]["lastSeen"] = known.users[0].lastSeen.Add(time.Second).Format(time.RFC3339)
			})},
		{name: "a field not asked for", want: known, outcome: wrong, reason: "unknown field",
			body: answerFor(t, known, func(us []map[string]any, _ map[string]any) { us[0]["accountSid"] = "S-1" })},
		{name: "wrong computer name", want: withDetails, outcome: wrong, reason: "computerDnsName",
			body: answerFor(t, withDetails, func(_ []map[string]any, m map[string]any) { m["computerDnsName"] = "x" })},
		{name: "machine null without error", body: []byte(`{"data":{"machine":null}}`), want: known, outcome: wrong, reason: "null without an error"},

		{name: "rate limited with retryAfter", body: errorAnswer(`{"code":"RATE_LIMITED","retryAfter":30}`), want: known, outcome: declined, retryAfter: 30},
		{name: "rate limited without retryAfter", body: errorAnswer(`{"code":"RATE_LIMITED"}`), want: known,
			outcome: wrong, reason: "retryAfter", noRetryAfter: true},
		{name: "rate limited, retryAfter 0", body: errorAnswer(`{"code":"RATE_LIMITED","retryAfter":0}`), want: known,
			outcome: wrong, noRetryAfter: true},
		{name: "rate limited, retryAfter not whole", body: errorAnswer(`{"code":"RATE_LIMITED","retryAfter":1.5}`), want: known,
			outcome: wrong, noRetryAfter: true},
		{name: "rate limited, retryAfter a string", body: errorAnswer(`{"code":"RATE_LIMITED","retryAfter":"30"}`), want: known,
			outcome: wrong, noRetryAfter: true},
		{name: "upstream unavailable", body: errorAnswer(`{"code":"UPSTREAM_UNAVAILABLE"}`), want: known, outcome: declined},
		{name: "rate limited unknown id", body: errorAnswer(`{"code":"RATE_LIMITED","retryAfter":5}`), want: unknown, outcome: declined, retryAfter: 5},
		{name: "error alongside data", want: known, outcome: wrong, reason: "alongside", retryAfter: 3,
			body: []byte(`{"errors":[{"message":"m","extensions":{"code":"RATE_LIMITED","retryAfter":3}}],"data":{"machine":{"logonUsers":[]}}}`)},
		{name: "known id not found", body: errorAnswer(`{"code":"NOT_FOUND"}`), want: known, outcome: wrong, reason: "NOT_FOUND"},
		{name: "internal error", body: errorAnswer(`{"code":"INTERNAL"}`), want: known, outcome: wrong, reason: "INTERNAL"},
		{name: "error without code", body: errorAnswer(`{}`), want: known, outcome: wrong, reason: "without extensions.code"},

		{name: "unknown id not found", body: errorAnswer(`{"code":"NOT_FOUND"}`), want: unknown, outcome: correct},
		{name: "unknown id, two errors", want: unknown, outcome: wrong, reason: "NOT_FOUND",
			body: []byte(`{"errors":[{"message":"a","extensions":{"code":"NOT_FOUND"}},{"message":"b","extensions":{"code":"NOT_FOUND"}}],"data":{"machine":null}}`)},
		{name: "unknown id answered", body: []byte(`{"data":{"machine":{"logonUsers":[]}}}`), want: unknown, outcome: wrong, reason: "want machine null"},

		// Stale answers: correct data, marked.
		{name: "stale logon users", want: known, outcome: stale, staleAge: 12, staleReasons: []string{"RATE_LIMITED"},
			body: withExtensions(t, answerFor(t, known, nil), `{"stale":[{"path":["machine","logonUsers"],"ageSeconds":12,"reason":"RATE_LIMITED"}]}`)},
		{name: "stale details and users", want: withDetails, outcome: stale, staleAge: 7, staleReasons: []string{"UPSTREAM_UNAVAILABLE", "UPSTREAM_UNAVAILABLE"},
			body: withExtensions(t, answerFor(t, withDetails, nil), `{"stale":[{"path":["machine"],"ageSeconds":7,"reason":"UPSTREAM_UNAVAILABLE"},{"path":["machine","logonUsers"],"ageSeconds":0,"reason":"UPSTREAM_UNAVAILABLE"}]}`)},
		{name: "stale but wrong", want: known, outcome: wrong, reason: "accountName",
			body: withExtensions(t, answerFor(t, known, func(us []map[string]any, _ map[string]any) { us[0]["accountName"] = "old" }),
				`{"stale":[{"path":["machine","logonUsers"],"ageSeconds":12,"reason":"RATE_LIMITED"}]}`)},
		{name: "stale without an age", want: known, outcome: wrong, reason: "extensions.stale",
			body: withExtensions(t, answerFor(t, known, nil), `{"stale":[{"path":["machine","logonUsers"],"reason":"RATE_LIMITED"}]}`)},
		{name: "stale with a negative age", want: known, outcome: wrong, reason: "extensions.stale",
			body: withExtensions(t, answerFor(t, known, nil), `{"stale":[{"path":["machine","logonUsers"],"ageSeconds":-1,"reason":"RATE_LIMITED"}]}`)},
		{name: "stale for a reason that never allows it", want: known, outcome: wrong, reason: "extensions.stale",
			body: withExtensions(t, answerFor(t, known, nil), `{"stale":[{"path":["machine","logonUsers"],"ageSeconds":1,"reason":"NOT_FOUND"}]}`)},
		{name: "stale pointing nowhere", want: known, outcome: wrong, reason: "extensions.stale",
			body: withExtensions(t, answerFor(t, known, nil), `{"stale":[{"path":["quota"],"ageSeconds":1,"reason":"RATE_LIMITED"}]}`)},
		{name: "stale for a null machine", want: known, outcome: wrong, reason: "null", retryAfter: 3,
			body: withExtensions(t, errorAnswer(`{"code":"RATE_LIMITED","retryAfter":3}`), `{"stale":[{"path":["machine"],"ageSeconds":1,"reason":"RATE_LIMITED"}]}`)},

		// Partial answers: what failed is null, with its error at its path.
		{name: "details failed, users there", want: withDetails, outcome: partial, retryAfter: 9,
			body: withErrors(t, answerFor(t, withDetails, func(_ []map[string]any, m map[string]any) { m["computerDnsName"] = nil }),
				`[{"message":"m","path":["machine"],"extensions":{"code":"RATE_LIMITED","retryAfter":9}}]`)},
		{name: "users failed, details there", want: withDetails, outcome: partial,
			body: withErrors(t, answerFor(t, withDetails, func(_ []map[string]any, m map[string]any) { m["logonUsers"] = nil }),
				`[{"message":"m","path":["machine","logonUsers"],"extensions":{"code":"UPSTREAM_UNAVAILABLE"}}]`)},
		{name: "users null without an error", want: withDetails, outcome: wrong, reason: "without an error",
			body: answerFor(t, withDetails, func(_ []map[string]any, m map[string]any) { m["logonUsers"] = nil })},
		{name: "failed part not null", want: withDetails, outcome: wrong, reason: "yet they are there",
			body: withErrors(t, answerFor(t, withDetails, nil), `[{"message":"m","path":["machine","logonUsers"],"extensions":{"code":"UPSTREAM_UNAVAILABLE"}}]`)},
		{name: "known device's users not found", want: withDetails, outcome: wrong, reason: "NOT_FOUND",
			body: withErrors(t, answerFor(t, withDetails, func(_ []map[string]any, m map[string]any) { m["logonUsers"] = nil }),
				`[{"message":"m","path":["machine","logonUsers"],"extensions":{"code":"NOT_FOUND"}}]`)},
		{name: "a part both stale and failed", want: withDetails, outcome: wrong, reason: "both stale and failed",
			body: withExtensions(t, withErrors(t, answerFor(t, withDetails, func(_ []map[string]any, m map[string]any) { m["logonUsers"] = nil }),
				`[{"message":"m","path":["machine","logonUsers"],"extensions":{"code":"UPSTREAM_UNAVAILABLE"}}]`),
				`{"stale":[{"path":["machine","logonUsers"],"ageSeconds":1,"reason":"RATE_LIMITED"}]}`)},

		// The graph: each user's machines and the device's alerts.
		{name: "graph correct", body: answerFor(t, graph, nil), want: graph, outcome: correct},
		{name: "alerts only correct", body: answerFor(t, alertsOnly, nil), want: alertsOnly, outcome: correct},
		{name: "alerts of an unknown device", body: []byte(`{"errors":[{"message":"m","path":["machine","alerts"],"extensions":{"code":"NOT_FOUND"}}],"data":{"machine":null}}`),
			want: unknownAlerts, outcome: correct},
		{name: "a user's machine missing", want: graph, outcome: wrong, reason: "machines, want",
			body: answerFor(t, graph, func(us []map[string]any, _ map[string]any) {
				us[0]["machines"] = us[0]["machines"].([]map[string]any)[1:]
			})},
		{name: "a user's machines out of order", want: graph, outcome: wrong, reason: "order",
			body: answerFor(t, graph, func(us []map[string]any, _ map[string]any) {
				ms := us[0]["machines"].([]map[string]any)
				ms[0], ms[1] = ms[1], ms[0]
			})},
		{name: "alerts out of order", want: graph, outcome: wrong, reason: "order",
			body: answerFor(t, graph, func(_ []map[string]any, m map[string]any) {
				as := m["alerts"].([]map[string]any)
				as[0], as[1] = as[1], as[0]
			})},
		{name: "an alert's severity wrong", want: graph, outcome: wrong, reason: "severity",
			body: answerFor(t, graph, func(_ []map[string]any, m map[string]any) { m["alerts"].([]map[string]any)[0]["severity"] = "OTHER" })},
		{name: "alerts not asked for", want: known, outcome: wrong, reason: "not asked",
			body: answerFor(t, known, func(_ []map[string]any, m map[string]any) { m["alerts"] = []any{} })},
		{name: "a user's machines failed", want: graph, outcome: partial, retryAfter: 4,
			body: withErrors(t, answerFor(t, graph, func(us []map[string]any, _ map[string]any) { us[1]["machines"] = nil }),
				`[{"message":"m","path":["machine","logonUsers",1,"machines"],"extensions":{"code":"RATE_LIMITED","retryAfter":4}}]`)},
		{name: "a user's machines null, the error at another user's", want: graph, outcome: wrong, reason: "yet they are there",
			body: withErrors(t, answerFor(t, graph, func(us []map[string]any, _ map[string]any) { us[1]["machines"] = nil }),
				`[{"message":"m","path":["machine","logonUsers",0,"machines"],"extensions":{"code":"UPSTREAM_UNAVAILABLE"}}]`)},
		{name: "alerts failed, users there", want: graph, outcome: partial,
			body: withErrors(t, answerFor(t, graph, func(_ []map[string]any, m map[string]any) { m["alerts"] = nil }),
				`[{"message":"m","path":["machine","alerts"],"extensions":{"code":"UPSTREAM_UNAVAILABLE"}}]`)},
		{name: "alerts and users failed, machine there", want: graph, outcome: wrong, reason: "every part failed",
			body: withErrors(t, answerFor(t, graph, func(_ []map[string]any, m map[string]any) { m["alerts"], m["logonUsers"] = nil, nil }),
				`[{"message":"m","path":["machine","alerts"],"extensions":{"code":"UPSTREAM_UNAVAILABLE"}},{"message":"m","path":["machine","logonUsers"],"extensions":{"code":"UPSTREAM_UNAVAILABLE"}}]`)},
		{name: "a user's machines stale", want: graph, outcome: stale, staleAge: 3, staleReasons: []string{"RATE_LIMITED"},
			body: withExtensions(t, answerFor(t, graph, nil), `{"stale":[{"path":["machine","logonUsers",2,"machines"],"ageSeconds":3,"reason":"RATE_LIMITED"}]}`)},

		{name: "HTTP 500", status: 500, body: []byte(`oops`), want: known, outcome: wrong, reason: "HTTP 500"},
		{name: "not JSON", body: []byte(`<html>`), want: known, outcome: wrong, reason: "not a JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			status := tt.status
			if status == 0 {
				status = 200
			}
			got := check(status, tt.body, tt.want)
			if got.outcome != tt.outcome {
				t.Fatalf("outcome = %v (%s), want %v", got.outcome, got.reason, tt.outcome)
			}
			if !strings.Contains(got.reason, tt.reason) {
				t.Errorf("reason = %q, want it to mention %q", got.reason, tt.reason)
			}
			if got.noRetryAfter != tt.noRetryAfter {
				t.Errorf("noRetryAfter = %v, want %v", got.noRetryAfter, tt.noRetryAfter)
			}
			if got.retryAfter != tt.retryAfter {
				t.Errorf("retryAfter = %d, want %d", got.retryAfter, tt.retryAfter)
			}
			if tt.outcome != wrong && (!slices.Equal(got.staleReasons, tt.staleReasons) || got.staleAge != tt.staleAge) {
				t.Errorf("stale reasons %v, age %d; want %v, %d", got.staleReasons, got.staleAge, tt.staleReasons, tt.staleAge)
			}
		})
	}
}

func (o outcome) String() string {
	return [...]string{"correct", "stale", "partial", "declined", "wrong"}[o]
}

// withExtensions sets the answer's extensions to ext.
func withExtensions(t *testing.T, answer []byte, ext string) []byte {
	t.Helper()
	return withMember(t, answer, "extensions", ext)
}

// withErrors sets the answer's errors to errs.
func withErrors(t *testing.T, answer []byte, errs string) []byte {
	t.Helper()
	return withMember(t, answer, "errors", errs)
}

func withMember(t *testing.T, answer []byte, name, value string) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(answer, &m); err != nil {
		t.Fatal(err)
	}
	m[name] = json.RawMessage(value)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseSeries(t *testing.T) {
	t.Parallel()
	text := `# HELP mdegraph_upstream_calls_total HTTP calls.
# TYPE mdegraph_upstream_calls_total counter
mdegraph_upstream_calls_total{endpoint="machines.logonusers",status="200"} 95
mdegraph_upstream_calls_total{endpoint="machines.logonusers",status="404"} 5
mdegraph_upstream_calls_total{status="429",endpoint="machines.get"} 2
# TYPE mdegraph_quota_wait_seconds histogram
mdegraph_quota_wait_seconds_bucket{endpoint="machines.logonusers",outcome="exceeded",le="1"} 2
mdegraph_quota_wait_seconds_bucket{endpoint="machines.logonusers",outcome="exceeded",le="+Inf"} 7
mdegraph_quota_wait_seconds_sum{endpoint="machines.logonusers",outcome="exceeded"} 40.5
mdegraph_quota_wait_seconds_count{endpoint="machines.logonusers",outcome="exceeded"} 7 1700000000000
odd{label="a \"quoted\" \\ value"} 1.5e3
# TYPE go_goroutines gauge
go_goroutines 12
`
	s, err := parseSeries(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	byEndpoint := s.sum("mdegraph_upstream_calls_total", "endpoint")
	if byEndpoint["machines.logonusers"] != 100 || byEndpoint["machines.get"] != 2 {
		t.Errorf("calls by endpoint = %v, want logonusers 100, get 2", byEndpoint)
	}
	if got := s.sum("mdegraph_upstream_calls_total", "status")["429"]; got != 2 {
		t.Errorf("429s = %v, want 2", got)
	}
	if got := s.sum("mdegraph_quota_wait_seconds_count", "outcome")["exceeded"]; got != 7 {
		t.Errorf("exceeded = %v, want 7", got)
	}
	if got := s.sum("odd", "label")[`a "quoted" \ value`]; got != 1500 {
		t.Errorf("escaped label: %v", s.sum("odd", "label"))
	}
	if got := s.sum("go_goroutines")[""]; got != 12 {
		t.Errorf("unlabelled sample = %v, want 12", got)
	}
	if b, ok := s.quantileBound("mdegraph_quota_wait_seconds", 0.25); !ok || b != 1 {
		t.Errorf("quantile 0.25's bucket = %v, %v; want 1 (2 of 7 at most 1 s)", b, ok)
	}
	if b, _ := s.quantileBound("mdegraph_quota_wait_seconds", 0.5); !math.IsInf(b, 1) {
		t.Errorf("the median's bucket = %v, want +Inf (beyond the last finite bound)", b)
	}
	if _, ok := s.quantileBound("absent", 0.5); ok {
		t.Error("a quantile of a histogram never scraped")
	}
	if _, err := parseSeries(strings.NewReader("broken{label=\"x\" 3\n")); err == nil {
		t.Error("a malformed page was read without an error")
	}

	before, err := parseSeries(strings.NewReader("mdegraph_upstream_calls_total{endpoint=\"machines.logonusers\",status=\"200\"} 90\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.since(before).sum("mdegraph_upstream_calls_total", "endpoint")["machines.logonusers"]; got != 10 {
		t.Errorf("increase since the first scrape = %v, want 10", got)
	}
}
