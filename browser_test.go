package main

// Browser tests: headless Chromium, driven with chromedp, against the whole service started
// in-process in demo mode. They check what the HTTP tests cannot: that the pages actually run
// under their Content-Security-Policy, load nothing from another origin, log no error, and
// show the demo device's users. The harness is in browsertest_test.go.
//
// They skip when no Chromium is found (see chromiumPath), and fail instead under CI=true.
// UPDATE_SCREENSHOTS=1 also writes the screenshots the README shows to docs/.

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/mdegraph/mdegraph/internal/simulator"
)

// demoDevice returns the demo data set's example device and its logon users, from a
// simulator built with the default seed: the data the service serves in demo mode.
func demoDevice(t *testing.T) (simulator.Machine, []simulator.User) {
	t.Helper()
	sim := simulator.New(simulator.Options{})
	m, ok := sim.Machine(sim.ExampleMachineID())
	if !ok {
		t.Fatalf("the simulator has no example machine %s", sim.ExampleMachineID())
	}
	users, ok := sim.LogonUsers(m.ID)
	if !ok || len(users) == 0 {
		t.Fatalf("the example machine %s has no logon users; the browser tests need some", m.ID)
	}
	return m, users
}

// editorValueJS returns the text of the CodeMirror editor inside the element sel selects
// (GraphiQL 3 uses CodeMirror 5, which keeps its instance on the .CodeMirror element), or
// the element's text when there is no such editor; null when sel selects nothing.
const editorValueJS = `((sel) => {
  const root = document.querySelector(sel);
  if (!root) return null;
  const el = root.matches('.CodeMirror') ? root : root.querySelector('.CodeMirror');
  if (el && el.CodeMirror) return el.CodeMirror.getValue();
  return (el || root).innerText;
})`

// Selectors of GraphiQL 3.9 (web/playground/package.json), as its bundle renders them.
const (
	giQueryEditor     = ".graphiql-query-editor"
	giVariablesEditor = ".graphiql-editor-tool .graphiql-editor:not(.hidden)" // the headers editor is the hidden one
	giExecute         = ".graphiql-execute-button"
	giResult          = ".graphiql-response .result-window"
	giDocExplorer     = ".graphiql-doc-explorer"
	giShowDocs        = `.graphiql-sidebar button[aria-label="Show Documentation Explorer"]`
	giHideDocs        = `.graphiql-sidebar button[aria-label="Hide Documentation Explorer"]`
)

