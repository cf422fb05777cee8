// Package web serves mdegraph's browser pages: a self-hosted GraphiQL
// playground and a plain HTML example frontend, plus the static assets both
// use.
//
// Everything a page needs is embedded in the binary and served from the same
// origin, because security teams run the service on networks with no
// internet access and with strict Content-Security-Policies: a page that
// loads a script, a stylesheet or a font from a CDN shows up blank there.
//
// Mount the handlers like this (the pages reference their assets under
// StaticPrefix, so Static must be mounted exactly there):
//
//	mux.Handle("GET /{$}", web.Playground(web.PlaygroundOptions{Endpoint: "/query", Variables: web.DeviceVariables(demoID)}))
//	mux.Handle("GET /example", web.Example(web.ExampleOptions{Endpoint: "/query", DeviceID: demoID}))
//	mux.Handle(web.StaticPrefix, web.Static())
package web

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"time"
)

// ContentSecurityPolicy is the policy SecurityHeaders sends with the HTML
// pages. Scripts, styles, fonts and API calls are all same-origin; inline
// styles stay allowed because React and CodeMirror set style attributes.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; connect-src 'self'; font-src 'self' data:; worker-src 'self' blob:; " +
	"frame-ancestors 'none'; base-uri 'none'"

// SecurityHeaders sets ContentSecurityPolicy, X-Content-Type-Options: nosniff
// and Referrer-Policy: no-referrer on every response of next. Playground and
// Example already apply it; wrap any other HTML page the server adds.
func SecurityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

// page is one rendered HTML page. Pages are rendered once, when their handler
// is built, since their content depends only on the options.
type page struct {
	body []byte
	etag string
}

func newPage(body []byte) *page {
	sum := sha256.Sum256(body)
	return &page{body: body, etag: `"` + hex.EncodeToString(sum[:16]) + `"`}
}

func (p *page) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !onMountedPath(r) {
		http.NotFound(w, r)
		return
	}
	if !allowRead(w, r) {
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	// The page names its assets by content hash, so revalidating the small
	// HTML on every load is what picks up a new release.
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", p.etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(p.body))
}

// onMountedPath reports whether r asks for the exact path its handler is
// mounted on. A page mounted on a subtree pattern such as "/" would otherwise
// answer every unknown URL (/favicon.ico, /typo) with a second copy of
// itself; it answers 404 for those instead. Requests that did not come
// through a ServeMux, and exact or wildcard patterns, are taken as they are.
func onMountedPath(r *http.Request) bool {
	pattern := r.Pattern
	if pattern == "" {
		return true
	}
	if i := strings.IndexByte(pattern, ' '); i >= 0 { // "GET /x": drop the method
		pattern = strings.TrimLeft(pattern[i+1:], " \t")
	}
	if i := strings.IndexByte(pattern, '/'); i > 0 { // "host/x": drop the host
		pattern = pattern[i:]
	}
	if !strings.HasSuffix(pattern, "/") || strings.Contains(pattern, "{") {
		return true
	}
	return r.URL.Path == pattern
}

// allowRead answers 405 for anything but GET and HEAD and reports whether the
// request may go on.
func allowRead(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
	return false
}
