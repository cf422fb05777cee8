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

// ServeHTTP answers like the upstream. Routes (paths case-insensitive, one trailing slash
// ignored), each /api route also under /api/v1.0/:
//
//	Entra ID
//	POST /{tenant}/oauth2/v2.0/token                      client-credentials and on-behalf-of tokens
//	GET  /{tenant}/v2.0/.well-known/openid-configuration  OIDC discovery (v2 issuer)
//	GET  /{tenant}/.well-known/openid-configuration       OIDC discovery (v1 issuer)
//	GET  /{tenant}/discovery/v2.0/keys                    JWKS (also /{tenant}/discovery/keys)
//	Defender
//	GET  /api/machines                                    list, with $filter, $top and $skip
//	GET  /api/machines/{id}                               one device by id or computer DNS name
//	GET  /api/machines/{id}/logonusers                    the device's logon users, by id only
//	GET  /api/machines/{id}/alerts                        the device's alerts, by id only
//	GET  /api/users/{accountName}/machines                the devices an account logged on to
//	Simulator only (no such thing in Entra ID or Defender)
//	GET  /demo/persons                                    the demo persons and their device groups
//	POST /demo/signin                                     {"person":"megan"} → an access token for the service
//
// An API call is checked in this order: request URI length (414), route (404 NotFound),
// method (405), injected faults, bearer token (401), permission (403), rate limit (429), then the
// call itself (400, 404 ResourceNotFound, 200). Only calls that reach the rate limit count
// against it. A call made with a person's token (from the on-behalf-of grant) sees only the
// devices of the person's device groups: another device answers 404 as if it did not exist
// (403 with Options.ForbidHiddenDevices; which one Defender sends is unconfirmed).
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
	case rt.endpoint == EndpointDiscovery:
		resp = s.serveDiscovery(r, rt)
	case rt.endpoint == EndpointJWKS:
		resp = s.serveJWKS(r, rt)
	case rt.endpoint == EndpointDemo:
		resp = s.serveDemo(r, rt)
	default:
		resp = s.serveAPI(r, rt)
	}
	if rt.endpoint != "" {
		s.state(rt.endpoint).record(resp.status, resp.identity)
	}
	s.log.LogAttrs(r.Context(), slog.LevelDebug, "simulator call",
		slog.String("method", r.Method), slog.String("path", clip(r.URL.Path)),
		slog.String("endpoint", string(rt.endpoint)), slog.Int("status", resp.status),
		slog.String("identity", resp.identity))
	if resp.hang {
		<-r.Context().Done()
		s.state(rt.endpoint).recordCanceled()
		return
	}
	if rt.endpoint.IsAPI() && !s.wait(r) {
		s.state(rt.endpoint).recordCanceled()
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
	if rt.endpoint != "" && !rt.endpoint.IsAPI() {
		return s.oauthError(http.StatusRequestURITooLong, "invalid_request", 9002313, msg)
	}
	return apiError(http.StatusRequestURITooLong, "RequestUriTooLong", msg)
}

