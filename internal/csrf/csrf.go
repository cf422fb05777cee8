// Package csrf refuses GraphQL operations that a web page on another site could have made an
// analyst's browser send: cross-site request forgery. Reading the answer is not what such a page
// wants; a GraphQL operation spends Defender's quota (100 calls a minute per tenant) and acts
// with whatever the browser attaches by itself, so it must not run at all.
//
// Two rules, checked before anything runs (wrap the /query handler with Protection.Handler),
// for the two methods that can run an operation, GET and POST; any other method (HEAD, PUT,
// OPTIONS, ...) runs nothing and passes, to be answered by the endpoint (405, or CORS for a
// preflight):
//
//  1. Cross-origin: a request that a browser marks as coming from another site
//     (Sec-Fetch-Site: cross-site or same-site) is refused unless its Origin is one of
//     CORS_ORIGINS. Browsers without Sec-Fetch-Site are judged by Origin against Host. This is
//     net/http's CrossOriginProtection, applied to GET too, since a GraphQL GET is not a safe
//     method here. With CORS_ORIGINS=* every origin is trusted and only rule 2 holds.
//  2. Simple requests: a GET or POST that a browser sends cross-site without a CORS
//     preflight (no Content-Type, or one of the CORS-safelisted application/x-www-form-urlencoded,
//     multipart/form-data, text/plain) is refused unless it carries a header a page can only
//     add after a preflight: one of PreflightHeaders, non-empty. Sec-Fetch-Site: same-origin
//     (set by the browser; no page can forge it) also lets it through, so the service's own
//     pages may GET persisted queries.
//
// The model is Apollo Server's csrfPrevention (https://www.apollographql.com/docs/apollo-server/security/cors#preventing-cross-site-request-forgery-csrf)
// and the Fetch standard's CORS-safelisted request headers
// (https://fetch.spec.whatwg.org/#cors-safelisted-request-header).
//
// What passes, and why:
//   - POST with Content-Type: application/json (the playground, the example page, Apollo Client,
//     curl --json): a browser must preflight it cross-origin, and CORS answers the preflight.
//   - Any request with Apollo-Require-Preflight, X-Apollo-Operation-Name, X-Requested-With or
//     X-Api-Key: not CORS-safelisted, so preflighted too. A plain GET from curl or a script
//     needs one: curl -H 'Apollo-Require-Preflight: true' -G --data-urlencode 'query={...}' .../query
//   - OPTIONS: the preflight itself, left to CORS.
//   - HEAD and every other method: the endpoint runs no operation for them (it answers 405
//     METHOD_NOT_ALLOWED with Allow), so there is nothing to forge.
//
// Authorization and Cookie do not count as proof of a preflight: a browser attaches cookies and
// cached HTTP Basic (or Negotiate) credentials to cross-site requests by itself, for instance
// when a proxy in front of the service asks for them.
package csrf

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/mdegraph/mdegraph/internal/principal"
	"github.com/mdegraph/mdegraph/internal/quietlog"
)

// Code is the GraphQL extensions.code of a refused request (HTTP 403).
const Code = "CSRF_REFUSED"

// PreflightHeaders are the request headers whose presence (with a non-empty value) shows that
// a browser preflighted the request, or that no browser sent it. A cross-origin frontend that
// sends one needs it in the CORS Access-Control-Allow-Headers (the wiring adds these).
var PreflightHeaders = []string{"Apollo-Require-Preflight", "X-Apollo-Operation-Name", "X-Requested-With", "X-Api-Key"}

// Reason says which rule refused a request.
type Reason string

// The reasons.
const (
	// ReasonCrossOrigin: from a page of another site whose origin is not trusted.
	ReasonCrossOrigin Reason = "cross_origin"
	// ReasonSimpleRequest: a request any page could make a browser send without a preflight.
	ReasonSimpleRequest Reason = "simple_request"
)

// Error is a refused request.
type Error struct {
	Reason  Reason
	Message string
}

func (e *Error) Error() string { return e.Message }

// Options configure a Protection.
type Options struct {
	// TrustedOrigins are CORS_ORIGINS: the browser origins (scheme://host[:port]) allowed to call
	// the endpoint; "*" trusts every origin. None means same-origin pages only.
	TrustedOrigins []string
	// Logger receives one warning per refused request (reason, origin, client address), repeats
	// from one address within a minute at debug level; nil discards.
	Logger *slog.Logger
	// OnRefusal, if set, is called once per refused request, for a metric.
	OnRefusal func(Reason)
}

// Protection applies the two rules. It is safe for concurrent use.
type Protection struct {
	crossOrigin *http.CrossOriginProtection // nil when every origin is trusted
	log         *slog.Logger
	repeats     *quietlog.Repeats
	onRefusal   func(Reason)
}

