package main

// The harness of the browser tests in browser_test.go: it finds Chromium, starts the whole
// service in-process, drives a headless browser against it with chromedp, and records every
// request, console message and browser log entry the pages cause, so that each test can
// assert that a page loaded nothing from elsewhere, broke no rule of its CSP and logged no
// error.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/png"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/mdegraph/mdegraph/internal/logtest"
)

const (
	// browserTestTimeout bounds a whole browser test: starting Chromium, loading the page and
	// every interaction. A run takes a few seconds; the margin is for loaded CI machines.
	browserTestTimeout = 60 * time.Second
	// browserStepTimeout bounds one wait in the page, so that a failure names what never
	// happened instead of running into browserTestTimeout.
	browserStepTimeout = 20 * time.Second

	// viewportWidth and viewportHeight are the fixed size of the pages, so that the
	// screenshots in docs/ do not depend on the machine that took them.
	viewportWidth, viewportHeight = 1280, 800
)

// chromiumNames are the executables looked up on PATH when CHROMIUM_PATH is not set.
var chromiumNames = []string{"chromium", "chromium-browser", "google-chrome"}

// chromiumPath returns the browser to drive: CHROMIUM_PATH when set (and then only it, so
// that a wrong setting is reported rather than replaced by another browser), or the first of
// chromiumNames on PATH. Without one the test is skipped, except under CI=true, where a
// missing browser would silently turn the browser tests off, so it fails.
func chromiumPath(t *testing.T) string {
	t.Helper()
	var looked string
	if p := os.Getenv("CHROMIUM_PATH"); p != "" {
		path, err := exec.LookPath(p)
		if err == nil {
			return path
		}
		looked = fmt.Sprintf("CHROMIUM_PATH=%s is not an executable (%v)", p, err)
	} else {
		for _, name := range chromiumNames {
			if path, err := exec.LookPath(name); err == nil {
				return path
			}
		}
		looked = "none of " + strings.Join(chromiumNames, ", ") + " is on PATH and CHROMIUM_PATH is not set"
	}
	msg := "no Chromium for the browser tests: " + looked + ". Install it (Debian/Ubuntu: " +
		"`sudo apt-get install -y chromium`; macOS: `brew install --cask chromium`) or set " +
		"CHROMIUM_PATH to a Chromium or Chrome binary"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (CI=true: the browser tests must run in CI, so a missing browser is an error)")
	}
	t.Skip(msg)
	return ""
}

// openBrowser starts execPath (from chromiumPath) as a headless Chromium with a fresh
// profile, opens one tab with the fixed viewport, and returns the tab's context (bounded by
// browserTestTimeout) and the recorder of what the tab does. The browser is closed when the
// test ends, before the service (started earlier) stops.
func openBrowser(t *testing.T, execPath string) (context.Context, *pageRecorder) {
	t.Helper()

	output := &logtest.Buffer{}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(execPath),
		chromedp.Headless,
		chromedp.NoSandbox, // containers and CI runners seldom allow Chromium's sandbox
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.WindowSize(viewportWidth, viewportHeight),
		chromedp.CombinedOutput(output),
	)
	ctx, cancel := context.WithTimeout(context.Background(), browserTestTimeout)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	rec := newPageRecorder()
	tabCtx, cancelTab := chromedp.NewContext(allocCtx,
		chromedp.WithListener(rec.record),
		// Into the buffer rather than t.Logf: chromedp may still log while the test ends.
		chromedp.WithErrorf(func(format string, args ...any) { fmt.Fprintf(output, "chromedp: "+format+"\n", args...) }),
	)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc() // waits for the browser to exit and its profile to be removed
		cancel()
		if t.Failed() {
			rec.dump(t)
			if out := strings.TrimSpace(output.String()); out != "" {
				t.Logf("browser output:\n%s", out)
			}
		}
	})

	// The first Run starts the browser and binds it to ctx; later steps may use shorter
	// contexts derived from it.
	if err := chromedp.Do(tabCtx, chromedp.EmulateViewport(viewportWidth, viewportHeight)); err != nil {
		t.Fatalf("start %s: %v\n%s", execPath, err, output)
	}
	if v, err := chromedp.CallBrowser(tabCtx, browser.GetVersion, cdp.Empty{}); err == nil {
		t.Logf("browser: %s (%s)", v.Product, execPath)
	}
	return tabCtx, rec
}

