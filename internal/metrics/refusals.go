package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mdegraph/mdegraph/internal/callerauth"
	"github.com/mdegraph/mdegraph/internal/csrf"
)

// Refusals counts the requests refused before anything ran: by the CSRF check and by the
// sign-in (AUTH_MODE). Its labels are fixed sets (the checks' reasons), never caller input.
// Its methods are safe for concurrent use, and on a nil *Refusals.
type Refusals struct {
	refused *prometheus.CounterVec
}

// NewRefusals registers mdegraph_requests_refused_total with reg.
func NewRefusals(reg prometheus.Registerer) *Refusals {
	r := &Refusals{refused: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mdegraph_requests_refused_total",
		Help: "Requests to /query (and /metrics on ADDR) refused before anything ran, spending no quota, by check and reason: " +
			"signin (missing, malformed, wrong_kind, unknown_api_key, algorithm, signature, unknown_key, expired, not_yet_valid, audience, issuer, tenant, claims: HTTP 401; role: 403), " +
			"csrf (cross_origin, simple_request: 403).",
	}, []string{"check", "reason"})}
	reg.MustRegister(r.refused)
	return r
}

// SignIn counts a request the sign-in refused (callerauth.Options.OnRefusal).
func (r *Refusals) SignIn(reason callerauth.Reason) {
	if r != nil {
		r.refused.WithLabelValues("signin", string(reason)).Inc()
	}
}

// CSRF counts a request the CSRF check refused (csrf.Options.OnRefusal).
func (r *Refusals) CSRF(reason csrf.Reason) {
	if r != nil {
		r.refused.WithLabelValues("csrf", string(reason)).Inc()
	}
}