func TestBrowserPlayground(t *testing.T) {
	t.Parallel()
	chromium := chromiumPath(t)
	machine, users := demoDevice(t)
	base, _ := startService(t, nil)
	ctx, rec := openBrowser(t, chromium)

	resp := step(ctx, t, "load the playground", chromedp.NavigateResponse(base+"/"))
	if resp.Status != 200 {
		t.Fatalf("GET /: status %d, want 200", resp.Status)
	}
	step(ctx, t, "wait for GraphiQL to render", chromedp.WaitVisible(chromedp.CSS(giQueryEditor)))

	// The editors hold what the page's config block prefills: the default query, and the
	// demo device as $id.
	var cfg struct {
		Query     string `json:"query"`
		Variables string `json:"variables"`
	}
	cfgJSON := step(ctx, t, "read the config block", chromedp.Evaluate[string](
		`document.getElementById('mdegraph-config').textContent`))
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		t.Fatalf("config block %q: %v", cfgJSON, err)
	}
	query := poll[string](ctx, t, "the query editor to be filled", editorValueJS+`(`+jsString(giQueryEditor)+`)`)
	if strings.TrimSpace(query) != strings.TrimSpace(cfg.Query) || !strings.Contains(query, "logonUsers") {
		t.Errorf("query editor holds\n%s\nwant the configured query\n%s", query, cfg.Query)
	}
	vars := poll[string](ctx, t, "the variables editor to be filled", editorValueJS+`(`+jsString(giVariablesEditor)+`)`)
	var gotVars map[string]any
	if err := json.Unmarshal([]byte(vars), &gotVars); err != nil || gotVars["id"] != machine.ID || len(gotVars) != 1 {
		t.Errorf("variables editor holds %q, want {\"id\": %q}", vars, machine.ID)
	}

	// The schema loaded and the documentation explorer works. The page opens it by default;
	// it is closed first, if open, so that opening it is tested either way. Opened, it lists
	// the Query root type, and following that link shows the machine field.
	if step(ctx, t, "look for the doc explorer", chromedp.Evaluate[bool](`!!document.querySelector(`+jsString(giDocExplorer)+`)`)) {
		step(ctx, t, "close the doc explorer", chromedp.Click(chromedp.CSS(giHideDocs)))
		step(ctx, t, "wait for the doc explorer to close", chromedp.WaitNotPresent(chromedp.CSS(giDocExplorer)))
	}
	step(ctx, t, "open the doc explorer", chromedp.Click(chromedp.CSS(giShowDocs)))
	poll[bool](ctx, t, "the doc explorer to list the Query type", `[...document.querySelectorAll('`+giDocExplorer+` a.graphiql-doc-explorer-type-name')].some((a) => a.textContent === 'Query')`)
	step(ctx, t, "open the Query type in the doc explorer", chromedp.Click(chromedp.Search(`//section[contains(@class, "graphiql-doc-explorer")]//a[text()="Query"]`)))
	poll[bool](ctx, t, "the doc explorer to show Query.machine", `(() => {
  const title = document.querySelector('.graphiql-doc-explorer-title');
  const fields = [...document.querySelectorAll('.graphiql-doc-explorer .graphiql-doc-explorer-field-name')].map((a) => a.textContent);
  return !!title && title.textContent.trim() === 'Query' && fields.includes('machine');
})()`)

	// Run the prefilled query: the result pane shows the demo device's logon users. It shows
	// JSON, so the first user's id is looked for JSON-quoted ("contoso\\jdoe").
	firstUser, _ := json.Marshal(users[0].ID) // a string always marshals
	step(ctx, t, "click the execute button", chromedp.Click(chromedp.CSS(giExecute)))
	result := poll[string](ctx, t, "the response pane to show user "+string(firstUser), `(() => {
  const text = `+editorValueJS+`(`+jsString(giResult)+`);
  return text && (text.includes(`+jsString(string(firstUser))+`) || text.includes('"errors"')) ? text : false;
})()`)
	var answer struct {
		Data struct {
			Machine struct {
				ID         string `json:"id"`
				LogonUsers []struct {
					ID          string `json:"id"`
					AccountName string `json:"accountName"`
				} `json:"logonUsers"`
			} `json:"machine"`
		} `json:"data"`
		Errors []json.RawMessage `json:"errors"`
	}
	if err := json.Unmarshal([]byte(result), &answer); err != nil {
		t.Fatalf("the response pane does not hold JSON: %v\n%s", err, result)
	}
	if len(answer.Errors) > 0 || answer.Data.Machine.ID != machine.ID {
		t.Fatalf("the response pane shows errors or another device, want device %s:\n%s", machine.ID, result)
	}
	var gotIDs, wantIDs []string
	for _, u := range answer.Data.Machine.LogonUsers {
		gotIDs = append(gotIDs, u.ID)
	}
	for _, u := range users {
		wantIDs = append(wantIDs, u.ID)
	}
	if !slices.Equal(gotIDs, wantIDs) {
		t.Errorf("the response pane lists users %v, want the simulator's %v", gotIDs, wantIDs)
	}
	if n := rec.count("POST", base+"/query"); n < 2 { // the schema introspection, then the query
		t.Errorf("%d POST /query requests, want the introspection and the query", n)
	}

	waitFonts(ctx, t)
	saveScreenshot(t, "playground.png", step(ctx, t, "take a screenshot", chromedp.FullScreenshot(100)))
	rec.assertClean(t, base)
}