// step runs one browser action with its own time limit, and fails the test naming what it
// was doing when the action fails or times out.
func step[T any](ctx context.Context, t *testing.T, what string, action chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, browserStepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, action)
	if err != nil {
		if errors.Is(err, chromedp.ErrPollingTimeout) || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s: nothing after %v: %v", what, browserStepTimeout, err)
		}
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// poll waits until the JavaScript expression is truthy and returns its value.
func poll[T any](ctx context.Context, t *testing.T, what, expression string) T {
	t.Helper()
	return step(ctx, t, "wait for "+what, chromedp.Poll[T](expression, chromedp.WithPollingTimeout(browserStepTimeout)))
}

// requestRecord is one network request of the page and how it ended.
type requestRecord struct {
	method, url string
	status      int64  // 0 until a response arrives
	failure     string // the error of a request that failed, "" otherwise
}

func (r *requestRecord) String() string {
	s := r.method + " " + r.url
	switch {
	case r.failure != "":
		return s + ": failed: " + r.failure
	case r.status == 0:
		return s + ": no response"
	default:
		return fmt.Sprintf("%s: %d", s, r.status)
	}
}

// pageRecorder keeps the requests of a tab and the errors it reports. Its record method is
// a chromedp listener: it runs on chromedp's event goroutine while the test reads.
type pageRecorder struct {
	mu       sync.Mutex
	order    []network.RequestID
	requests map[network.RequestID]*requestRecord
	errors   []string      // console errors, uncaught exceptions, error entries of the browser log
	csp      []string      // the subset of errors that are Content-Security-Policy violations
	changed  chan struct{} // closed, and replaced, whenever an event is recorded
}

func newPageRecorder() *pageRecorder {
	return &pageRecorder{requests: map[network.RequestID]*requestRecord{}, changed: make(chan struct{})}
}

func (p *pageRecorder) record(ev any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	defer func() { close(p.changed); p.changed = make(chan struct{}) }()
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		r, ok := p.requests[ev.RequestID]
		if !ok {
			r = &requestRecord{}
			p.requests[ev.RequestID] = r
			p.order = append(p.order, ev.RequestID)
		}
		// A redirect reuses the request id; the record follows it to its new URL.
		r.method, r.url, r.status = ev.Request.Method, ev.Request.URL, 0
	case *network.EventResponseReceived:
		if r, ok := p.requests[ev.RequestID]; ok {
			r.status = ev.Response.Status
		}
	case *network.EventLoadingFailed:
		if r, ok := p.requests[ev.RequestID]; ok {
			r.failure = ev.ErrorText
			if ev.BlockedReason != "" {
				r.failure += " (blocked: " + string(ev.BlockedReason) + ")"
			}
			if ev.Canceled {
				r.failure += " (canceled)"
			}
		}
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
			p.errors = append(p.errors, "console."+string(ev.Type)+": "+remoteArgs(ev.Args))
		}
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		msg := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			msg += " " + d.Exception.Description
		}
		p.errors = append(p.errors, fmt.Sprintf("uncaught exception at %s:%d: %s", d.URL, d.LineNumber+1, msg))
	case *log.EventEntryAdded:
		e := ev.Entry
		if e.Level != log.EntryLevelError {
			return
		}
		msg := fmt.Sprintf("browser log (%s): %s", e.Source, e.Text)
		if e.URL != "" {
			msg += " [" + e.URL + "]"
		}
		p.errors = append(p.errors, msg)
		if strings.Contains(e.Text, "Content Security Policy") {
			p.csp = append(p.csp, msg)
		}
	}
}

// remoteArgs renders the arguments of a console call roughly as DevTools shows them.
func remoteArgs(args []*runtime.RemoteObject) string {
	parts := make([]string, 0, len(args))
	for _, a := range args {
		switch {
		case a.Description != "":
			parts = append(parts, a.Description)
		case len(a.Value) > 0:
			parts = append(parts, strings.Trim(string(a.Value), `"`))
		default:
			parts = append(parts, string(a.Type))
		}
	}
	return strings.Join(parts, " ")
}

