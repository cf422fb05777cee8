// Package simulator is an in-process stand-in for the Microsoft Defender for Endpoint REST API and
// for the Entra ID tenant in front of it.
//
// A Simulator is an http.Handler. As Defender it serves a deterministic data set of devices, their
// logon users and alerts, enforces the upstream's per-endpoint rate limits exactly (sliding
// windows of 60 and 3600 seconds), answers errors in the upstream's wire shapes, and keeps
// statistics a load test can assert on. As Entra ID it publishes OpenID Connect discovery and a
// JSON Web Key Set, mints RS256 access tokens for demo persons (Persons, SignIn, MintAccessToken),
// and issues Defender tokens by client credentials (the application, which sees every device) or
// on-behalf-of a person (who sees only their device groups). It writes its own wire structs and
// never shares types with the service's client, so a decoding bug in the client cannot be masked
// by a shared definition.
//
// A Simulator is safe for concurrent use.
package simulator

import (
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// Credentials and defaults the simulator uses when Options leaves them empty. The demo secret is
// public on purpose: the simulator guards nothing.
const (
	DefaultClientID     = "demo-client"
	DefaultClientSecret = "demo-secret"
	// DemoTenantID is the tenant the standalone command serves; Options.TenantID "" accepts any.
	DemoTenantID = "11111111-2222-4333-8444-555555555555"

	// DefaultAudience is the audience (the App ID URI of the service's API) of minted tokens. The
	// app registration with this App ID URI is the one with ClientID, which may exchange tokens
	// for it on-behalf-of.
	DefaultAudience = "api://mdegraph"

	DefaultSeed      = 1
	DefaultDevices   = 300
	DefaultPerMinute = 100
	DefaultPerHour   = 1500
	DefaultTokenTTL  = 3599 * time.Second
)

// Permissions the simulated endpoints require, as the upstream names its application roles
// (*.All) and delegated permissions. The simulated app holds the read roles and read delegated
// permissions, less Options.DeniedPermissions; it holds no write role.
const (
	PermissionMachineReadAll      = "Machine.Read.All"
	PermissionMachineReadWriteAll = "Machine.ReadWrite.All"
	PermissionUserReadAll         = "User.Read.All"
	PermissionAlertReadAll        = "Alert.Read.All"
	PermissionAlertReadWriteAll   = "Alert.ReadWrite.All"
	PermissionMachineRead         = "Machine.Read"
	PermissionAlertRead           = "Alert.Read"
)

// MaxURILength is the longest request URI (path and query, in bytes as sent) the simulator
// accepts; longer ones answer 414. The upstream's exact limit is undocumented; 8192 is the common
// front-door default, and it is what makes a caller chunk long `id eq .. or ..` filters.
const MaxURILength = 8192

// MaxTop is the largest $top GET /api/machines accepts, and the default page size when $top is
// absent.
const MaxTop = 10000

// NextLinkMode is how GET /api/machines pages when the call has no $top. With $top there is
// never an @odata.nextLink, as upstream.
type NextLinkMode int

// The paging behaviours users report for GET /api/machines without $top.
const (
	// NextLinkNormal sends @odata.nextLink ($skip of the next page) while more devices remain.
	NextLinkNormal NextLinkMode = iota
	// NextLinkMissing never sends one: a client that relies on it silently loses every device
	// past the first page.
	NextLinkMissing
	// NextLinkRepeat sends one on every page, pointing back at the same page: a client that
	// follows it loops forever.
	NextLinkRepeat
)

// APIContextBase is the host the simulator writes into @odata.context, as the upstream does.
const APIContextBase = "https://api.securitycenter.microsoft.com/api"

// Options configures a Simulator. The zero value is a working simulator with the defaults above.
type Options struct {
	// Seed selects the data set; 0 means DefaultSeed. The same Seed and Devices give byte-identical data.
	Seed int64
	// Devices is the number of devices; 0 or less means DefaultDevices.
	Devices int
	// TenantID is the only tenant the token, discovery and JWKS endpoints accept in their path
	// (besides the common and organizations aliases for discovery); "" accepts any tenant. It is
	// also the tid of minted tokens, DemoTenantID when empty.
	TenantID string
	// ClientID and ClientSecret are the only credentials the token endpoint accepts;
	// "" means DefaultClientID and DefaultClientSecret.
	ClientID     string
	ClientSecret string
	// Latency is added to every call but the token endpoint's, before the answer is written.
	// The call is decided (and counted against the rate limit) when it arrives, as upstream; a
	// client that gives up while waiting gets nothing, and the call shows in EndpointStats.Canceled.
	Latency time.Duration
	// PerMinute and PerHour are the rate limits of each API endpoint: 0 means the default
	// (100 and 1500), a negative value disables that limit.
	PerMinute, PerHour int
	// TokenTTL is how long issued tokens are valid; 0 means DefaultTokenTTL.
	TokenTTL time.Duration
	// DeniedPermissions lists application roles or delegated permissions the app lacks (e.g.
	// "User.Read.All", "Alert.Read", compared case-insensitively): the calls that need one answer
	// 403 Forbidden naming it.
	DeniedPermissions []string
	// NoDevices serves a tenant without devices: GET /api/machines answers 404, as upstream
	// when there are no recent machines. Devices is then ignored.
	NoDevices bool
	// PageSize is how many devices GET /api/machines answers without $top; 0 means MaxTop.
	PageSize int
	// NextLink is how GET /api/machines pages without $top; the default, NextLinkNormal, sends
	// a nextLink while devices remain. The other modes reproduce what users report.
	NextLink NextLinkMode
	// ForbidHiddenDevices makes a person's call about a device outside their device groups
	// answer 403 Forbidden instead of the default 404 ResourceNotFound (unconfirmed upstream).
	ForbidHiddenDevices bool
	// Audience is the aud of the access tokens minted for the service's API, and the audience
	// an on-behalf-of assertion must carry (its ClientID is accepted too); "" means
	// DefaultAudience.
	Audience string
	// Authority is the base URL the simulator is reached at (e.g. "http://127.0.0.1:9090"):
	// its issuer is {Authority}/{tenant}/v2.0. "" means SetAuthority's value or, for an HTTP
	// answer, the request's own scheme and host.
	Authority string
	// Now is the clock for rate limits, token expiry and statistics; nil means time.Now (which is
	// the bubble's fake clock under testing/synctest).
	Now func() time.Time
	// Logger receives one debug line per call; nil discards.
	Logger *slog.Logger
}

// Simulator is the simulated upstream. Create it with New.
type Simulator struct {
	opts      Options // with defaults applied
	now       func() time.Time
	log       *slog.Logger
	data      *dataset
	tokens    tokenStore
	endpoints map[Endpoint]*endpointState // fixed after New; each entry has its own lock
	denied    map[string]bool             // lower-cased permission names
	keys      keyRing

	authorityMu sync.Mutex
	authority   string // Options.Authority or SetAuthority's; "" derives it from the request

	keyMu    sync.Mutex
	keyCalls map[Endpoint]map[string]int // per endpoint: lower-cased key → calls (see KeyCalls)
}

// New builds a Simulator. Its data set depends only on opts.Seed and opts.Devices.
func New(opts Options) *Simulator {
	if opts.Seed == 0 {
		opts.Seed = DefaultSeed
	}
	if opts.Devices <= 0 {
		opts.Devices = DefaultDevices
	}
	if opts.ClientID == "" {
		opts.ClientID = DefaultClientID
	}
	if opts.ClientSecret == "" {
		opts.ClientSecret = DefaultClientSecret
	}
	if opts.PerMinute == 0 {
		opts.PerMinute = DefaultPerMinute
	}
	if opts.PerHour == 0 {
		opts.PerHour = DefaultPerHour
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = DefaultTokenTTL
	}
	if opts.PageSize <= 0 {
		opts.PageSize = MaxTop
	}
	if opts.Audience == "" {
		opts.Audience = DefaultAudience
	}
	devices := opts.Devices
	if opts.NoDevices {
		devices = 0
	}
	s := &Simulator{
		opts:      opts,
		now:       opts.Now,
		log:       opts.Logger,
		authority: strings.TrimSuffix(opts.Authority, "/"),
		tokens:    tokenStore{tokens: map[string]issuedToken{}},
		endpoints: map[Endpoint]*endpointState{},
		denied:    map[string]bool{},
		keyCalls:  map[Endpoint]map[string]int{},
	}
	s.data = generate(opts.Seed, devices, s.TenantID()) // the tenant fills the alerts' aadTenantId
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	for _, p := range opts.DeniedPermissions {
		s.denied[strings.ToLower(strings.TrimSpace(p))] = true
	}
	// Negative limits mean "unlimited"; the window treats 0 that way.
	perMinute, perHour := max(opts.PerMinute, 0), max(opts.PerHour, 0)
	for _, e := range apiEndpoints {
		s.endpoints[e] = newEndpointState(perMinute, perHour)
	}
	// Entra ID's endpoints are not rate limited; the token endpoint's windows count issued tokens.
	for _, e := range []Endpoint{EndpointToken, EndpointDiscovery, EndpointJWKS, EndpointDemo} {
		s.endpoints[e] = newEndpointState(0, 0)
	}
	return s
}

// Endpoint names one simulated endpoint, for statistics, rate limits and fault injection.
type Endpoint string

// The simulated endpoints. Each API endpoint has its own rate limit, as upstream; the Entra ID
// and demo endpoints have none.
const (
	EndpointToken         Endpoint = "token"          // POST /{tenant}/oauth2/v2.0/token
	EndpointDiscovery     Endpoint = "discovery"      // GET /{tenant}/v2.0/.well-known/openid-configuration (and v1)
	EndpointJWKS          Endpoint = "jwks"           // GET /{tenant}/discovery/v2.0/keys (and v1)
	EndpointDemo          Endpoint = "demo"           // GET /demo/persons, POST /demo/signin
	EndpointGetMachine    Endpoint = "get-machine"    // GET /api/machines/{id}
	EndpointListMachines  Endpoint = "list-machines"  // GET /api/machines
	EndpointLogonUsers    Endpoint = "logonusers"     // GET /api/machines/{id}/logonusers
	EndpointMachineAlerts Endpoint = "machine-alerts" // GET /api/machines/{id}/alerts
	EndpointUserMachines  Endpoint = "user-machines"  // GET /api/users/{accountName}/machines
)

var apiEndpoints = []Endpoint{EndpointGetMachine, EndpointListMachines, EndpointLogonUsers, EndpointMachineAlerts, EndpointUserMachines}

// IsAPI reports whether e is one of Defender's API endpoints (rate limited, with added
// latency), rather than one of Entra ID's (token, discovery, JWKS) or the demo's: what a
// caller's quota pays for.
func (e Endpoint) IsAPI() bool { return slices.Contains(apiEndpoints, e) }

// state returns the endpoint's state, panicking on a name that is not one of the constants:
// that is a mistake in the calling test, not a runtime condition.
func (s *Simulator) state(e Endpoint) *endpointState {
	st, ok := s.endpoints[e]
	if !ok {
		panic("simulator: unknown endpoint " + string(e))
	}
	return st
}

// Machines returns a copy of every device, in the order GET /api/machines lists them.
func (s *Simulator) Machines() []Machine {
	out := make([]Machine, len(s.data.machines))
	for i := range s.data.machines {
		out[i] = s.data.machines[i].clone()
	}
	return out
}

// Machine returns a copy of the device GET /api/machines/{id} answers for id: a device id or a
// computer DNS name, both case-insensitive. A name shared by several devices gives the most
// recently seen one.
func (s *Simulator) Machine(id string) (Machine, bool) {
	i, ok := s.data.lookup(id)
	if !ok {
		return Machine{}, false
	}
	return s.data.machines[i].clone(), true
}

// LogonUsers returns a copy of the logon users of the device with this id (not a name, see
// the logonusers route), and false for an unknown id.
func (s *Simulator) LogonUsers(id string) ([]User, bool) {
	i, ok := s.data.byID[strings.ToLower(id)]
	if !ok {
		return nil, false
	}
	users := s.data.users[i]
	out := make([]User, len(users))
	for j := range users {
		out[j] = users[j].clone()
	}
	return out, true
}

// ExampleMachineID is a stable, active device with several logon users, among them a domain
// admin, a network-only user and a local account, and alerts: a good first query. It is "" with
// Options.NoDevices.
func (s *Simulator) ExampleMachineID() string {
	if len(s.data.machines) == 0 {
		return ""
	}
	return s.data.machines[s.data.example].ID
}

// ExampleMachineName is the computer DNS name of ExampleMachineID.
func (s *Simulator) ExampleMachineName() string {
	if len(s.data.machines) == 0 {
		return ""
	}
	return s.data.machines[s.data.example].ComputerDNSName
}

// Alerts returns a copy of the alerts of the device with this id (not a name, like the route),
// newest first, and false for an unknown id.
func (s *Simulator) Alerts(id string) ([]Alert, bool) {
	i, ok := s.data.byID[strings.ToLower(id)]
	if !ok {
		return nil, false
	}
	out := make([]Alert, len(s.data.alerts[i]))
	for j, a := range s.data.alerts[i] {
		out[j] = a.clone()
	}
	return out, true
}

// UserMachines returns copies of the devices GET /api/users/{accountName}/machines answers for
// an application token: those with a logon user of that account name, in any domain, compared
// case-insensitively, in data-set order.
func (s *Simulator) UserMachines(accountName string) []Machine {
	idx := s.data.byAccount[foldKey(accountName)]
	out := make([]Machine, len(idx))
	for j, i := range idx {
		out[j] = s.data.machines[i].clone()
	}
	return out
}

// ClientID is the client id the token endpoint accepts.
func (s *Simulator) ClientID() string { return s.opts.ClientID }

// ClientSecret is the client secret the token endpoint accepts.
func (s *Simulator) ClientSecret() string { return s.opts.ClientSecret }