// TestBrowserPlaygroundDemoPerson signs in as demo persons with the playground's picker and
// runs the prefilled query as each: Defender is asked on-behalf-of the person, so the demo
// device (in device group 0) answers NOT_FOUND to grady, whose groups are the servers', while
// adele, who sees every group, gets its logon users.
func TestBrowserPlaygroundDemoPerson(t *testing.T) {
	t.Parallel()
	chromium := chromiumPath(t)
	machine, users := demoDevice(t)
	base, _ := startService(t, nil)
	ctx, rec := openBrowser(t, chromium)

	step(ctx, t, "load the playground", chromedp.Navigate(base+"/"))
	step(ctx, t, "wait for GraphiQL to render", chromedp.WaitVisible(chromedp.CSS(giQueryEditor)))
	firstUser, _ := json.Marshal(users[0].ID) // a string always marshals
	for _, tt := range []struct {
		person string
		want   string // in the response pane
	}{
		{"grady", `"NOT_FOUND"`},
		{"adele", string(firstUser)},
	} {
		step(ctx, t, "pick "+tt.person, chromedp.SetValue(chromedp.ID("mdegraph-person"), tt.person))
		step(ctx, t, "sign in as "+tt.person, chromedp.Click(chromedp.ID("mdegraph-signin-button")))
		step(ctx, t, "wait for the page signed in as "+tt.person, chromedp.WaitVisible(chromedp.CSS(`#mdegraph-signed-in[data-person="`+tt.person+`"]`)))
		step(ctx, t, "wait for GraphiQL to render", chromedp.WaitVisible(chromedp.CSS(giQueryEditor)))
		headers := step(ctx, t, "read the headers the page prefills", chromedp.Evaluate[string](
			`JSON.parse(document.getElementById('mdegraph-config').textContent).headers`))
		if !strings.Contains(headers, `"Authorization": "Bearer ey`) {
			t.Fatalf("as %s, the headers editor holds %q, want an Authorization: Bearer token", tt.person, headers)
		}
		poll[string](ctx, t, "the variables editor to be filled", editorValueJS+`(`+jsString(giVariablesEditor)+`)`)
		step(ctx, t, "click the execute button", chromedp.Click(chromedp.CSS(giExecute)))
		result := poll[string](ctx, t, "the response pane to answer "+tt.person, `(() => {
  const text = `+editorValueJS+`(`+jsString(giResult)+`);
  return text && (text.includes('"data"') || text.includes('"errors"')) ? text : false;
})()`)
		if !strings.Contains(result, tt.want) {
			t.Errorf("as %s, the response pane shows\n%s\nwant %s about device %s", tt.person, result, tt.want, machine.ID)
		}
		if tt.person == "grady" {
			waitFonts(ctx, t)
			saveScreenshot(t, "playground-signin.png", step(ctx, t, "take a screenshot", chromedp.FullScreenshot(100)))
		}
	}
	rec.assertClean(t, base)
}