// snapshot returns copies of the requests, in the order they were sent, and of the errors.
func (p *pageRecorder) snapshot() (requests []requestRecord, errs, csp []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, id := range p.order {
		requests = append(requests, *p.requests[id])
	}
	return requests, slices.Clone(p.errors), slices.Clone(p.csp)
}

// count returns how many requests were sent with method to the URL u.
func (p *pageRecorder) count(method, u string) int {
	requests, _, _ := p.snapshot()
	n := 0
	for _, r := range requests {
		if r.method == method && r.url == u {
			n++
		}
	}
	return n
}

// problems lists what the page did wrong: a request that failed or was answered with an
// error status, a request to any origin but base's, a console error or exception, a browser
// log error (which is where CSP violations show).
func (p *pageRecorder) problems(base string) []string {
	origin, err := url.Parse(base)
	if err != nil {
		return []string{fmt.Sprintf("bad base URL %q: %v", base, err)}
	}
	requests, errs, csp := p.snapshot()
	var out []string
	for _, r := range requests {
		u, err := url.Parse(r.url)
		switch {
		case err != nil:
			out = append(out, fmt.Sprintf("unparsable request URL %q: %v", r.url, err))
		case u.Scheme == "data" || u.Scheme == "blob":
			// In-document content (the favicon is data:,), which the CSP allows.
		case u.Host != origin.Host || (u.Scheme != origin.Scheme && u.Scheme != "ws"):
			out = append(out, "request to another origin: "+r.String())
		case r.failure != "" || r.status == 0 || r.status >= 400:
			out = append(out, "failed request: "+r.String())
		}
	}
	for _, e := range csp {
		out = append(out, "CSP violation: "+e)
	}
	for _, e := range errs {
		if !slices.Contains(csp, e) {
			out = append(out, e)
		}
	}
	return out
}

// waitProblems waits until, for each of wants, one of problems(base) contains it, and
// returns the problems. It fails the test when they do not all come within
// browserStepTimeout.
func (p *pageRecorder) waitProblems(ctx context.Context, t *testing.T, base string, wants ...string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, browserStepTimeout)
	defer cancel()
	for {
		p.mu.Lock()
		changed := p.changed
		p.mu.Unlock()
		got := p.problems(base)
		missing := slices.DeleteFunc(slices.Clone(wants), func(w string) bool {
			return slices.ContainsFunc(got, func(g string) bool { return strings.Contains(g, w) })
		})
		if len(missing) == 0 {
			return got
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("the recorder reported no problem containing %q within %v; it has %q", missing, browserStepTimeout, got)
		}
	}
}

// assertClean fails the test for each of problems(base), and checks that the page did load
// something, so that an empty record cannot pass for a clean one.
func (p *pageRecorder) assertClean(t *testing.T, base string) {
	t.Helper()
	for _, problem := range p.problems(base) {
		t.Error(problem)
	}
	if requests, _, _ := p.snapshot(); len(requests) == 0 {
		t.Error("no network request was recorded: the recorder is not listening")
	}
}

// dump logs everything recorded, for a failed test.
func (p *pageRecorder) dump(t *testing.T) {
	t.Helper()
	requests, errs, _ := p.snapshot()
	var b strings.Builder
	for _, r := range requests {
		fmt.Fprintf(&b, "  %s\n", &r)
	}
	for _, e := range errs {
		fmt.Fprintf(&b, "  %s\n", e)
	}
	t.Logf("what the tab did:\n%s", b.String())
}

// saveScreenshot writes a PNG to the test's temporary directory and logs where, and with
// UPDATE_SCREENSHOTS=1 also to docs/<name>, where the README shows it.
func saveScreenshot(t *testing.T, name string, data []byte) {
	t.Helper()
	cfg, err := png.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("screenshot %s is not a PNG: %v", name, err)
	}
	paths := []string{filepath.Join(t.TempDir(), name)}
	if os.Getenv("UPDATE_SCREENSHOTS") == "1" {
		if err := os.MkdirAll("docs", 0o755); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, filepath.Join("docs", name))
	}
	for _, p := range paths {
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatalf("write screenshot: %v", err)
		}
		t.Logf("screenshot %dx%d: %s", cfg.Width, cfg.Height, p)
	}
}

