package defender

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"30", 30 * time.Second},
		{" 30 ", 30 * time.Second},
		{"0", 0},
		{"1.5", 1500 * time.Millisecond},
		{"3599", 3599 * time.Second},
		{"3600", maxRetryAfter},
		{"86400", maxRetryAfter},
		{"1e308", maxRetryAfter},
		{"Inf", maxRetryAfter},
		{"", defaultRetryAfter},
		{"-5", defaultRetryAfter},
		{"-Inf", defaultRetryAfter},
		{"NaN", defaultRetryAfter},
		{"soon", defaultRetryAfter},
		{"1e999", defaultRetryAfter}, // out of float range: not a number
		{"Wed, 01 May 2024 12:00:45 GMT", 45 * time.Second},
		{"Wednesday, 01-May-24 12:01:00 GMT", time.Minute}, // RFC 850
		{"Wed May  1 12:02:00 2024", 2 * time.Minute},      // ANSI C asctime
		{"Wed, 01 May 2024 11:00:00 GMT", 0},               // in the past
		{"Wed, 01 May 2024 18:00:00 GMT", maxRetryAfter},
		{"Fri, 31 Dec 9999 23:59:59 GMT", maxRetryAfter},
		{"Mon, 01 Jan 0001 00:00:00 GMT", 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q): got %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestDecodeErrorBody(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 400) // 800 bytes of 2-byte runes
	tests := []struct {
		name                  string
		body                  string
		code, message, target string
	}{
		{"defender envelope", `{"error":{"code":"ResourceNotFound","message":"Machine 123 was not found","target":"43f4cb08-8fac-4b65-9db1-745c2ae65f3a"}}`,
			"ResourceNotFound", "Machine 123 was not found", "43f4cb08-8fac-4b65-9db1-745c2ae65f3a"},
		{"extra fields", `{"error":{"code":"BadRequest","message":"m","target":"t","details":[{"x":1}],"innererror":{}}, "other":1}`,
			"BadRequest", "m", "t"},
		{"empty", ``, "", "", ""},
		{"null", `null`, "", "", ""},
		{"html", `<html><body>Service Unavailable</body></html>`, "", "", ""},
		{"wrong shape", `{"error":"invalid_request"}`, "", "", ""},
		{"code as number", `{"error":{"code":42,"message":"m"}}`, "", "", ""},
		{"oauth style", `{"error":"invalid_client","error_description":"AADSTS7000215"}`, "", "", ""},
		{"long message is cut on a rune boundary", `{"error":{"code":"X","message":"a` + long + `"}}`,
			"X", "a" + strings.Repeat("é", 249) + "…", ""},
		{"long code", `{"error":{"code":"` + strings.Repeat("C", 150) + `"}}`, strings.Repeat("C", 100) + "…", "", ""},
	}
	for _, tt := range tests {
		er := decodeErrorBody([]byte(tt.body))
		assertEqual(t, tt.name+": code", er.Code, tt.code)
		assertEqual(t, tt.name+": message", er.Message, tt.message)
		assertEqual(t, tt.name+": target", er.Target, tt.target)
	}
}

func TestTruncate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		s    string
		n    int
		want string
	}{
		{"", 3, ""},
		{"abc", 3, "abc"},
		{"abcd", 3, "abc…"},
		{"aé", 2, "a…"},  // é is 2 bytes: not split
		{"日本語", 4, "日…"}, // 3-byte runes
		{"日本語", 6, "日本…"},
		{"日本語", 9, "日本語"},
	}
	for _, tt := range tests {
		got := truncate(tt.s, tt.n)
		assertEqual(t, fmt.Sprintf("truncate(%q, %d)", tt.s, tt.n), got, tt.want)
		if !utf8.ValidString(got) {
			t.Errorf("truncate(%q, %d) = %q: invalid UTF-8", tt.s, tt.n, got)
		}
	}
}

func TestErrorMessages(t *testing.T) {
	t.Parallel()
	er := &ErrorResponse{Endpoint: EndpointMachine, StatusCode: 404, Code: "ResourceNotFound", Message: "Machine x was not found", Target: "corr"}
	rl := &RateLimitError{ErrorResponse: ErrorResponse{Endpoint: EndpointMachines, StatusCode: 429, Code: "TooManyRequests"}, RetryAfter: 30 * time.Second}
	tests := []struct {
		err  error
		want string
	}{
		{er, "defender machines.get: 404 ResourceNotFound: Machine x was not found (correlation id corr)"},
		{&ErrorResponse{Endpoint: EndpointMachine, StatusCode: 502}, "defender machines.get: 502"},
		{rl, "defender machines.list: 429 TooManyRequests; retry after 30s"},
		{&UnavailableError{Endpoint: EndpointLogonUsers, Err: errors.New("connection refused")}, "defender machines.logonusers: unavailable: connection refused"},
		{&InvalidInputError{Field: "id", Value: "a/b", Reason: "bad"}, `invalid id "a/b": bad`},
		{&QuotaError{Endpoint: EndpointMachine, Err: errors.New("rate limit reached, next slot in 3s")}, "defender machines.get: rate limit reached, next slot in 3s"},
	}
	for _, tt := range tests {
		assertEqual(t, fmt.Sprintf("%T", tt.err), tt.err.Error(), tt.want)
	}

	long := &InvalidInputError{Field: "id", Value: strings.Repeat("x", 1000), Reason: "too long"}
	if n := len(long.Error()); n > 150 {
		t.Errorf("InvalidInputError with a 1000-byte value: message is %d bytes, want it cut short", n)
	}
	// A long non-ASCII value is cut between runes, not inside one (which %q would show as \xNN).
	accented := &InvalidInputError{Field: "id", Value: "a" + strings.Repeat("é", 100), Reason: "bad"}
	assertEqual(t, "cut between runes", accented.Error(), `invalid id "a`+strings.Repeat("é", 39)+`…": bad`)
}