func TestBrowserExample(t *testing.T) {
	t.Parallel()
	chromium := chromiumPath(t)
	machine, users := demoDevice(t)
	base, _ := startService(t, nil)
	ctx, rec := openBrowser(t, chromium)

	resp := step(ctx, t, "load the example page", chromedp.NavigateResponse(base+"/example"))
	if resp.Status != 200 {
		t.Fatalf("GET /example: status %d, want 200", resp.Status)
	}
	step(ctx, t, "wait for the form", chromedp.WaitVisible(chromedp.ID("lookup")))
	if got := step(ctx, t, "read #device-id", chromedp.Value(chromedp.ID("device-id"))); got != machine.ID {
		t.Errorf("#device-id is prefilled with %q, want the demo device %s", got, machine.ID)
	}
	if got := bodyState(ctx, t); got != "idle" {
		t.Errorf("body[data-state] = %q before any lookup, want idle", got)
	}
	watchState(ctx, t)

	// The prefilled demo device: one table row per logon user.
	if got := lookUp(ctx, t, ""); got != "ok" {
		t.Fatalf("looking up the demo device ended in state %q, want ok; #message: %q", got, messageText(ctx, t))
	}
	rows := step(ctx, t, "read the users table", chromedp.Evaluate[[]string](
		`[...document.querySelectorAll('#users tbody tr')].map((tr) => tr.innerText)`))
	if len(rows) != len(users) {
		t.Errorf("#users has %d rows, want %d (the simulator's users of %s)", len(rows), len(users), machine.ID)
	}
	if len(rows) > 0 && !strings.Contains(rows[0], users[0].AccountName) {
		t.Errorf("first #users row is %q, want it to show account %q", rows[0], users[0].AccountName)
	}
	if got := step(ctx, t, "read #device-name", chromedp.Text(chromedp.ID("device-name"))); got != machine.ComputerDNSName {
		t.Errorf("#device-name = %q, want %q", got, machine.ComputerDNSName)
	}
	shown := step(ctx, t, "read what is shown", chromedp.Evaluate[map[string]bool](
		`({device: !document.getElementById('device').hidden, message: !document.getElementById('message').hidden, noUsers: !document.getElementById('no-users').hidden})`))
	if want := map[string]bool{"device": true, "message": false, "noUsers": false}; !maps.Equal(shown, want) {
		t.Errorf("after a successful lookup, shown %v, want %v", shown, want)
	}
	waitFonts(ctx, t)
	saveScreenshot(t, "example.png", step(ctx, t, "take a screenshot", chromedp.FullScreenshot(100)))

	// Failures show in #message, with the GraphQL error code and a sentence for people.
	for _, tt := range []struct {
		id, wantKind, wantCode string
	}{
		{strings.Repeat("e", 40), "not-found", "NOT_FOUND"},
		{"bad id!", "bad-input", "BAD_USER_INPUT"},
	} {
		if got := lookUp(ctx, t, tt.id); got != "error" {
			t.Errorf("looking up %q ended in state %q, want error", tt.id, got)
			continue
		}
		msg := step(ctx, t, "read #message", chromedp.Evaluate[exampleMessage](`(() => {
  const m = document.getElementById('message');
  return {kind: m.dataset.kind ?? '', code: m.dataset.code ?? '', text: m.textContent, hidden: m.hidden,
          deviceHidden: document.getElementById('device').hidden, rows: document.querySelectorAll('#users tbody tr').length};
})()`))
		if msg.Code != tt.wantCode || msg.Kind != tt.wantKind {
			t.Errorf("%q: #message has data-code=%q data-kind=%q, want %q and %q", tt.id, msg.Code, msg.Kind, tt.wantCode, tt.wantKind)
		}
		if msg.Hidden || !strings.Contains(msg.Text, tt.id) || strings.Contains(msg.Text, "undefined") ||
			strings.Contains(msg.Text, "[object") || strings.HasPrefix(strings.TrimSpace(msg.Text), "{") {
			t.Errorf("%q: #message (hidden=%v) reads %q, want a visible sentence naming the id", tt.id, msg.Hidden, msg.Text)
		}
		if !msg.DeviceHidden || msg.Rows != 0 {
			t.Errorf("%q: the previous device is still shown (#device hidden=%v, %d rows)", tt.id, msg.DeviceHidden, msg.Rows)
		}
	}

	// Partial and stale answers, as mdegraph gives them when Defender cannot answer everything
	// (quota spent, an outage): the page's fetch is wrapped to rewrite the demo answer so.
	for _, tt := range []struct {
		name, rewrite            string
		wantState, wantBadge     string // #users-stale's text
		wantUnavailable, wantMsg bool   // #users-unavailable and #message shown
	}{
		{name: "logon users served stale", wantState: "ok", wantBadge: "stale (42 s old)",
			rewrite: `body.extensions = {...body.extensions, stale: [{path: ['machine', 'logonUsers'], ageSeconds: 42, reason: 'RATE_LIMITED'}]}`},
		{name: "logon users missing", wantState: "partial", wantUnavailable: true, wantMsg: true,
			rewrite: `body.data.machine.logonUsers = null; body.errors = [{message: 'rate limited', path: ['machine', 'logonUsers'], extensions: {code: 'RATE_LIMITED', retryAfter: 30}}]`},
	} {
		rewriteAnswers(ctx, t, tt.name, tt.rewrite)
		if got := lookUp(ctx, t, machine.ID); got != tt.wantState {
			t.Errorf("%s: state %q, want %q; #message: %q", tt.name, got, tt.wantState, messageText(ctx, t))
			continue
		}
		got := step(ctx, t, "read the badges", chromedp.Evaluate[map[string]any](`(() => {
  const el = (id) => document.getElementById(id);
  return {badge: el('users-stale').hidden ? '' : el('users-stale').textContent, deviceBadge: !el('device-stale').hidden,
          unavailable: !el('users-unavailable').hidden, noUsers: !el('no-users').hidden, message: !el('message').hidden,
          device: !el('device').hidden};
})()`))
		want := map[string]any{"badge": tt.wantBadge, "deviceBadge": false, "unavailable": tt.wantUnavailable,
			"noUsers": false, "message": tt.wantMsg, "device": true}
		if !maps.Equal(got, want) {
			t.Errorf("%s: shown %v, want %v", tt.name, got, want)
		}
	}
	step(ctx, t, "stop rewriting answers", chromedp.Evaluate[chromedp.Void](`window.fetch = window.realFetch`))

	if n := rec.count("POST", base+"/query"); n != 5 {
		t.Errorf("%d POST /query requests, want 5 (one per lookup)", n)
	}
	rec.assertClean(t, base)
}

