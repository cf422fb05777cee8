package simulator

import (
	"fmt"
	"time"
)

// fault is a queued injected answer.
type fault struct {
	status     int
	retryAfter time.Duration // Retry-After of an injected 429 (or 503 via InjectRetryAfter)
	remaining  int
}

// defaultInjectedRetryAfter is the Retry-After of a 429 injected with Inject.
const defaultInjectedRetryAfter = time.Second

// Inject makes the next times calls routed to endpoint answer status (400 to 599) with the body
// the upstream sends for it: Defender's {"error":{...}} on API endpoints, Entra ID's OAuth error
// on EndpointToken. A 429 carries "Retry-After: 1"; use InjectRetryAfter to choose it.
//
// Injected answers come before authentication and are not counted against the rate limit, so a
// test gets exactly the fault it asked for. Faults queue in the order injected. It panics on an
// unknown endpoint or a status outside 400-599: both are mistakes in the calling test.
func (s *Simulator) Inject(endpoint Endpoint, status int, times int) {
	s.inject(endpoint, fault{status: status, retryAfter: defaultInjectedRetryAfter, remaining: times})
}

// InjectRetryAfter makes the next times calls to endpoint answer 429 Too Many Requests with a
// Retry-After of retryAfter (rounded up to whole seconds, at least 1).
func (s *Simulator) InjectRetryAfter(endpoint Endpoint, retryAfter time.Duration, times int) {
	s.inject(endpoint, fault{status: 429, retryAfter: retryAfter, remaining: times})
}

// ClearFaults drops every injected fault not yet served.
func (s *Simulator) ClearFaults() {
	for _, st := range s.endpoints {
		st.mu.Lock()
		st.faults = nil
		st.mu.Unlock()
	}
}

func (s *Simulator) inject(endpoint Endpoint, f fault) {
	if f.status < 400 || f.status > 599 {
		panic(fmt.Sprintf("simulator: Inject status %d is not an error status", f.status))
	}
	st := s.state(endpoint)
	if f.remaining <= 0 {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.faults = append(st.faults, f)
}

// takeFault pops the next injected fault of the endpoint, if any.
func (st *endpointState) takeFault() (fault, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.faults) == 0 {
		return fault{}, false
	}
	f := st.faults[0]
	st.faults[0].remaining--
	if st.faults[0].remaining == 0 {
		st.faults = st.faults[1:]
	}
	return f, true
}