// routed is what the path says: the endpoint ("" for none), its parameter (the machine id or
// name, the account name, the tenant, the demo action) and a variant ("v1" for the v1 Entra
// ID forms).
type routed struct {
	endpoint Endpoint
	id       string
	variant  string
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
	is := func(words ...string) bool { // the path after the first segment is exactly words
		if len(segs) != len(words)+1 {
			return false
		}
		for i, w := range words {
			if !strings.EqualFold(segs[i+1], w) {
				return false
			}
		}
		return true
	}
	switch {
	case len(segs) == 2 && strings.EqualFold(segs[0], "demo"):
		return routed{endpoint: EndpointDemo, id: strings.ToLower(segs[1])}
	case is("oauth2", "v2.0", "token"):
		return routed{endpoint: EndpointToken, id: unescape(segs[0])}
	case is("v2.0", ".well-known", "openid-configuration"):
		return routed{endpoint: EndpointDiscovery, id: unescape(segs[0])}
	case is(".well-known", "openid-configuration"):
		return routed{endpoint: EndpointDiscovery, id: unescape(segs[0]), variant: "v1"}
	case is("discovery", "v2.0", "keys"):
		return routed{endpoint: EndpointJWKS, id: unescape(segs[0])}
	case is("discovery", "keys"):
		return routed{endpoint: EndpointJWKS, id: unescape(segs[0]), variant: "v1"}
	}
	if len(segs) < 2 || !strings.EqualFold(segs[0], "api") {
		return routed{}
	}
	rest := segs[1:]
	if strings.EqualFold(rest[0], "v1.0") {
		rest = rest[1:]
	}
	switch {
	case len(rest) == 3 && strings.EqualFold(rest[0], "users") && strings.EqualFold(rest[2], "machines"):
		return routed{endpoint: EndpointUserMachines, id: unescape(rest[1])}
	case len(rest) == 0 || !strings.EqualFold(rest[0], "machines"):
		return routed{}
	case len(rest) == 1:
		return routed{endpoint: EndpointListMachines}
	case len(rest) == 2:
		return routed{endpoint: EndpointGetMachine, id: unescape(rest[1])}
	case len(rest) == 3 && strings.EqualFold(rest[2], "logonusers"):
		return routed{endpoint: EndpointLogonUsers, id: unescape(rest[1])}
	case len(rest) == 3 && strings.EqualFold(rest[2], "alerts"):
		return routed{endpoint: EndpointMachineAlerts, id: unescape(rest[1])}
	}
	return routed{}
}

// permission is what an API endpoint needs: one of the application roles for an app token, the
// delegated permission for a person's token. Names from the Defender API's permission tables.
type permission struct {
	app       []string // any of these
	delegated string
}

var requiredPermission = map[Endpoint]permission{
	EndpointGetMachine:    {app: []string{PermissionMachineReadAll, PermissionMachineReadWriteAll}, delegated: PermissionMachineRead},
	EndpointListMachines:  {app: []string{PermissionMachineReadAll, PermissionMachineReadWriteAll}, delegated: PermissionMachineRead},
	EndpointLogonUsers:    {app: []string{PermissionUserReadAll}, delegated: PermissionUserReadAll},
	EndpointUserMachines:  {app: []string{PermissionMachineReadWriteAll, PermissionMachineReadAll}, delegated: PermissionMachineRead},
	EndpointMachineAlerts: {app: []string{PermissionAlertReadAll, PermissionAlertReadWriteAll}, delegated: PermissionAlertRead},
}

// appRoles and delegatedPermissions are what the simulated app registration holds before
// Options.DeniedPermissions takes some away: the read permissions, not the write ones.
var (
	appRoles             = []string{PermissionMachineReadAll, PermissionUserReadAll, PermissionAlertReadAll}
	delegatedPermissions = []string{PermissionMachineRead, PermissionUserReadAll, PermissionAlertRead}
)

func (s *Simulator) serveAPI(r *http.Request, rt routed) response {
	if r.Method != http.MethodGet {
		return apiError(http.StatusMethodNotAllowed, "MethodNotAllowed",
			fmt.Sprintf("The requested resource does not support http method '%s'.", clip(r.Method))).
			with("Allow", http.MethodGet)
	}
	s.countKeyCall(rt.endpoint, rt.id, r.URL.RawQuery)
	st := s.state(rt.endpoint)
	if f, ok := st.takeFault(); ok {
		return injected(f, injectedAPIError)
	}
	c, resp, ok := s.authenticate(r)
	if !ok {
		return resp
	}
	resp = s.serveAuthenticated(r, rt, c, st)
	resp.identity = c.identity()
	return resp
}

func (s *Simulator) serveAuthenticated(r *http.Request, rt routed, c caller, st *endpointState) response {
	if resp, ok := s.authorize(rt.endpoint, c); !ok {
		return resp
	}
	if ok, wait := st.admit(s.now); !ok {
		return tooManyRequests(wait)
	}
	switch rt.endpoint {
	case EndpointGetMachine:
		return s.getMachine(c, rt.id)
	case EndpointLogonUsers:
		return s.logonUsers(c, rt.id)
	case EndpointMachineAlerts:
		return s.machineAlerts(r, c, rt.id)
	case EndpointUserMachines:
		return s.userMachines(r, c, rt.id)
	default:
		return s.listMachines(r, c)
	}
}