// TestBrowserExampleGraph: the example page shows the graph around the demo device: each
// logged-on user's other devices (LogonUser.machines) and the device's alerts, as the
// simulator holds them, and says which part is missing or stale when one is.
func TestBrowserExampleGraph(t *testing.T) {
	t.Parallel()
	chromium := chromiumPath(t)
	machine, users := demoDevice(t)
	sim := simulator.New(simulator.Options{})
	alerts, _ := sim.Alerts(machine.ID)
	if len(alerts) == 0 {
		t.Fatalf("the demo device %s has no alerts; the test needs some", machine.ID)
	}
	base, _ := startService(t, nil)
	ctx, rec := openBrowser(t, chromium)
	step(ctx, t, "load the example page", chromedp.Navigate(base+"/example"))
	step(ctx, t, "wait for the form", chromedp.WaitVisible(chromedp.ID("lookup")))
	watchState(ctx, t)
	if got := lookUp(ctx, t, ""); got != "ok" {
		t.Fatalf("looking up the demo device ended in state %q, want ok; #message: %q", got, messageText(ctx, t))
	}

	// Each user's row names the other devices the account logs on to, and counts them.
	type cell struct {
		Count       string `json:"count"`
		Text        string `json:"text"`
		Unavailable bool   `json:"unavailable"`
	}
	readCells := func() []cell {
		return step(ctx, t, "read the users' devices", chromedp.Evaluate[[]cell](`[...document.querySelectorAll('#users tbody [data-testid="user-machines"]')]
  .map((td) => ({count: td.dataset.count ?? '', text: td.textContent, unavailable: td.dataset.unavailable === 'true'}))`))
	}
	cells := readCells()
	if len(cells) != len(users) {
		t.Fatalf("%d user-machines cells, want one per user (%d)", len(cells), len(users))
	}
	for i, u := range users {
		var others []string
		for _, m := range sim.UserMachines(u.AccountName) {
			if m.ID != machine.ID {
				others = append(others, m.ComputerDNSName)
			}
		}
		if cells[i].Count != strconv.Itoa(len(others)) || len(others) > 0 && !strings.HasPrefix(cells[i].Text, others[0]) {
			t.Errorf("%s's other devices: count %s, %q; want %d, starting with %s", u.AccountName, cells[i].Count, cells[i].Text, len(others), others[0])
		}
	}

	// The alerts table lists the device's alerts in Defender's order.
	gotAlerts := step(ctx, t, "read the alerts", chromedp.Evaluate[[]string](`[...document.querySelectorAll('#alerts tbody tr')].map((tr) => tr.dataset.id)`))
	var wantAlerts []string
	for _, a := range alerts[:min(len(alerts), 20)] {
		wantAlerts = append(wantAlerts, a.ID)
	}
	if !slices.Equal(gotAlerts, wantAlerts) {
		t.Errorf("#alerts lists %v, want the simulator's %v", gotAlerts, wantAlerts)
	}
	rows := step(ctx, t, "read the first alert", chromedp.Evaluate[string](`document.querySelector('#alerts tbody tr').innerText`))
	if !strings.Contains(rows, alerts[0].Title) || !strings.Contains(rows, strings.ToUpper(alerts[0].Severity)) {
		t.Errorf("first alert row %q, want its title %q and severity", rows, alerts[0].Title)
	}

	// A part missing or stale, as mdegraph answers when Defender cannot give everything.
	for _, tt := range []struct {
		name, rewrite, wantState, wantMsg string
		check                             string // a JavaScript expression that must be true
	}{
		{name: "alerts missing", wantState: "partial", wantMsg: "The alerts could not be fetched",
			rewrite: `body.data.machine.alerts = null; body.errors = [{message: 'Defender failed', path: ['machine', 'alerts'], extensions: {code: 'UPSTREAM_UNAVAILABLE'}}]`,
			check:   `!document.getElementById('alerts-unavailable').hidden && document.getElementById('no-alerts').hidden && document.querySelectorAll('#alerts tbody tr').length === 0`},
		{name: "one user's devices missing", wantState: "partial", wantMsg: "The other devices of " + users[1].AccountName + " could not be fetched",
			rewrite: `body.data.machine.logonUsers[1].machines = null; body.errors = [{message: 'rate limited', path: ['machine', 'logonUsers', 1, 'machines'], extensions: {code: 'RATE_LIMITED', retryAfter: 12}}]`,
			check:   `document.querySelectorAll('#users tbody [data-testid="user-machines"]')[1].dataset.unavailable === 'true' && document.getElementById('alerts-unavailable').hidden`},
		{name: "alerts and one user's devices stale", wantState: "ok",
			rewrite: `body.extensions = {...body.extensions, stale: [{path: ['machine', 'alerts'], ageSeconds: 9, reason: 'RATE_LIMITED'}, {path: ['machine', 'logonUsers', 0, 'machines'], ageSeconds: 30, reason: 'UPSTREAM_UNAVAILABLE'}]}`,
			check: `document.getElementById('alerts-stale').textContent === 'stale (9 s old)' && !document.getElementById('alerts-stale').hidden &&
  document.querySelectorAll('[data-testid="user-machines-stale"]').length === 1 && document.getElementById('users-stale').hidden`},
	} {
		rewriteAnswers(ctx, t, tt.name, tt.rewrite)
		if got := lookUp(ctx, t, machine.ID); got != tt.wantState {
			t.Errorf("%s: state %q, want %q; #message: %q", tt.name, got, tt.wantState, messageText(ctx, t))
			continue
		}
		if msg := messageText(ctx, t); !strings.Contains(msg, tt.wantMsg) {
			t.Errorf("%s: #message %q, want it to say %q", tt.name, msg, tt.wantMsg)
		}
		if !step(ctx, t, "check "+tt.name, chromedp.Evaluate[bool](tt.check)) {
			t.Errorf("%s: the page does not show it (%s)", tt.name, tt.check)
		}
	}
	step(ctx, t, "stop rewriting answers", chromedp.Evaluate[chromedp.Void](`window.fetch = window.realFetch`))
	rec.assertClean(t, base)
}

