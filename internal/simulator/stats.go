package simulator

import (
	"maps"
	"strings"
	"sync"
	"time"
)

// EndpointStats counts the calls one endpoint received since the simulator started or since
// ResetStats.
type EndpointStats struct {
	// Calls counts every call routed to the endpoint, whatever its answer.
	Calls int
	// ByStatus counts calls by the HTTP status they were answered with.
	ByStatus map[int]int
	// TooManyRequests counts 429 answers, from the rate limit or injected.
	TooManyRequests int
	// MaxInAnyMinute and MaxInAnyHour are the most calls admitted by the rate limit in any sliding
	// 60-second (3600-second) window, counted like the limit itself: a window is (t-60s, t]. For
	// EndpointToken, which has no limit, they count issued tokens; for the other Entra ID and demo
	// endpoints they stay 0.
	MaxInAnyMinute, MaxInAnyHour int
	// Canceled counts calls whose client went away during the added Latency (or an injected
	// hang); they were decided, and are counted above, but got no answer.
	Canceled int
	// ByIdentity counts the calls whose token was accepted, by who made them: IdentityApp for
	// the application's own (client-credentials) token, a person's object id for a token
	// obtained on-behalf-of them. On EndpointToken it counts issued tokens; on EndpointDemo,
	// sign-ins by person.
	ByIdentity map[string]int
}

// endpointState is everything the simulator keeps per endpoint, under one lock.
type endpointState struct {
	mu       sync.Mutex
	limit    slidingLimit
	calls    int
	byStatus map[int]int
	byID     map[string]int
	tooMany  int
	canceled int
	faults   []fault
}

func newEndpointState(perMinute, perHour int) *endpointState {
	return &endpointState{limit: slidingLimit{perMinute: perMinute, perHour: perHour}, byStatus: map[int]int{}, byID: map[string]int{}}
}

// admit asks the endpoint's rate limit about a call arriving now. The clock is read under the
// lock so admissions are recorded in the order they are decided.
func (st *endpointState) admit(now func() time.Time) (bool, time.Duration) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.limit.allowAt(now())
}

func (st *endpointState) record(status int, identity string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.calls++
	st.byStatus[status]++
	if identity != "" {
		st.byID[identity]++
	}
	if status == 429 {
		st.tooMany++
	}
}

func (st *endpointState) recordCanceled() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.canceled++
}

func (st *endpointState) snapshot() EndpointStats {
	st.mu.Lock()
	defer st.mu.Unlock()
	return EndpointStats{
		Calls:           st.calls,
		ByStatus:        maps.Clone(st.byStatus),
		ByIdentity:      maps.Clone(st.byID),
		TooManyRequests: st.tooMany,
		MaxInAnyMinute:  st.limit.maxInMinute,
		MaxInAnyHour:    st.limit.maxInHour,
		Canceled:        st.canceled,
	}
}

func (st *endpointState) reset() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.calls, st.tooMany, st.canceled = 0, 0, 0
	st.byStatus = map[int]int{}
	st.byID = map[string]int{}
	st.limit.resetStats()
}

// Stats returns a snapshot of every endpoint's statistics, including EndpointToken.
// It is safe to call while requests are being served.
func (s *Simulator) Stats() map[Endpoint]EndpointStats {
	out := make(map[Endpoint]EndpointStats, len(s.endpoints))
	for e, st := range s.endpoints {
		out[e] = st.snapshot()
	}
	return out
}

// ResetStats zeroes the statistics and the calls per key. The rate limits keep their memory of
// recent calls: resetting a counter must not hand out a fresh quota.
func (s *Simulator) ResetStats() {
	for _, st := range s.endpoints {
		st.reset()
	}
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	clear(s.keyCalls)
}

// LogonUserCalls is how many calls GET /api/machines/{id}/logonusers received for this id
// (compared case-insensitively), whatever their answer, since start or ResetStats. A caller that
// batches and caches properly makes one per distinct device.
func (s *Simulator) LogonUserCalls(id string) int {
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	return s.keyCalls[EndpointLogonUsers][strings.ToLower(id)]
}

// LogonUserCallCounts returns a copy of LogonUserCalls for every id called.
func (s *Simulator) LogonUserCallCounts() map[string]int { return s.KeyCalls(EndpointLogonUsers) }

// KeyCalls returns how many calls each key of an API endpoint received, whatever their answer,
// since start or ResetStats: by the path's id or account name (lower-cased) for
// EndpointGetMachine, EndpointLogonUsers, EndpointMachineAlerts and EndpointUserMachines, by the
// raw query string (the page: $filter, $top, $skip) for EndpointListMachines. A caller that
// batches, shares and caches properly makes one call per distinct key.
func (s *Simulator) KeyCalls(e Endpoint) map[string]int {
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	out := maps.Clone(s.keyCalls[e])
	if out == nil {
		out = map[string]int{}
	}
	return out
}

func (s *Simulator) countKeyCall(e Endpoint, id, rawQuery string) {
	key := strings.ToLower(id)
	if e == EndpointListMachines {
		key = rawQuery
	}
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	if s.keyCalls[e] == nil {
		s.keyCalls[e] = map[string]int{}
	}
	s.keyCalls[e][key]++
}
