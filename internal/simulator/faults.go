package simulator

import (
	"fmt"
	"html"
	"net/http"
	"strconv"
	"time"
)

// Fault is an answer to give in place of an endpoint's real one, for tests of a client's error
// handling. The zero value is not valid: set Status, or Hang.
type Fault struct {
	// Status is the HTTP status, 400 to 599. The body is the one the upstream sends for it:
	// Defender's {"error":{...}} on API endpoints, Entra ID's OAuth error on the token, discovery
	// and JWKS endpoints (a 5xx there is {"error":"temporarily_unavailable",...}).
	Status int
	// RetryAfter, when positive, is sent as Retry-After in whole seconds (rounded up, at least 1).
	// A 429 without one says "Retry-After: 1"; a negative value sends no Retry-After at all,
	// which live answers sometimes do.
	RetryAfter time.Duration
	// HTML sends an HTML error page (text/html) instead of the JSON body, as a gateway or load
	// balancer in front of the upstream does.
	HTML bool
	// Hang sends nothing: the call blocks until the client gives up (its request context ends,
	// or the server closes the connection). Status is ignored.
	Hang bool
}

// fault is a queued injected answer.
type fault struct {
	Fault
	remaining int
}

// defaultInjectedRetryAfter is the Retry-After of an injected 429 that names none.
const defaultInjectedRetryAfter = time.Second

// Inject makes the next times calls routed to endpoint answer status (400 to 599) with the body
// the upstream sends for it: Defender's {"error":{...}} on API endpoints, Entra ID's OAuth error
// on EndpointToken. A 429 carries "Retry-After: 1"; use InjectRetryAfter to choose it.
//
// Injected answers come before authentication and are not counted against the rate limit, so a
// test gets exactly the fault it asked for. Faults queue in the order injected. It panics on an
// unknown endpoint or a status outside 400-599: both are mistakes in the calling test.
func (s *Simulator) Inject(endpoint Endpoint, status int, times int) {
	s.InjectFault(endpoint, Fault{Status: status}, times)
}

// InjectRetryAfter makes the next times calls to endpoint answer 429 Too Many Requests with a
// Retry-After of retryAfter (rounded up to whole seconds, at least 1).
func (s *Simulator) InjectRetryAfter(endpoint Endpoint, retryAfter time.Duration, times int) {
	s.InjectFault(endpoint, Fault{Status: http.StatusTooManyRequests, RetryAfter: retryAfter}, times)
}

// InjectFault makes the next times calls to endpoint answer f, like Inject. It panics on an
// unknown endpoint, or a Status outside 400-599 without Hang.
func (s *Simulator) InjectFault(endpoint Endpoint, f Fault, times int) {
	if !f.Hang && (f.Status < 400 || f.Status > 599) {
		panic(fmt.Sprintf("simulator: Inject status %d is not an error status", f.Status))
	}
	if f.Status == http.StatusTooManyRequests && f.RetryAfter == 0 {
		f.RetryAfter = defaultInjectedRetryAfter
	}
	st := s.state(endpoint)
	if times <= 0 {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.faults = append(st.faults, fault{Fault: f, remaining: times})
}

// ClearFaults drops every injected fault not yet served.
func (s *Simulator) ClearFaults() {
	for _, st := range s.endpoints {
		st.mu.Lock()
		st.faults = nil
		st.mu.Unlock()
	}
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

// injected renders an injected fault: a hang, an HTML page, or the JSON body json builds.
func injected(f fault, json func(fault) response) response {
	var resp response
	switch {
	case f.Hang:
		return response{hang: true}
	case f.HTML:
		text := http.StatusText(f.Status)
		body := fmt.Sprintf("<!DOCTYPE html>\r\n<html><head><title>%d %s</title></head>\r\n<body><h1>%s</h1><p>The service is unavailable. (injected fault)</p></body></html>\r\n",
			f.Status, html.EscapeString(text), html.EscapeString(text))
		resp = response{status: f.Status, contentType: "text/html; charset=utf-8", body: []byte(body)}
	default:
		resp = json(f)
	}
	if f.RetryAfter > 0 {
		resp = resp.with("Retry-After", strconv.Itoa(retryAfterSeconds(f.RetryAfter)))
	}
	return resp
}