// authenticate checks the bearer token; on failure it returns the 401 to send.
func (s *Simulator) authenticate(r *http.Request) (caller, response, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return caller{}, unauthorized("Authorization header is missing or is not a Bearer token."), false
	}
	state, c := s.tokens.check(tok, s.now())
	switch state {
	case tokenValid:
		return c, response{}, true
	case tokenExpired:
		return caller{}, unauthorized("The access token has expired."), false
	default:
		return caller{}, unauthorized("The access token is invalid."), false
	}
}

func unauthorized(msg string) response {
	return apiError(http.StatusUnauthorized, codeUnauthorized, msg).
		with("WWW-Authenticate", fmt.Sprintf(`Bearer error="invalid_token", error_description=%q`, msg))
}

// authorize checks the permission the endpoint needs against what the caller's token holds.
func (s *Simulator) authorize(e Endpoint, c caller) (response, bool) {
	need := requiredPermission[e]
	if c.person != nil {
		if !s.denied[strings.ToLower(need.delegated)] {
			return response{}, true
		}
		return apiError(http.StatusForbidden, codeForbidden, fmt.Sprintf(
			"The application is missing delegated permissions. API required permissions: %s. Delegated permissions: %s.",
			need.delegated, s.granted(delegatedPermissions))), false
	}
	for _, role := range need.app {
		if s.holds(role) {
			return response{}, true
		}
	}
	return apiError(http.StatusForbidden, codeForbidden, fmt.Sprintf(
		"The application is missing application roles. API required roles: %s. Application roles: %s.",
		strings.Join(need.app, ", "), s.granted(appRoles))), false
}

// holds reports whether the simulated app holds an application role.
func (s *Simulator) holds(role string) bool {
	for _, r := range appRoles {
		if strings.EqualFold(r, role) {
			return !s.denied[strings.ToLower(role)]
		}
	}
	return false
}

