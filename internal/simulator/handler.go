package simulator

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

var _ http.Handler = (*Simulator)(nil)

// ServeHTTP answers like the upstream. Routes, each GET route also under /api/v1.0/:
//
//	POST /{tenant}/oauth2/v2.0/token     client-credentials tokens (Entra ID)
//	GET  /api/machines                   list, with $filter, $top and $skip
//	GET  /api/machines/{id}              one device by id or computer DNS name
//	GET  /api/machines/{id}/logonusers   the device's logon users, by id only
//
// An API call is checked in this order: request URI length (414), route (404 NotFound),
// method (405), injected faults, bearer token (401), permission (403), rate limit (429), then the
// call itself (400, 404 ResourceNotFound, 200). Only calls that reach the rate limit count
// against it.
func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt := route(r.URL)
	var resp response
	switch {
	case requestURILength(r) > MaxURILength:
		resp = s.uriTooLong(r, rt)
	case rt.endpoint == "":
		resp = apiError(http.StatusNotFound, codeNotFound,
			fmt.Sprintf("No HTTP resource was found that matches the request URI '%s'.", clip(r.URL.Path)))
	case rt.endpoint == EndpointToken:
		resp = s.serveToken(r, rt.id)
	default:
		resp = s.serveAPI(r, rt)
	}
	if rt.endpoint != "" {
		s.state(rt.endpoint).record(resp.status)
	}
	s.log.LogAttrs(r.Context(), slog.LevelDebug, "simulator call",
		slog.String("method", r.Method), slog.String("path", clip(r.URL.Path)),
		slog.String("endpoint", string(rt.endpoint)), slog.Int("status", resp.status))
	if rt.endpoint != EndpointToken && !s.wait(r) {
		if rt.endpoint != "" {
			s.state(rt.endpoint).recordCanceled()
		}
		return
	}
	resp.write(w)
}

// wait sleeps the configured latency, returning false if the client gave up meanwhile. It uses a
// timer, not the injected clock, so under testing/synctest the bubble's fake time passes.
func (s *Simulator) wait(r *http.Request) bool {
	if s.opts.Latency <= 0 {
		return true
	}
	t := time.NewTimer(s.opts.Latency)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

// requestURILength is the request target as sent; a request built in a test has no RequestURI.
func requestURILength(r *http.Request) int {
	if r.RequestURI != "" {
		return len(r.RequestURI)
	}
	return len(r.URL.RequestURI())
}

func (s *Simulator) uriTooLong(r *http.Request, rt routed) response {
	msg := fmt.Sprintf("The request URI is %d bytes long; the limit is %d. Split long $filter expressions over several calls.",
		requestURILength(r), MaxURILength)
	if rt.endpoint == EndpointToken {
		return s.oauthError(http.StatusRequestURITooLong, "invalid_request", 9002313, msg)
	}
	return apiError(http.StatusRequestURITooLong, "RequestUriTooLong", msg)
}

// routed is what the path says: the endpoint ("" for none) and its parameter, the machine id or
// name for API routes and the tenant for the token route.
type routed struct {
	endpoint Endpoint
	id       string
}

// route matches the path, case-insensitively like the upstream's IIS front, ignoring one
// trailing slash.
func route(u *url.URL) routed {
	p := strings.TrimSuffix(strings.TrimPrefix(u.EscapedPath(), "/"), "/")
	segs := strings.Split(p, "/")
	unescape := func(seg string) string {
		if v, err := url.PathUnescape(seg); err == nil {
			return v
		}
		return seg
	}
	if len(segs) == 4 && strings.EqualFold(segs[1], "oauth2") && strings.EqualFold(segs[2], "v2.0") &&
		strings.EqualFold(segs[3], "token") {
		return routed{endpoint: EndpointToken, id: unescape(segs[0])}
	}
	if len(segs) < 2 || !strings.EqualFold(segs[0], "api") {
		return routed{}
	}
	rest := segs[1:]
	if strings.EqualFold(rest[0], "v1.0") {
		rest = rest[1:]
	}
	if len(rest) == 0 || !strings.EqualFold(rest[0], "machines") {
		return routed{}
	}
	switch {
	case len(rest) == 1:
		return routed{endpoint: EndpointListMachines}
	case len(rest) == 2:
		return routed{endpoint: EndpointGetMachine, id: unescape(rest[1])}
	case len(rest) == 3 && strings.EqualFold(rest[2], "logonusers"):
		return routed{endpoint: EndpointLogonUsers, id: unescape(rest[1])}
	}
	return routed{}
}

// requiredPermission is the application role each API endpoint needs.
var requiredPermission = map[Endpoint]string{
	EndpointGetMachine:   PermissionMachineReadAll,
	EndpointListMachines: PermissionMachineReadAll,
	EndpointLogonUsers:   PermissionUserReadAll,
}

func (s *Simulator) serveAPI(r *http.Request, rt routed) response {
	if r.Method != http.MethodGet {
		return apiError(http.StatusMethodNotAllowed, "MethodNotAllowed",
			fmt.Sprintf("The requested resource does not support http method '%s'.", clip(r.Method))).
			with("Allow", http.MethodGet)
	}
	if rt.endpoint == EndpointLogonUsers {
		s.countLogonCall(rt.id)
	}
	st := s.state(rt.endpoint)
	if f, ok := st.takeFault(); ok {
		return injectedAPIError(f)
	}
	if resp, ok := s.authenticate(r); !ok {
		return resp
	}
	if need := requiredPermission[rt.endpoint]; s.denied[strings.ToLower(need)] {
		return apiError(http.StatusForbidden, codeForbidden, fmt.Sprintf(
			"The application is missing application roles. API required roles: %s. Application roles: %s.",
			need, s.grantedRoles()))
	}
	if ok, wait := st.admit(s.now); !ok {
		return tooManyRequests(wait)
	}
	switch rt.endpoint {
	case EndpointGetMachine:
		return s.getMachine(rt.id)
	case EndpointLogonUsers:
		return s.logonUsers(rt.id)
	default:
		return s.listMachines(r)
	}
}

// authenticate checks the bearer token; on failure it returns the 401 to send.
func (s *Simulator) authenticate(r *http.Request) (response, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return unauthorized("Authorization header is missing or is not a Bearer token."), false
	}
	switch s.tokens.check(tok, s.now()) {
	case tokenValid:
		return response{}, true
	case tokenExpired:
		return unauthorized("The access token has expired."), false
	default:
		return unauthorized("The access token is invalid."), false
	}
}