// New returns a Protection trusting opts.TrustedOrigins. The error names CORS_ORIGINS and the
// value that is not an origin.
func New(opts Options) (*Protection, error) {
	p := &Protection{log: opts.Logger, repeats: quietlog.New(time.Minute), onRefusal: opts.OnRefusal}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.crossOrigin = http.NewCrossOriginProtection()
	var errs []error
	for _, o := range opts.TrustedOrigins {
		if o == "*" {
			p.crossOrigin = nil
			return p, nil
		}
		// Browsers send the origin in lower case and without a trailing slash.
		if err := p.crossOrigin.AddTrustedOrigin(strings.ToLower(strings.TrimSuffix(o, "/"))); err != nil {
			errs = append(errs, fmt.Errorf("CORS_ORIGINS: %w", err))
		}
	}
	return p, errors.Join(errs...)
}

// Check returns nil for a request the rules let through, else an *Error saying which header to
// add. Only GET and POST are judged: no other method runs an operation.
func (p *Protection) Check(r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		return nil
	}
	if p.crossOrigin != nil {
		// CrossOriginProtection passes GET, a safe method elsewhere; here it runs an
		// operation, so it is judged as a POST would be.
		asUnsafe := *r
		asUnsafe.Method = http.MethodPost
		if err := p.crossOrigin.Check(&asUnsafe); err != nil {
			origin := r.Header.Get("Origin")
			from := "a web page of another site"
			if origin != "" {
				from = fmt.Sprintf("the web page at %q", clip(origin, 100))
			}
			return &Error{Reason: ReasonCrossOrigin, Message: fmt.Sprintf(
				"refused: this request comes from %s, which is not one of the origins this service trusts (CORS_ORIGINS)", from)}
		}
	}
	if IsSimpleRequest(r) && r.Header.Get("Sec-Fetch-Site") != "same-origin" {
		return &Error{Reason: ReasonSimpleRequest, Message: "refused as a possible cross-site request forgery: any web page can make a browser send " +
			"this request (a GET, or a POST with a form or text/plain body, without a custom header). Send a POST with " +
			"Content-Type: application/json, or add the header Apollo-Require-Preflight: true (or X-Requested-With), " +
			"e.g. curl -H 'Apollo-Require-Preflight: true' -G --data-urlencode 'query={...}' <url>/query"}
	}
	return nil
}

// IsSimpleRequest reports whether a browser could send r to another origin without a CORS
// preflight, as far as the GraphQL endpoint is concerned: its method is GET, HEAD or POST (the
// Fetch standard's CORS-safelisted methods; Check judges only GET and POST), its
// Content-Type is absent or CORS-safelisted (application/x-www-form-urlencoded,
// multipart/form-data, text/plain, judged by the MIME type's essence as the Fetch standard
// does, whatever the parameters), and it has none of PreflightHeaders with a value.
func IsSimpleRequest(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodPost:
	default:
		return false
	}
	for _, h := range PreflightHeaders {
		if strings.TrimSpace(r.Header.Get(h)) != "" {
			return false
		}
	}
	values := r.Header.Values("Content-Type")
	if len(values) == 0 {
		return true
	}
	for _, v := range values {
		if safelistedContentType(v) {
			return true
		}
	}
	return false
}

// safelistedContentType reports whether a Content-Type value could be CORS-safelisted: its
// essence (type/subtype before any ';', without surrounding HTTP whitespace, in lower case) is
// one of the three, or empty. It is deliberately looser than the Fetch standard (which also
// refuses values over 128 bytes or with some bytes): a value it calls safelisted is only refused
// unless another sign of a preflight is present.
func safelistedContentType(v string) bool {
	essence, _, _ := strings.Cut(v, ";")
	switch strings.ToLower(strings.Trim(essence, " \t\r\n")) {
	case "", "application/x-www-form-urlencoded", "multipart/form-data", "text/plain":
		return true
	}
	return false
}

// Handler returns next behind the rules: a refused request is answered 403 with
// {"errors":[{"message":...,"extensions":{"code":"CSRF_REFUSED","reason":...}}]} as
// application/json, Cache-Control: no-store, and next never sees it.
func (p *Protection) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := p.Check(r)
		if err == nil {
			next.ServeHTTP(w, r)
			return
		}
		e, _ := err.(*Error)
		addr := principal.Anonymous(r.RemoteAddr).Addr
		lvl, repeats := p.repeats.Level(string(e.Reason)+" "+addr, slog.LevelWarn)
		p.log.Log(r.Context(), lvl, "request refused as a possible cross-site request forgery", "reason", e.Reason,
			"origin", clip(r.Header.Get("Origin"), 100), "sec_fetch_site", clip(r.Header.Get("Sec-Fetch-Site"), 20),
			"client", addr, "method", r.Method, "path", r.URL.Path, "repeats", repeats)
		if p.onRefusal != nil {
			p.onRefusal(e.Reason)
		}
		b, _ := json.Marshal(map[string]any{"errors": gqlerror.List{{
			Message:    e.Message,
			Extensions: map[string]any{"code": Code, "reason": e.Reason},
		}}}) // strings only: cannot fail
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write(b)
	})
}

// clip shortens s to at most n bytes for a message or a log line.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
