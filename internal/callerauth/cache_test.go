package callerauth

import (
	"net/http/httptest"
	"testing"
)

func TestCarriesCredential(t *testing.T) {
	t.Parallel()
	tests := []struct {
		header, value string
		mode          Mode
		carries       bool
		public        bool
	}{
		{"", "", ModeNone, false, true},
		{"", "", ModeAPIKey, false, false},
		{"", "", ModeEntra, false, false},
		{"Authorization", "Bearer x", ModeNone, true, false},
		{"authorization", "", ModeNone, true, false},
		{"X-Api-Key", "k", ModeNone, true, false},
		{"x-api-key", "k", ModeAPIKey, true, false},
		{"Cookie", "session=1", ModeNone, true, false},
		{"Accept", "application/json", ModeNone, false, true},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/query?query={__typename}", nil)
		if tt.header != "" {
			r.Header.Set(tt.header, tt.value)
		}
		if got := CarriesCredential(r); got != tt.carries {
			t.Errorf("%s: %q: CarriesCredential = %v, want %v", tt.header, tt.value, got, tt.carries)
		}
		if got := MayCachePublicly(tt.mode, r); got != tt.public {
			t.Errorf("%s: %q in mode %s: MayCachePublicly = %v, want %v", tt.header, tt.value, tt.mode, got, tt.public)
		}
	}
}