// TestPageRecorderProblems checks the recorder's verdicts on synthetic browser events, so the
// checks of the browser tests are known to catch what they claim to without a browser.
func TestPageRecorderProblems(t *testing.T) {
	t.Parallel()
	const base = "http://127.0.0.1:8080"
	request := func(id, method, u string) *network.EventRequestWillBeSent {
		return &network.EventRequestWillBeSent{RequestID: network.RequestID(id), Request: &network.Request{Method: method, URL: u}}
	}
	response := func(id string, status int64) *network.EventResponseReceived {
		return &network.EventResponseReceived{RequestID: network.RequestID(id), Response: &network.Response{Status: status}}
	}
	logEntry := func(level log.EntryLevel, text string) *log.EventEntryAdded {
		return &log.EventEntryAdded{Entry: &log.Entry{Source: log.EntrySourceSecurity, Level: level, Text: text}}
	}
	for _, tt := range []struct {
		name   string
		events []any
		want   string // a substring of the one problem expected; "" for none
	}{
		{"page and asset", []any{request("1", "GET", base+"/"), response("1", 200), request("2", "GET", base+"/static/a.js?v=1"), response("2", 304)}, ""},
		{"data URL", []any{request("1", "GET", "data:,")}, ""},
		{"websocket to the service", []any{request("1", "GET", "ws://127.0.0.1:8080/query"), response("1", 101)}, ""},
		{"other host", []any{request("1", "GET", "https://cdn.example.com/graphiql.js"), response("1", 200)}, "request to another origin: GET https://cdn.example.com/graphiql.js: 200"},
		{"other port", []any{request("1", "POST", "http://127.0.0.1:9/query"), response("1", 200)}, "request to another origin"},
		{"other scheme", []any{request("1", "GET", "https://127.0.0.1:8080/")}, "request to another origin"},
		{"error status", []any{request("1", "GET", base+"/static/missing.js"), response("1", 404)}, "failed request: GET " + base + "/static/missing.js: 404"},
		{"network error", []any{request("1", "POST", base+"/query"), &network.EventLoadingFailed{RequestID: "1", ErrorText: "net::ERR_CONNECTION_RESET"}}, "failed: net::ERR_CONNECTION_RESET"},
		{"blocked", []any{request("1", "GET", base+"/x.js"), &network.EventLoadingFailed{RequestID: "1", ErrorText: "net::ERR_BLOCKED_BY_CLIENT", BlockedReason: network.BlockedReasonCsp}}, "(blocked: csp)"},
		{"no response", []any{request("1", "GET", base+"/slow")}, "no response"},
		{"console.error", []any{&runtime.EventConsoleAPICalled{Type: runtime.ConsoleAPICalledTypeError, Args: []*runtime.RemoteObject{{Type: runtime.RemoteObjectTypeString, Value: []byte(`"boom"`)}}}}, "console.error: boom"},
		{"console.log", []any{&runtime.EventConsoleAPICalled{Type: runtime.ConsoleAPICalledTypeLog}}, ""},
		{"exception", []any{&runtime.EventExceptionThrown{ExceptionDetails: &runtime.ExceptionDetails{Text: "Uncaught", URL: base + "/a.js", Exception: &runtime.RemoteObject{Description: "TypeError: x is undefined"}}}}, "uncaught exception at " + base + "/a.js:1: Uncaught TypeError: x is undefined"},
		{"CSP violation", []any{logEntry(log.EntryLevelError, "Refused to execute inline script because it violates the following Content Security Policy directive: \"script-src 'self'\".")}, "CSP violation: browser log (security): Refused to execute inline script"},
		{"other log error", []any{logEntry(log.EntryLevelError, "something broke")}, "browser log (security): something broke"},
		{"log warning", []any{logEntry(log.EntryLevelWarning, "deprecated")}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := newPageRecorder()
			for _, ev := range tt.events {
				rec.record(ev)
			}
			got := rec.problems(base)
			switch {
			case tt.want == "" && len(got) != 0:
				t.Errorf("got problems %q, want none", got)
			case tt.want != "" && (len(got) != 1 || !strings.Contains(got[0], tt.want)):
				t.Errorf("got problems %q, want one containing %q", got, tt.want)
			}
		})
	}
}