func TestErrorChains(t *testing.T) {
	t.Parallel()
	rl := &RateLimitError{ErrorResponse: ErrorResponse{StatusCode: 429}, RetryAfter: time.Second}
	wrapped := fmt.Errorf("get machine: %w", rl)
	errorAs[*ErrorResponse](t, wrapped)
	errorAs[*RateLimitError](t, wrapped)
	assertEqual(t, "IsNotFound(429)", IsNotFound(wrapped), false)

	nf := fmt.Errorf("ctx: %w", &ErrorResponse{StatusCode: http.StatusNotFound})
	assertEqual(t, "IsNotFound(404)", IsNotFound(nf), true)
	assertEqual(t, "IsNotFound(nil)", IsNotFound(nil), false)
	assertEqual(t, "IsNotFound(other)", IsNotFound(errors.New("404")), false)

	cause := errors.New("boom")
	if !errors.Is(&UnavailableError{Err: cause}, cause) {
		t.Error("UnavailableError does not unwrap to its cause")
	}
}

func TestCheckResponse(t *testing.T) {
	t.Parallel()
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, code := range []int{200, 201, 204, 299} {
		if err := checkResponse(EndpointMachine, answer(nil, code, "{}"), now); err != nil {
			t.Errorf("status %d: got %v, want nil", code, err)
		}
	}
	for _, code := range []int{199, 300, 304, 400, 418, 500, 599} {
		er := errorAs[*ErrorResponse](t, checkResponse(EndpointMachine, answer(nil, code, ""), now))
		assertEqual(t, "status", er.StatusCode, code)
	}
	err := checkResponse(EndpointMachine, answer(nil, 429, "", "Retry-After", "Wed, 01 May 2024 12:00:10 GMT"), now)
	assertEqual(t, "RetryAfter from a date", errorAs[*RateLimitError](t, err).RetryAfter, 10*time.Second)
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{
		"", "0", "1", "30", " 120 ", "3599", "3600", "3601", "-1", "-0", "1.5", "0.0001", "1e9", "1e308", "1e999",
		"NaN", "Inf", "-Inf", "+Inf", "0x1p10", "1_000", "9223372036854775807", "18446744073709551616",
		"Wed, 21 Oct 2015 07:28:00 GMT", "Wed, 01 May 2024 12:00:45 GMT", "Wednesday, 01-May-24 12:01:00 GMT",
		"Wed May  1 12:02:00 2024", "Fri, 31 Dec 9999 23:59:59 GMT", "Mon, 01 Jan 0001 00:00:00 GMT", "soon", "\x00",
	} {
		f.Add(s, int64(1714564800)) // 2024-05-01T12:00:00Z
	}
	f.Add("Wed, 21 Oct 2015 07:28:00 GMT", int64(-62135596800)) // now at year 1
	f.Add("Fri, 31 Dec 9999 23:59:59 GMT", int64(253402300799))
	f.Fuzz(func(t *testing.T, v string, nowUnix int64) {
		now := time.Unix(nowUnix, 0)
		d := parseRetryAfter(v, now)
		if d < 0 || d > maxRetryAfter {
			t.Errorf("parseRetryAfter(%q, %v) = %v: want within [0, %v]", v, now, d, maxRetryAfter)
		}
	})
}

func FuzzDecodeErrorBody(f *testing.F) {
	for _, s := range []string{
		``, `null`, `{}`, `[]`, `"x"`, `{"error":null}`, `{"error":{}}`, `{"error":"invalid_request"}`,
		`{"error":{"code":"ResourceNotFound","message":"Machine 123 was not found","target":"43f4cb08-8fac-4b65-9db1-745c2ae65f3a"}}`,
		`{"error":{"code":"TooManyRequests","message":"Rate limit is exceeded. Try again in 17 seconds.","target":"c"}}`,
		`{"error":{"code":1,"message":true}}`,
		`{"error":{"code":"X","message":"` + strings.Repeat("é", 300) + `"}}`,
		`{"error":{"code":"` + strings.Repeat("日", 40) + `","target":"` + strings.Repeat("\\u00e9", 60) + `"}}`,
		`{"error":{"message":"\ud800 lone surrogate \xff\xfe"}}`,
		`<!DOCTYPE html><html><body>502 Bad Gateway</body></html>`,
		"\x00\x01\x02",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		er := decodeErrorBody(body)
		for _, field := range []struct {
			name  string
			value string
			limit int
		}{{"code", er.Code, 100}, {"message", er.Message, 500}, {"target", er.Target, 100}} {
			if len(field.value) > field.limit+len("…") {
				t.Errorf("%s is %d bytes, want at most %d", field.name, len(field.value), field.limit+len("…"))
			}
			// encoding/json yields valid UTF-8; cutting must not break it.
			if !utf8.ValidString(field.value) {
				t.Errorf("%s %q: invalid UTF-8", field.name, field.value)
			}
		}
		_ = er.Error()
	})
}
