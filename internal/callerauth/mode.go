package callerauth

import (
	"fmt"
	"net"
	"strings"
)

// Mode is how callers sign in (the AUTH_MODE setting).
type Mode string

// The modes.
const (
	// ModeNone authenticates nobody: every caller is an anonymous principal known by its
	// address, and presented credentials are ignored. Meant for a loopback ADDR (see CheckMode).
	ModeNone Mode = "none"
	// ModeAPIKey admits callers presenting one of the configured API keys (API_KEYS,
	// API_KEYS_FILE) as X-Api-Key or Authorization: Bearer.
	ModeAPIKey Mode = "apikey"
	// ModeEntra admits callers presenting a Microsoft Entra ID access token for this service's
	// API as Authorization: Bearer, validated locally (AUTH_TENANT_ID, AUTH_ISSUER,
	// AUTH_AUDIENCE, AUTH_REQUIRED_ROLE).
	ModeEntra Mode = "entra"
)

// ParseMode parses the AUTH_MODE setting: "none", "apikey" or "entra", in any case and with
// surrounding spaces; "" is ModeNone, the default. The error names AUTH_MODE.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToLower(strings.TrimSpace(s))); m {
	case "":
		return ModeNone, nil
	case ModeNone, ModeAPIKey, ModeEntra:
		return m, nil
	}
	return "", fmt.Errorf("AUTH_MODE %q: want none, apikey or entra", s)
}

// CheckMode is the start-up rule for serving without authentication. With ModeNone on an ADDR
// that only this machine can reach (127.0.0.0/8, ::1, localhost) it returns nothing. On any
// other ADDR (including ":8080" and "0.0.0.0:8080", which listen on every interface) it returns
// an error naming AUTH_MODE and ADDR, unless AUTH_MODE=none was set explicitly (explicit is
// true when the variable or flag was given, whatever the default): then it returns a warning for
// the start-up log instead. Other modes always pass. An ADDR that is not host:port is an error
// naming ADDR.
func CheckMode(mode Mode, explicit bool, addr string) (warning string, err error) {
	if mode != ModeNone {
		return "", nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("ADDR %q: not host:port: %w", addr, err)
	}
	if IsLoopbackHost(host) {
		return "", nil
	}
	where := host
	if where == "" || where == "0.0.0.0" || where == "::" {
		where = "every network interface"
	}
	if !explicit {
		return "", fmt.Errorf("AUTH_MODE: ADDR %q listens on %s and no AUTH_MODE is set: "+
			"set AUTH_MODE=apikey or AUTH_MODE=entra so that callers sign in, "+
			"or set AUTH_MODE=none explicitly to let anyone who reaches the port use the tenant's Defender access", addr, where)
	}
	return fmt.Sprintf("AUTH_MODE=none on ADDR %q (%s): anyone who can reach this port uses the tenant's Defender access without signing in", addr, where), nil
}

// IsLoopbackHost reports whether host (a name or an IP address, without port or brackets) can
// only be reached from this machine: an address in 127.0.0.0/8, ::1, or the name localhost
// (RFC 6761 section 6.3; no other name is resolved). The empty host, 0.0.0.0 and :: mean every
// interface and are not loopback.
func IsLoopbackHost(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
