package defender

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// maxErrorBody bounds how much of an error answer is read: Defender's error bodies are a few
// hundred bytes, and a misbehaving proxy must not make us buffer megabytes.
const maxErrorBody = 64 << 10

// ErrorResponse is a non-2xx answer from the API, decoded from Defender's
// {"error":{"code","message","target"}} body. Callers use errors.As to inspect it.
type ErrorResponse struct {
	// Endpoint is the endpoint family that answered.
	Endpoint Endpoint
	// StatusCode is the HTTP status.
	StatusCode int
	// Code is Defender's error code, e.g. ResourceNotFound (empty if the body had none).
	Code string
	// Message is Defender's free-text message.
	Message string
	// Target is Defender's correlation id, worth logging; Microsoft support asks for it.
	Target string
	// Machine is the device the call asked about, by the id or name it was given
	// (machines.get, machines.logonusers); empty for list calls. The error presenter words a
	// 404 with it: a short host name is likely the reason.
	Machine MachineRef
}

func (e *ErrorResponse) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "defender %s: %d", e.Endpoint, e.StatusCode)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.Target != "" {
		b.WriteString(" (correlation id " + e.Target + ")")
	}
	return b.String()
}

// NotFound reports whether the API said the resource does not exist.
func (e *ErrorResponse) NotFound() bool { return e.StatusCode == http.StatusNotFound }

// RateLimitError is a 429 answer: the endpoint's quota is spent until RetryAfter has passed.
type RateLimitError struct {
	ErrorResponse
	// RetryAfter is how long the API asked us to wait (from the Retry-After header).
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("%s; retry after %s", e.ErrorResponse.Error(), e.RetryAfter)
}

// Unwrap lets errors.As find the embedded *ErrorResponse.
func (e *RateLimitError) Unwrap() error { return &e.ErrorResponse }

// QuotaError is a call the limiter did not let out: the endpoint family's quota is spent (or
// waiting for it would outlast the caller). Err is the limiter's error, a *quota.ExceededError
// with RetryAfter from quota.Set. No API call was made.
type QuotaError struct {
	// Endpoint is the endpoint family whose quota is spent.
	Endpoint Endpoint
	Err      error
}

func (e *QuotaError) Error() string { return fmt.Sprintf("defender %s: %v", e.Endpoint, e.Err) }

func (e *QuotaError) Unwrap() error { return e.Err }

// InvalidInputError is an argument refused before any call was made.
type InvalidInputError struct {
	Field  string
	Value  string
	Reason string
}

func (e *InvalidInputError) Error() string {
	return fmt.Sprintf("invalid %s %q: %s", e.Field, truncate(e.Value, 80), e.Reason)
}

// UnavailableError is a failure to get any answer: a network error, a timeout, or an answer
// that could not be read. It wraps the cause.
type UnavailableError struct {
	Endpoint Endpoint
	Err      error
	// badAnswer marks an answer that arrived but could not be read: asking again would most
	// likely get the same answer and spend quota, so it is not retried.
	badAnswer bool
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("defender %s: unavailable: %v", e.Endpoint, e.Err)
}

func (e *UnavailableError) Unwrap() error { return e.Err }

// IsNotFound reports whether err says the resource does not exist.
func IsNotFound(err error) bool {
	var er *ErrorResponse
	return errors.As(err, &er) && er.NotFound()
}

// apiErrorBody is Defender's error envelope.
type apiErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Target  string `json:"target"`
	} `json:"error"`
}

// checkResponse turns a non-2xx answer into an *ErrorResponse or *RateLimitError, reading at
// most maxErrorBody bytes of its body. now is the time the answer arrived, for Retry-After
// given as an HTTP date.
func checkResponse(endpoint Endpoint, resp *http.Response, now time.Time) error {
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	er := decodeErrorBody(body)
	er.Endpoint = endpoint
	er.StatusCode = resp.StatusCode
	if er.Message == "" {
		er.Message = http.StatusText(resp.StatusCode)
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		return &RateLimitError{ErrorResponse: *er, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), now)}
	}
	return er
}

// decodeErrorBody reads Defender's error envelope leniently: a body that is not one (an HTML
// page from a proxy, say) yields an empty ErrorResponse rather than an error.
func decodeErrorBody(body []byte) *ErrorResponse {
	var env apiErrorBody
	if err := json.Unmarshal(body, &env); err != nil {
		return &ErrorResponse{}
	}
	return &ErrorResponse{
		Code:    truncate(env.Error.Code, 100),
		Message: truncate(env.Error.Message, 500),
		Target:  truncate(env.Error.Target, 100),
	}
}

// truncate cuts s to at most n bytes (plus an ellipsis), on a rune boundary so that the
// result stays valid UTF-8.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// defaultRetryAfter is assumed when a 429 carries no usable Retry-After.
const defaultRetryAfter = 60 * time.Second

// maxRetryAfter caps a Retry-After so that a garbled header cannot pause us for days.
const maxRetryAfter = time.Hour

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return defaultRetryAfter
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		switch {
		case secs != secs || secs < 0:
			return defaultRetryAfter
		case secs >= maxRetryAfter.Seconds():
			return maxRetryAfter
		}
		return time.Duration(secs * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), maxRetryAfter)
	}
	return defaultRetryAfter
}