func unauthorized(msg string) response {
	return apiError(http.StatusUnauthorized, codeUnauthorized, msg).
		with("WWW-Authenticate", fmt.Sprintf(`Bearer error="invalid_token", error_description=%q`, msg))
}

// grantedRoles names the roles the simulated app holds, for the 403 message.
func (s *Simulator) grantedRoles() string {
	var roles []string
	for _, p := range []string{PermissionMachineReadAll, PermissionUserReadAll} {
		if !s.denied[strings.ToLower(p)] {
			roles = append(roles, p)
		}
	}
	if len(roles) == 0 {
		return "none"
	}
	return strings.Join(roles, ", ")
}

// injectedAPIError is the Defender answer for an injected status.
func injectedAPIError(f fault) response {
	resp := apiError(f.status, codeForStatus(f.status), fmt.Sprintf("Injected fault: %d %s.", f.status, http.StatusText(f.status)))
	if f.status == http.StatusTooManyRequests {
		resp = resp.with("Retry-After", fmt.Sprint(retryAfterSeconds(f.retryAfter)))
	}
	return resp
}

// machineEntity is GET /api/machines/{id}'s body: the machine with its OData context.
type machineEntity struct {
	Context string `json:"@odata.context"`
	Machine
}

// collection is an OData list body.
type collection[T any] struct {
	Context  string `json:"@odata.context"`
	Value    []T    `json:"value"`
	NextLink string `json:"@odata.nextLink,omitempty"`
}

func machineNotFound(id string) response {
	return apiError(http.StatusNotFound, codeResourceNotFound, fmt.Sprintf("Machine %s was not found", clip(id)))
}

func (s *Simulator) getMachine(id string) response {
	i, ok := s.data.lookup(id)
	if !ok {
		return machineNotFound(id)
	}
	return okJSON(machineEntity{Context: APIContextBase + "/$metadata#Machines/$entity", Machine: s.data.machines[i]})
}

// logonUsers answers by device id only. The upstream documents {id} here as the machine id, unlike
// GET /api/machines/{id} which also takes a name; the simulator assumes a name is not resolved and
// answers 404, so a client that relies on it fails in tests rather than in production.
func (s *Simulator) logonUsers(id string) response {
	i, ok := s.data.byID[strings.ToLower(id)]
	if !ok {
		return machineNotFound(id)
	}
	users := s.data.users[i]
	if users == nil {
		users = []User{} // "value": [], never null
	}
	return okJSON(collection[User]{Context: APIContextBase + "/$metadata#Users", Value: users})
}

func (s *Simulator) listMachines(r *http.Request) response {
	q, errResp := parseListQuery(r.URL.RawQuery)
	if errResp != nil {
		return *errResp
	}
	matched := make([]*Machine, 0, len(s.data.machines))
	for i := range s.data.machines {
		if m := &s.data.machines[i]; q.filter == nil || q.filter.match(m) {
			matched = append(matched, m)
		}
	}
	start := min(q.skip, len(matched))
	end := min(start+q.top, len(matched))
	body := collection[*Machine]{Context: APIContextBase + "/$metadata#Machines", Value: matched[start:end]}
	// Without $top the upstream pages with @odata.nextLink; with $top it sends none. The link
	// points back at this server, never at the real API.
	if !q.topSet && end < len(matched) {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		next := url.Values{"$skip": {fmt.Sprint(end)}}
		if q.rawFilter != "" {
			next.Set("$filter", q.rawFilter)
		}
		body.NextLink = scheme + "://" + r.Host + r.URL.Path + "?" + next.Encode()
	}
	return okJSON(body)
}
