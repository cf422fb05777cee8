package callerauth

import (
	"strings"
	"testing"
)

func TestParseMode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want Mode
		err  bool
	}{
		{"", ModeNone, false}, {"none", ModeNone, false}, {" APIKEY ", ModeAPIKey, false}, {"Entra", ModeEntra, false},
		{"oidc", "", true}, {"api-key", "", true},
	}
	for _, tt := range tests {
		got, err := ParseMode(tt.in)
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("ParseMode(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.err)
		}
		if err != nil && !strings.Contains(err.Error(), "AUTH_MODE") {
			t.Errorf("ParseMode(%q) error %q does not name AUTH_MODE", tt.in, err)
		}
	}
}

func TestCheckMode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mode     Mode
		explicit bool
		addr     string
		warn     bool
		err      string // substring; "" no error
	}{
		{ModeNone, false, "127.0.0.1:8080", false, ""},
		{ModeNone, false, "127.1.2.3:8080", false, ""},
		{ModeNone, false, "[::1]:8080", false, ""},
		{ModeNone, false, "localhost:8080", false, ""},
		{ModeNone, false, "LOCALHOST.:8080", false, ""},
		{ModeNone, false, ":8080", false, "every network interface"},
		{ModeNone, false, "0.0.0.0:8080", false, "every network interface"},
		{ModeNone, false, "[::]:8080", false, "every network interface"},
		{ModeNone, false, "192.0.2.10:8080", false, "AUTH_MODE"},
		{ModeNone, false, "mdegraph.internal:8080", false, "AUTH_MODE"},
		{ModeNone, true, ":8080", true, ""},
		{ModeNone, true, "192.0.2.10:8080", true, ""},
		{ModeNone, true, "127.0.0.1:8080", false, ""},
		{ModeAPIKey, false, ":8080", false, ""},
		{ModeEntra, false, "0.0.0.0:443", false, ""},
		{ModeNone, false, "8080", false, "ADDR"},
	}
	for _, tt := range tests {
		warning, err := CheckMode(tt.mode, tt.explicit, tt.addr)
		if (warning != "") != tt.warn {
			t.Errorf("CheckMode(%s, %v, %q) warning = %q, want one: %v", tt.mode, tt.explicit, tt.addr, warning, tt.warn)
		}
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("CheckMode(%s, %v, %q) = %v, want no error", tt.mode, tt.explicit, tt.addr, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("CheckMode(%s, %v, %q) = %v, want an error mentioning %q", tt.mode, tt.explicit, tt.addr, err, tt.err)
		}
		if err != nil && tt.err != "ADDR" && !strings.Contains(err.Error(), "AUTH_MODE=none") {
			t.Errorf("CheckMode error %q does not say how to allow it", err)
		}
	}
}

func TestIsLoopbackHost(t *testing.T) {
	t.Parallel()
	for host, want := range map[string]bool{
		"127.0.0.1": true, "127.255.0.9": true, "::1": true, "localhost": true, "LocalHost": true, "::ffff:127.0.0.1": true,
		"": false, "0.0.0.0": false, "::": false, "10.0.0.1": false, "localhost.example.com": false, "127.0.0.1.nip.io": false, "[::1]": false,
	} {
		if got := IsLoopbackHost(host); got != want {
			t.Errorf("IsLoopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}