// rewriteAnswers makes the page's fetch rewrite every GraphQL answer with the JavaScript
// statements rewrite, which change body (the decoded answer): how mdegraph answers when
// Defender cannot give everything, shown without making it fail.
func rewriteAnswers(ctx context.Context, t *testing.T, name, rewrite string) {
	t.Helper()
	step(ctx, t, "rewrite answers: "+name, chromedp.Evaluate[chromedp.Void](`(() => {
  window.realFetch = window.realFetch || window.fetch;
  window.fetch = async (...args) => {
    const res = await window.realFetch(...args);
    const body = await res.json();
    `+rewrite+`;
    return new Response(JSON.stringify(body), {status: res.status, headers: {'Content-Type': 'application/json'}});
  };
})()`))
}

// exampleMessage is what the example page shows after a failed lookup.
type exampleMessage struct {
	Kind         string `json:"kind"` // #message[data-kind]
	Code         string `json:"code"` // #message[data-code]
	Text         string `json:"text"`
	Hidden       bool   `json:"hidden"`
	DeviceHidden bool   `json:"deviceHidden"`
	Rows         int    `json:"rows"` // #users tbody tr
}

// TestBrowserRecorderCatchesViolations shows that the checks of the tests above can fail in a
// real browser: an inline script (forbidden by the page's CSP) and a console error are
// reported. TestPageRecorderProblems covers the rest of the checks without a browser.
func TestBrowserRecorderCatchesViolations(t *testing.T) {
	t.Parallel()
	chromium := chromiumPath(t)
	base, _ := startService(t, nil)
	ctx, rec := openBrowser(t, chromium)
	step(ctx, t, "load the example page", chromedp.Navigate(base+"/example"))
	step(ctx, t, "break the page's rules", chromedp.Evaluate[chromedp.Void](`(() => {
  const s = document.createElement('script');
  s.textContent = 'window.inlineRan = true';
  document.head.append(s);
  console.error('deliberate console error');
})()`))
	got := rec.waitProblems(ctx, t, base, "CSP violation", "deliberate console error")
	if ran := step(ctx, t, "check the inline script", chromedp.Evaluate[bool](`window.inlineRan === true`)); ran {
		t.Error("the inline script ran: the page has no CSP")
	}
	t.Logf("caught, as it should:\n  %s", strings.Join(got, "\n  "))
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s) // a string always marshals
	return string(b)
}

