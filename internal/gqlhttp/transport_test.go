package gqlhttp_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdegraph/mdegraph/internal/gqlhttp"
	"github.com/mdegraph/mdegraph/internal/logtest"
	"github.com/mdegraph/mdegraph/resolvers"
)

// codeRecorder keeps the codes ObserveOperation is called with.
type codeRecorder struct {
	mu    sync.Mutex
	codes [][]string
}

func (c *codeRecorder) observe(_ context.Context, codes []string, _ time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.codes = append(c.codes, codes)
}

func (c *codeRecorder) all() [][]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.codes)
}

// TestRequestErrorsAreCoded: a request that is not a well-formed GraphQL request gets a JSON
// error with extensions.code (never INTERNAL, never gqlgen's code-less "transport not
// supported"), a message saying what is wrong, a debug log line rather than an ERROR, and
// counts in the metrics under its code.
func TestRequestErrorsAreCoded(t *testing.T) {
	t.Parallel()
	const q = `{ quota { endpoint } }`
	zeroHash := `{"persistedQuery":{"version":1,"sha256Hash":"` + strings.Repeat("0", 64) + `"}}`
	getURL := func(params url.Values) string { return "?" + params.Encode() }
	tests := []struct {
		name        string
		method      string
		target      string // appended to the server's URL
		contentType string
		header      http.Header
		body        string
		wantStatus  int
		wantCode    string
		wantMsg     string // the message contains it
		wantAllow   string
		chunked     bool // send the body without a Content-Length
	}{
		{name: "malformed JSON body", method: http.MethodPost, contentType: "application/json", body: `{"query": "` + q + `"`,
			wantStatus: http.StatusBadRequest, wantCode: "BAD_REQUEST", wantMsg: "the body is empty or cut short"},
		{name: "empty body", method: http.MethodPost, contentType: "application/json",
			wantStatus: http.StatusBadRequest, wantCode: "BAD_REQUEST", wantMsg: "the body is empty or cut short"},
		{name: "batch array", method: http.MethodPost, contentType: "application/json", body: `[{"query":"` + q + `"}]`,
			wantStatus: http.StatusBadRequest, wantCode: "BAD_REQUEST", wantMsg: "batched operations are not supported"},
		{name: "variables not an object", method: http.MethodPost, contentType: "application/json", body: `{"query":"` + q + `","variables":[]}`,
			wantStatus: http.StatusBadRequest, wantCode: "BAD_REQUEST", wantMsg: "variables must be a JSON object"},
		{name: "body over the limit, declared", method: http.MethodPost, contentType: "application/json",
			body:       `{"query":"` + q + `","variables":{"x":"` + strings.Repeat("a", gqlhttp.MaxBodyBytes) + `"}}`,
			wantStatus: http.StatusRequestEntityTooLarge, wantCode: "BAD_REQUEST", wantMsg: fmt.Sprintf("larger than %d bytes", gqlhttp.MaxBodyBytes)},
		{name: "body over the limit, chunked", method: http.MethodPost, contentType: "application/json", chunked: true,
			body:       `{"query":"` + q + `","variables":{"x":"` + strings.Repeat("a", gqlhttp.MaxBodyBytes) + `"}}`,
			wantStatus: http.StatusRequestEntityTooLarge, wantCode: "BAD_REQUEST", wantMsg: fmt.Sprintf("larger than %d bytes", gqlhttp.MaxBodyBytes)},
		// APQ mistakes are invalid parameters (400); an unknown hash is a GraphQL request
		// error (200 for application/json), as Apollo clients expect.
		{name: "APQ hash does not match the query", method: http.MethodGet,
			target:     getURL(url.Values{"query": {q}, "extensions": {zeroHash}}),
			wantStatus: http.StatusBadRequest, wantCode: "BAD_REQUEST", wantMsg: "sha256Hash does not match the query"},
		{name: "APQ version 2", method: http.MethodGet,
			target:     getURL(url.Values{"query": {q}, "extensions": {`{"persistedQuery":{"version":2,"sha256Hash":"` + hashOf(q) + `"}}`}}),
			wantStatus: http.StatusBadRequest, wantCode: "BAD_REQUEST", wantMsg: "version must be 1"},
		{name: "APQ data not an object", method: http.MethodPost, contentType: "application/json", body: `{"query":"` + q + `","extensions":{"persistedQuery":"x"}}`,
			wantStatus: http.StatusBadRequest, wantCode: "BAD_REQUEST", wantMsg: "extensions.persistedQuery must be an object"},
		{name: "no query", method: http.MethodPost, contentType: "application/json", body: `{"qeury":"` + q + `"}`,
			wantStatus: http.StatusBadRequest, wantCode: "BAD_REQUEST", wantMsg: "the request has no query"},
		{name: "APQ hash unknown keeps gqlgen's code", method: http.MethodGet,
			target:     getURL(url.Values{"extensions": {zeroHash}}),
			wantStatus: http.StatusOK, wantCode: "PERSISTED_QUERY_NOT_FOUND", wantMsg: "PersistedQueryNotFound"},
		{name: "text/plain", method: http.MethodPost, contentType: "text/plain", body: `{"query":"` + q + `"}`,
			wantStatus: http.StatusBadRequest, wantCode: "BAD_REQUEST", wantMsg: "Content-Type text/plain is not supported: send POST with Content-Type: application/json, or GET"},
		{name: "form-encoded", method: http.MethodPost, contentType: "application/x-www-form-urlencoded", body: "query=" + url.QueryEscape(q),
			wantStatus: http.StatusBadRequest, wantCode: "BAD_REQUEST", wantMsg: "Content-Type application/x-www-form-urlencoded is not supported"},
		{name: "application/graphql", method: http.MethodPost, contentType: "application/graphql", body: q,
			wantStatus: http.StatusBadRequest, wantCode: "BAD_REQUEST", wantMsg: "Content-Type application/graphql is not supported"},
		{name: "no Content-Type", method: http.MethodPost, body: `{"query":"` + q + `"}`,
			wantStatus: http.StatusBadRequest, wantCode: "BAD_REQUEST", wantMsg: "without Content-Type is not supported"},
		{name: "malformed Content-Type", method: http.MethodPost, contentType: "application/json; =", body: `{"query":"` + q + `"}`,
			wantStatus: http.StatusBadRequest, wantCode: "BAD_REQUEST", wantMsg: "malformed Content-Type is not supported"},
		{name: "WebSocket upgrade", method: http.MethodGet, target: getURL(url.Values{"query": {q}}), header: http.Header{"Upgrade": {"websocket"}, "Connection": {"Upgrade"}},
			wantStatus: http.StatusBadRequest, wantCode: "BAD_REQUEST", wantMsg: "WebSocket"},
		{name: "PUT", method: http.MethodPut, contentType: "application/json", body: `{"query":"` + q + `"}`,
			wantStatus: http.StatusMethodNotAllowed, wantCode: "METHOD_NOT_ALLOWED", wantMsg: "method PUT is not allowed", wantAllow: "OPTIONS, GET, POST"},
		{name: "DELETE", method: http.MethodDelete,
			wantStatus: http.StatusMethodNotAllowed, wantCode: "METHOD_NOT_ALLOWED", wantMsg: "method DELETE is not allowed", wantAllow: "OPTIONS, GET, POST"},
		{name: "GET variables not JSON", method: http.MethodGet, target: getURL(url.Values{"query": {q}, "variables": {"{"}}),
			wantStatus: http.StatusBadRequest, wantCode: "BAD_REQUEST", wantMsg: "the variables parameter must be a JSON object"},
		{name: "GET variables an array", method: http.MethodGet, target: getURL(url.Values{"query": {q}, "variables": {"[1]"}}),
			wantStatus: http.StatusBadRequest, wantCode: "BAD_REQUEST", wantMsg: "the variables parameter must be a JSON object"},
		{name: "GET extensions not JSON", method: http.MethodGet, target: getURL(url.Values{"query": {q}, "extensions": {"{"}}),
			wantStatus: http.StatusBadRequest, wantCode: "BAD_REQUEST", wantMsg: "the extensions parameter must be a JSON object"},
		{name: "GET query string malformed", method: http.MethodGet, target: "?query=%zz",
			wantStatus: http.StatusBadRequest, wantCode: "BAD_REQUEST", wantMsg: "query string cannot be parsed"},
		{name: "GET query string over the limit", method: http.MethodGet, target: "?" + paddedQueryString(q, gqlhttp.MaxBodyBytes+1),
			wantStatus: http.StatusRequestURITooLong, wantCode: "BAD_REQUEST", wantMsg: fmt.Sprintf("more than %d (MAX_BODY_BYTES)", gqlhttp.MaxBodyBytes)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var logs logtest.Buffer
			rec := &codeRecorder{}
			srv := newServer(t, gqlhttp.Options{
				Logger:           slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
				ObserveOperation: rec.observe,
			})
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
				if tt.chunked {
					body = io.MultiReader(body) // hides the length from http.NewRequest
				}
			}
			req, err := http.NewRequest(tt.method, srv.URL+tt.target, body)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.header {
				req.Header[k] = v
			}
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			r := do(t, req) // fails unless the body is JSON

			if r.status != tt.wantStatus {
				t.Errorf("status %d, want %d", r.status, tt.wantStatus)
			}
			if got := errorCode(r); got != tt.wantCode {
				t.Errorf("extensions.code %q, want %q (body %v)", got, tt.wantCode, r.body)
			}
			if got := errorMessage(r); !strings.Contains(got, tt.wantMsg) {
				t.Errorf("message %q, want it to contain %q", got, tt.wantMsg)
			}
			if got := r.header.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type %q, want application/json", got)
			}
			if ext, _ := r.body["extensions"].(map[string]any); ext["quota"] == nil {
				t.Errorf("extensions %v, want the quota as in any answer", r.body["extensions"])
			}
			if got := r.header.Get("Allow"); got != tt.wantAllow {
				t.Errorf("Allow %q, want %q", got, tt.wantAllow)
			}
			if got, want := rec.all(), [][]string{{tt.wantCode}}; !slices.EqualFunc(got, want, slices.Equal) {
				t.Errorf("ObserveOperation got codes %v, want %v", got, want)
			}
			log := logs.String()
			if !strings.Contains(log, "level=DEBUG") || !strings.Contains(log, "code="+tt.wantCode) || strings.Contains(log, "level=ERROR") {
				t.Errorf("log should have one DEBUG line with code=%s and no ERROR:\n%s", tt.wantCode, log)
			}
		})
	}
}

