// Package simulator is an in-process stand-in for the Microsoft Defender for Endpoint REST API and
// for the Entra ID token endpoint in front of it.
//
// A Simulator is an http.Handler. It issues client-credentials tokens, serves a deterministic data
// set of devices and their logon users, enforces the upstream's per-endpoint rate limits exactly
// (sliding windows of 60 and 3600 seconds), answers errors in the upstream's wire shapes, and keeps
// statistics a load test can assert on. It writes its own wire structs and never shares types with
// the service's client, so a decoding bug in the client cannot be masked by a shared definition.
//
// A Simulator is safe for concurrent use.
package simulator

import (
	"log/slog"
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

	DefaultSeed      = 1
	DefaultDevices   = 300
	DefaultPerMinute = 100
	DefaultPerHour   = 1500
	DefaultTokenTTL  = 3599 * time.Second
)

// Permissions the simulated endpoints require, as the upstream names its application roles.
const (
	PermissionMachineReadAll = "Machine.Read.All"
	PermissionUserReadAll    = "User.Read.All"
)

// MaxURILength is the longest request URI (path and query, in bytes as sent) the simulator
// accepts; longer ones answer 414. The upstream's exact limit is undocumented; 8192 is the common
// front-door default, and it is what makes a caller chunk long `id eq .. or ..` filters.
const MaxURILength = 8192

// MaxTop is the largest $top GET /api/machines accepts, and the page size when $top is absent.
const MaxTop = 10000

// APIContextBase is the host the simulator writes into @odata.context, as the upstream does.
const APIContextBase = "https://api.securitycenter.microsoft.com/api"

// Options configures a Simulator. The zero value is a working simulator with the defaults above.
type Options struct {
	// Seed selects the data set; 0 means DefaultSeed. The same Seed and Devices give byte-identical data.
	Seed int64
	// Devices is the number of devices; 0 or less means DefaultDevices.
	Devices int
	// TenantID is the only tenant the token endpoint accepts in its path; "" accepts any tenant.
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
	// DeniedPermissions lists application roles the app lacks (e.g. "User.Read.All", compared
	// case-insensitively): the calls that need one answer 403 Forbidden naming it.
	DeniedPermissions []string
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

	logonMu    sync.Mutex
	logonCalls map[string]int // lower-cased path id → calls to logonusers
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
	s := &Simulator{
		opts:       opts,
		now:        opts.Now,
		log:        opts.Logger,
		data:       generate(opts.Seed, opts.Devices),
		tokens:     tokenStore{tokens: map[string]time.Time{}},
		endpoints:  map[Endpoint]*endpointState{},
		denied:     map[string]bool{},
		logonCalls: map[string]int{},
	}
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
	// The token endpoint is not rate limited; its windows count issued tokens.
	s.endpoints[EndpointToken] = newEndpointState(0, 0)
	return s
}

// Endpoint names one simulated endpoint, for statistics, rate limits and fault injection.
type Endpoint string

// The simulated endpoints. Each API endpoint has its own rate limit, as upstream.
const (
	EndpointToken        Endpoint = "token"         // POST /{tenant}/oauth2/v2.0/token
	EndpointGetMachine   Endpoint = "get-machine"   // GET /api/machines/{id}
	EndpointListMachines Endpoint = "list-machines" // GET /api/machines
	EndpointLogonUsers   Endpoint = "logonusers"    // GET /api/machines/{id}/logonusers
)

var apiEndpoints = []Endpoint{EndpointGetMachine, EndpointListMachines, EndpointLogonUsers}

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
// admin, a network-only user and a local account: a good first query.
func (s *Simulator) ExampleMachineID() string { return s.data.machines[s.data.example].ID }

// ExampleMachineName is the computer DNS name of ExampleMachineID.
func (s *Simulator) ExampleMachineName() string {
	return s.data.machines[s.data.example].ComputerDNSName
}

// ClientID is the client id the token endpoint accepts.
func (s *Simulator) ClientID() string { return s.opts.ClientID }

// ClientSecret is the client secret the token endpoint accepts.
func (s *Simulator) ClientSecret() string { return s.opts.ClientSecret }