// waitFonts waits until the page's web fonts have loaded, so that screenshots show them.
func waitFonts(ctx context.Context, t *testing.T) {
	t.Helper()
	step(ctx, t, "wait for the fonts", chromedp.Evaluate[string](`document.fonts.ready.then(() => document.fonts.status)`, chromedp.EvalAwaitPromise))
}

// bodyState returns the example page's body[data-state].
func bodyState(ctx context.Context, t *testing.T) string {
	t.Helper()
	return step(ctx, t, "read body[data-state]", chromedp.Evaluate[string](`document.body.dataset.state`))
}

// messageText returns the text of the example page's #message.
func messageText(ctx context.Context, t *testing.T) string {
	t.Helper()
	return step(ctx, t, "read #message", chromedp.Evaluate[string](`document.getElementById('message').textContent`))
}

// watchState makes the example page keep every value its body[data-state] takes in
// window.mdegraphStates, so that lookUp can wait for the end of the lookup it started
// even when the page goes through "loading" faster than a poll can see it.
func watchState(ctx context.Context, t *testing.T) {
	t.Helper()
	step(ctx, t, "watch body[data-state]", chromedp.Evaluate[chromedp.Void](`(() => {
  window.mdegraphStates = [];
  new MutationObserver(() => window.mdegraphStates.push(document.body.dataset.state))
    .observe(document.body, {attributes: true, attributeFilter: ['data-state']});
})()`))
}

// lookUp types id into the example page's #device-id (keeping the prefilled value when id
// is ""), clicks #lookup and returns the state the page settles in after loading.
func lookUp(ctx context.Context, t *testing.T, id string) string {
	t.Helper()
	if id != "" {
		// Not chromedp.Clear, which sets the value attribute (ignored once the input was
		// edited), nor SetValue(""), which takes the empty result for a failure.
		step(ctx, t, "clear #device-id", chromedp.Evaluate[chromedp.Void](`(() => {
  const input = document.getElementById('device-id');
  input.value = '';
  input.dispatchEvent(new Event('input', {bubbles: true}));
})()`))
		step(ctx, t, "type into #device-id", chromedp.SendKeys(chromedp.ID("device-id"), id))
		if got := step(ctx, t, "read #device-id", chromedp.Value(chromedp.ID("device-id"))); got != id {
			t.Fatalf("#device-id holds %q after typing, want %q", got, id)
		}
	}
	step(ctx, t, "reset the state log", chromedp.Evaluate[chromedp.Void](`window.mdegraphStates.length = 0`))
	step(ctx, t, "click #lookup", chromedp.Click(chromedp.ID("lookup")))
	return poll[string](ctx, t, "the lookup of "+jsString(id)+" to end", `(() => {
  const s = window.mdegraphStates;
  const i = s.lastIndexOf('loading');
  return i >= 0 && s.length > i + 1 ? s[s.length - 1] : false;
})()`)
}