// TestMalformedBodyIsNotLogged: gqlgen's message repeats the request body to the client; the
// log keeps only the decoder's error.
func TestMalformedBodyIsNotLogged(t *testing.T) {
	t.Parallel()
	var logs logtest.Buffer
	srv := newServer(t, gqlhttp.Options{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	r := post(t, srv.URL, `{"query": "{ quota { endpoint } }", "variables": {"note": "do-not-log-me"}`, nil)
	if errorCode(r) != "BAD_REQUEST" {
		t.Fatalf("code %q, want BAD_REQUEST", errorCode(r))
	}
	if log := logs.String(); strings.Contains(log, "do-not-log-me") || !strings.Contains(log, "unexpected EOF") {
		t.Errorf("log should have the decoder's error and not the body:\n%s", log)
	}
}

// TestOptionsStillAnswered: OPTIONS is answered with Allow, HEAD with 405 and the same Allow
// (no body), and a CORS preflight by rs/cors before gqlgen.
func TestOptionsStillAnswered(t *testing.T) {
	t.Parallel()
	const origin = "https://soc.example.com"
	tests := []struct {
		name       string
		method     string
		origins    []string
		header     http.Header
		wantStatus int
		wantHeader map[string]string
	}{
		{name: "OPTIONS without CORS", method: http.MethodOptions,
			wantStatus: http.StatusOK, wantHeader: map[string]string{"Allow": "OPTIONS, GET, POST"}},
		{name: "HEAD", method: http.MethodHead, wantStatus: http.StatusMethodNotAllowed, wantHeader: map[string]string{"Allow": "OPTIONS, GET, POST"}},
		{name: "CORS preflight", method: http.MethodOptions, origins: []string{origin},
			header:     http.Header{"Origin": {origin}, "Access-Control-Request-Method": {"POST"}, "Access-Control-Request-Headers": {"content-type"}},
			wantStatus: http.StatusNoContent, wantHeader: map[string]string{"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Methods": "POST"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newCORSServer(t, tt.origins, gqlhttp.Options{})
			req, _ := http.NewRequest(tt.method, srv.URL, nil)
			for k, v := range tt.header {
				req.Header[k] = v
			}
			r := do(t, req)
			if r.status != tt.wantStatus {
				t.Errorf("status %d, want %d", r.status, tt.wantStatus)
			}
			if r.body != nil {
				t.Errorf("body %v, want none", r.body)
			}
			for k, want := range tt.wantHeader {
				if got := r.header.Get(k); got != want {
					t.Errorf("%s %q, want %q", k, got, want)
				}
			}
		})
	}
}

// paddedQueryString is query=q, padded with encoded spaces to exactly n bytes.
func paddedQueryString(q string, n int) string {
	s := "query=" + url.QueryEscape(q)
	return s + strings.Repeat("+", n-len(s))
}

// TestLongURLs: a GET's query string is bounded by MAX_BODY_BYTES as a POST body is. Served
// as server.go serves it (MaxHeaderBytes from gqlhttp.MaxHeaderBytes), a URL up to the bound
// runs, one over it, even twice over, gets the endpoint's coded 414, and a header block past
// the hard cap is still refused by net/http itself (431).
func TestLongURLs(t *testing.T) {
	t.Parallel()
	const maxBody = gqlhttp.MaxBodyBytes
	h := gqlhttp.New(gqlhttp.Options{Resolver: &resolvers.Resolver{Quota: fakeQuota{}}, MaxBodyBytes: maxBody})
	srv := httptest.NewUnstartedServer(h)
	srv.Config.MaxHeaderBytes = gqlhttp.MaxHeaderBytes(maxBody)
	srv.Start()
	t.Cleanup(srv.Close)
	preflight := http.Header{"Apollo-Require-Preflight": {"true"}}

	for _, tt := range []struct {
		name       string
		n          int // bytes of the query string
		wantStatus int
		wantCode   string
	}{
		{"at the bound", maxBody, http.StatusOK, ""},
		{"one byte over", maxBody + 1, http.StatusRequestURITooLong, "BAD_REQUEST"},
		{"twice the bound", 2 * maxBody, http.StatusRequestURITooLong, "BAD_REQUEST"},
	} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"?"+paddedQueryString(`{ __typename }`, tt.n), nil)
		req.Header = preflight.Clone()
		r := do(t, req) // fails unless the answer is JSON
		if r.status != tt.wantStatus || errorCode(r) != tt.wantCode {
			t.Errorf("%s (%d bytes): status %d, code %q; want %d, %q", tt.name, tt.n, r.status, errorCode(r), tt.wantStatus, tt.wantCode)
		}
		if tt.wantCode == "" && r.body["data"] == nil {
			t.Errorf("%s: body %v, want data", tt.name, r.body)
		}
	}

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"?"+paddedQueryString(`{ __typename }`, 100), nil)
	req.Header = preflight.Clone()
	req.Header.Set("X-Padding", strings.Repeat("a", gqlhttp.MaxHeaderBytes(maxBody)+8<<10))
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("headers over the cap: status %d, want 431 from net/http", resp.StatusCode)
	}
}

func errorMessage(r result) string {
	errs, _ := r.body["errors"].([]any)
	if len(errs) == 0 {
		return ""
	}
	msg, _ := errs[0].(map[string]any)["message"].(string)
	return msg
}