// granted names the permissions of a set that are not denied, for a 403 message.
func (s *Simulator) granted(perms []string) string {
	var out []string
	for _, p := range perms {
		if !s.denied[strings.ToLower(p)] {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// injectedAPIError is the Defender answer for an injected status.
func injectedAPIError(f fault) response {
	return apiError(f.Status, codeForStatus(f.Status), fmt.Sprintf("Injected fault: %d %s.", f.Status, http.StatusText(f.Status)))
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

// hidden answers a person's call about a device outside their device groups: the same 404 as
// for an unknown device, so nothing leaks; 403 with Options.ForbidHiddenDevices.
func (s *Simulator) hidden(id string) response {
	if s.opts.ForbidHiddenDevices {
		return apiError(http.StatusForbidden, codeForbidden,
			fmt.Sprintf("The user is not allowed to access machine %s: it is outside the user's device groups.", clip(id)))
	}
	return machineNotFound(id)
}

// findMachine resolves a device id or computer name for the caller: a person's call resolves a
// name shared by several devices to the most recently seen one they may see.
func (s *Simulator) findMachine(c caller, idOrName string) (int, response, bool) {
	i, ok := s.data.lookup(idOrName)
	if !ok {
		return 0, machineNotFound(idOrName), false
	}
	if c.sees(&s.data.machines[i]) {
		return i, response{}, true
	}
	for _, j := range s.data.byNameAll[strings.ToLower(idOrName)] { // most recently seen first
		if c.sees(&s.data.machines[j]) {
			return j, response{}, true
		}
	}
	return 0, s.hidden(idOrName), false
}

// findByID resolves a device id only (logonusers and alerts take no name) for the caller.
func (s *Simulator) findByID(c caller, id string) (int, response, bool) {
	i, ok := s.data.byID[strings.ToLower(id)]
	switch {
	case !ok:
		return 0, machineNotFound(id), false
	case !c.sees(&s.data.machines[i]):
		return 0, s.hidden(id), false
	}
	return i, response{}, true
}

func (s *Simulator) getMachine(c caller, id string) response {
	i, resp, ok := s.findMachine(c, id)
	if !ok {
		return resp
	}
	return okJSON(machineEntity{Context: APIContextBase + "/$metadata#Machines/$entity", Machine: s.data.machines[i]})
}

// logonUsers answers by device id only. The upstream documents {id} here as the machine id, unlike
// GET /api/machines/{id} which also takes a name; the simulator assumes a name is not resolved and
// answers 404, so a client that relies on it fails in tests rather than in production.
func (s *Simulator) logonUsers(c caller, id string) response {
	i, resp, ok := s.findByID(c, id)
	if !ok {
		return resp
	}
	users := s.data.users[i]
	if users == nil {
		users = []User{} // "value": [], never null
	}
	return okJSON(collection[User]{Context: APIContextBase + "/$metadata#Users", Value: users})
}

// machineAlerts answers GET /api/machines/{id}/alerts by device id only, newest alert first. It
// takes no OData options.
func (s *Simulator) machineAlerts(r *http.Request, c caller, id string) response {
	if resp, ok := refuseQueryOptions(r.URL.RawQuery); !ok {
		return resp
	}
	i, resp, ok := s.findByID(c, id)
	if !ok {
		return resp
	}
	alerts := s.data.alerts[i]
	if alerts == nil {
		alerts = []Alert{}
	}
	return okJSON(collection[Alert]{Context: APIContextBase + "/$metadata#Alerts", Value: alerts})
}

// userMachines answers GET /api/users/{accountName}/machines: the devices whose logon users hold
// an account of that name (any domain, compared case-insensitively), in data-set order. {id} is
// the bare account name: "contoso\jdoe" or a UPN matches no account and, like an unknown name,
// answers 200 with an empty list, as the upstream documents for unknown users. It takes no OData
// options.
func (s *Simulator) userMachines(r *http.Request, c caller, name string) response {
	if resp, ok := refuseQueryOptions(r.URL.RawQuery); !ok {
		return resp
	}
	if strings.TrimSpace(name) == "" {
		return apiError(http.StatusBadRequest, "InvalidInput", "The user id is empty; give the account name, e.g. /api/users/jdoe/machines.")
	}
	out := []*Machine{}
	for _, i := range s.data.byAccount[foldKey(name)] {
		if m := &s.data.machines[i]; c.sees(m) {
			out = append(out, m)
		}
	}
	return okJSON(collection[*Machine]{Context: APIContextBase + "/$metadata#Machines", Value: out})
}

// noRecentMachines is GET /api/machines's answer when the caller sees no device at all: the
// upstream's 404, which a client must read as an empty list.
func noRecentMachines() response {
	return apiError(http.StatusNotFound, codeResourceNotFound, "No recent machines were found.")
}

func (s *Simulator) listMachines(r *http.Request, c caller) response {
	q, errResp := parseListQuery(r.URL.RawQuery)
	if errResp != nil {
		return *errResp
	}
	matched := make([]*Machine, 0, len(s.data.machines))
	visible := 0
	for i := range s.data.machines {
		m := &s.data.machines[i]
		if !c.sees(m) {
			continue
		}
		visible++
		if q.filter == nil || q.filter.match(m) {
			matched = append(matched, m)
		}
	}
	if visible == 0 {
		return noRecentMachines()
	}
	start := min(q.skip, len(matched))
	size := q.top
	if !q.topSet {
		size = s.opts.PageSize
	}
	end := min(start+size, len(matched))
	body := collection[*Machine]{Context: APIContextBase + "/$metadata#Machines", Value: matched[start:end]}
	// With $top the upstream sends no nextLink; without, it pages (Options.NextLink decides how).
	// The link points back at this server, never at the real API.
	if !q.topSet {
		switch {
		case s.opts.NextLink == NextLinkRepeat:
			body.NextLink = s.listLink(r, q, q.skip)
		case s.opts.NextLink == NextLinkNormal && end < len(matched):
			body.NextLink = s.listLink(r, q, end)
		}
	}
	return okJSON(body)
}

// listLink is the URL of the list page starting at skip, with the same $filter.
func (s *Simulator) listLink(r *http.Request, q listQuery, skip int) string {
	next := url.Values{"$skip": {fmt.Sprint(skip)}}
	if q.rawFilter != "" {
		next.Set("$filter", q.rawFilter)
	}
	return requestOrigin(r) + r.URL.Path + "?" + next.Encode()
}
