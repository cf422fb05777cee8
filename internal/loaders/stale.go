package loaders

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mdegraph/mdegraph/internal/defender"
	"github.com/mdegraph/mdegraph/internal/quota"
	"github.com/mdegraph/mdegraph/internal/upstreamauth"
)

// Reasons a stale answer is served instead of a fresh one. They are the extensions.code a
// client would have received without the stale answer.
const (
	// ReasonRateLimited: the quota is spent (the call would wait longer than QUOTA_MAX_WAIT or
	// the request's deadline), Defender asked for a pause, or it answered 429.
	ReasonRateLimited = "RATE_LIMITED"
	// ReasonUnavailable: Defender failed (5xx), timed out, could not be reached, or its sign-in
	// (Entra ID's token endpoint) could not be reached or failed.
	ReasonUnavailable = "UPSTREAM_UNAVAILABLE"
)

// Stale marks an answer served after its freshness (CACHE_TTL) because a fresh one could not
// be had, as Options.StaleTTL allows.
type Stale struct {
	// Age is how long ago the upstream gave the answer.
	Age time.Duration
	// Reason is why no fresh answer could be had: ReasonRateLimited or ReasonUnavailable.
	Reason string
	// Err is the error the fresh attempt met.
	Err error
}

// staleReason says whether a stale answer may stand in for a fresh one that failed with err,
// and why. Only failures that say nothing about the answer itself qualify: spent quota, a
// pause, 429, 5xx, timeouts, unreachable hosts, a failing token endpoint. A 404 (the answer is
// gone), 400, 401, 403 and a refused sign-in (the service may no longer see it), and the
// client's own cancellation never do.
func staleReason(err error) (string, bool) {
	var (
		exceeded    *quota.ExceededError
		rateLimited *defender.RateLimitError
		unavailable *defender.UnavailableError
		resp        *defender.ErrorResponse
		auth        *upstreamauth.Error
	)
	switch {
	case err == nil, errors.Is(err, context.Canceled):
		return "", false
	case errors.As(err, &exceeded), errors.As(err, &rateLimited):
		return ReasonRateLimited, true
	case errors.As(err, &unavailable):
		return ReasonUnavailable, true
	case errors.As(err, &resp):
		return ReasonUnavailable, resp.StatusCode >= http.StatusInternalServerError
	case errors.As(err, &auth):
		// The token endpoint itself failing or throttling is an outage, not a refusal.
		switch auth.Kind {
		case upstreamauth.Throttled:
			return ReasonRateLimited, true
		case upstreamauth.Unavailable:
			return ReasonUnavailable, true
		}
		return "", false
	case errors.Is(err, context.DeadlineExceeded):
		return ReasonUnavailable, true
	}
	return "", false
}

// forgets reports whether err must drop the answer kept for its key, so that it is never
// served stale later: Defender or Entra ID refused this service (401, 403, a refused sign-in),
// and what it may no longer see must not come back from the cache. (A 404 replaces the answer
// with the 404 itself.)
func forgets(err error) bool {
	var (
		resp *defender.ErrorResponse
		auth *upstreamauth.Error
	)
	switch {
	case errors.As(err, &resp):
		return resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden
	case errors.As(err, &auth):
		return auth.Kind == upstreamauth.Refused || auth.Kind == upstreamauth.Rejected
	}
	return false
}

// StaleIfError is the Cache-Control request directive (RFC 5861, section 4) with which a
// client limits the age of a stale answer: "Cache-Control: stale-if-error=0" refuses stale
// answers, "stale-if-error=300" accepts them up to 5 minutes old. Without it the service's
// STALE_TTL applies; it never extends STALE_TTL.
const StaleIfError = "stale-if-error"

// staleLimit reads the stale-if-error directive of h's Cache-Control fields: its age limit,
// and whether there is one. A directive without a valid number of seconds is ignored, as RFC
// 9111 asks of invalid directives.
func staleLimit(h http.Header) (time.Duration, bool) {
	for _, field := range h.Values("Cache-Control") {
		for directive := range strings.SplitSeq(field, ",") {
			name, value, _ := strings.Cut(strings.TrimSpace(directive), "=")
			if !strings.EqualFold(strings.TrimSpace(name), StaleIfError) {
				continue
			}
			secs, err := strconv.ParseUint(strings.Trim(strings.TrimSpace(value), `"`), 10, 31)
			if err != nil {
				continue
			}
			return time.Duration(secs) * time.Second, true
		}
	}
	return 0, false
}

type staleLimitKey struct{}

// WithStaleLimit returns ctx in which no answer older than d is served stale (0: none at all).
// Middleware sets it from the request's Cache-Control: stale-if-error.
func WithStaleLimit(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, staleLimitKey{}, max(d, 0))
}

// staleLimitFrom returns the oldest answer ctx accepts as stale: the fetcher's StaleTTL,
// lowered by WithStaleLimit.
func (f *Fetcher) staleLimitFrom(ctx context.Context) time.Duration {
	if d, ok := ctx.Value(staleLimitKey{}).(time.Duration); ok {
		return min(d, f.opts.StaleTTL)
	}
	return f.opts.StaleTTL
}
