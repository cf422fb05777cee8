package defender

import (
	"net/url"
	"slices"
	"strings"
	"testing"
)

func TestLookupCloud(t *testing.T) {
	t.Parallel()
	const (
		tenant        = "72f988bf-86f1-41af-91ab-2d7cd011db47"
		publicToken   = "https://login.microsoftonline.com/" + tenant + "/oauth2/v2.0/token"
		usGovToken    = "https://login.microsoftonline.us/" + tenant + "/oauth2/v2.0/token"
		commercialAPI = "https://api.securitycenter.microsoft.com"
		commercialSc  = "https://api.securitycenter.microsoft.com/.default"
		gccAPI        = "https://api-gcc.securitycenter.microsoft.us"
		govAPI        = "https://api-gov.securitycenter.microsoft.us"
	)
	// Expected values from UPSTREAM.md's hosts table.
	tests := []struct {
		in, name, api, token, scope string
	}{
		{"commercial", "commercial", commercialAPI, publicToken, commercialSc},
		{"", "commercial", commercialAPI, publicToken, commercialSc},
		{"public", "commercial", commercialAPI, publicToken, commercialSc},
		{"global", "commercial", commercialAPI, publicToken, commercialSc},
		{"  Commercial ", "commercial", commercialAPI, publicToken, commercialSc},
		{"us", "us", "https://us.api.security.microsoft.com", publicToken, commercialSc},
		{"eu", "eu", "https://eu.api.security.microsoft.com", publicToken, commercialSc},
		{"EU", "eu", "https://eu.api.security.microsoft.com", publicToken, commercialSc},
		{"uk", "uk", "https://uk.api.security.microsoft.com", publicToken, commercialSc},
		{"au", "au", "https://au.api.security.microsoft.com", publicToken, commercialSc},
		{"swa", "swa", "https://swa.api.security.microsoft.com", publicToken, commercialSc},
		{"ina", "ina", "https://ina.api.security.microsoft.com", publicToken, commercialSc},
		{"gcc", "gcc", gccAPI, publicToken, gccAPI + "/.default"},
		{"gcc-high", "gcc-high", govAPI, usGovToken, govAPI + "/.default"},
		{"GCC-High", "gcc-high", govAPI, usGovToken, govAPI + "/.default"},
		{"gcchigh", "gcc-high", govAPI, usGovToken, govAPI + "/.default"},
		{"gcc_high", "gcc-high", govAPI, usGovToken, govAPI + "/.default"},
		{"usgov", "gcc-high", govAPI, usGovToken, govAPI + "/.default"},
		{"usgovhigh", "gcc-high", govAPI, usGovToken, govAPI + "/.default"},
		{"dod", "dod", govAPI, usGovToken, govAPI + "/.default"},
	}
	for _, tt := range tests {
		c, err := LookupCloud(tt.in)
		if err != nil {
			t.Errorf("LookupCloud(%q): %v", tt.in, err)
			continue
		}
		assertEqual(t, tt.in+": name", c.Name, tt.name)
		assertEqual(t, tt.in+": API URL", c.APIURL, tt.api)
		assertEqual(t, tt.in+": token URL", c.TokenURL(tenant), tt.token)
		assertEqual(t, tt.in+": scope", c.Scope, tt.scope)
	}
	// Every alias is in the table above.
	for alias := range cloudAliases {
		if !slices.ContainsFunc(tests, func(tt struct{ in, name, api, token, scope string }) bool { return tt.in == alias }) {
			t.Errorf("alias %q is not tested", alias)
		}
	}
}

func TestCloudNames(t *testing.T) {
	t.Parallel()
	names := CloudNames()
	if !slices.IsSorted(names) {
		t.Errorf("CloudNames() = %v: not sorted", names)
	}
	assertEqual(t, "count", len(names), len(clouds))
	for _, name := range names {
		c, err := LookupCloud(name)
		if err != nil {
			t.Errorf("LookupCloud(%q): %v", name, err)
			continue
		}
		assertEqual(t, "name round-trips", c.Name, name)
		for what, s := range map[string]string{"API URL": c.APIURL, "authority": c.Authority, "scope": c.Scope, "token URL": c.TokenURL("t")} {
			u, err := url.Parse(s)
			if err != nil || u.Scheme != "https" || u.Host == "" || strings.HasSuffix(s, "/") {
				t.Errorf("%s: %s %q: want an https URL without a trailing slash", name, what, s)
			}
		}
		if strings.HasSuffix(c.APIURL, "/api") {
			t.Errorf("%s: API URL %q must not include /api", name, c.APIURL)
		}
		if !strings.HasSuffix(c.Scope, "/.default") {
			t.Errorf("%s: scope %q: want .../.default", name, c.Scope)
		}
	}
	for _, alias := range []string{"public", "gcchigh", "usgov"} {
		if slices.Contains(names, alias) {
			t.Errorf("CloudNames lists alias %q", alias)
		}
	}
}

func TestLookupCloud_Unknown(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"mars", "china", "gcc high", "commercial2"} {
		_, err := LookupCloud(in)
		if err == nil {
			t.Errorf("LookupCloud(%q): no error", in)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, `"`+in+`"`) {
			t.Errorf("error %q does not name %q", msg, in)
		}
		for _, name := range CloudNames() {
			if !strings.Contains(msg, name) {
				t.Errorf("error %q does not list %q", msg, name)
			}
		}
	}
}

func TestTokenURL_TrailingSlashAuthority(t *testing.T) {
	t.Parallel()
	c := Cloud{Authority: "https://login.example.test/"}
	assertEqual(t, "token URL", c.TokenURL("contoso.onmicrosoft.com"), "https://login.example.test/contoso.onmicrosoft.com/oauth2/v2.0/token")
}
