package defender

import (
	"fmt"
	"sort"
	"strings"
)

// Cloud names where a tenant's Defender API lives and where its tokens come from.
type Cloud struct {
	// Name is the configuration value that selects the cloud (MDE_CLOUD).
	Name string
	// APIURL is the API base URL, without the /api suffix.
	APIURL string
	// Authority is the Entra ID login host; tokens come from {Authority}/{tenant}/oauth2/v2.0/token.
	Authority string
	// Scope is the client-credentials scope for the API.
	Scope string
}

// TokenURL is the client-credentials token endpoint of tenant in this cloud.
func (c Cloud) TokenURL(tenant string) string {
	return strings.TrimRight(c.Authority, "/") + "/" + tenant + "/oauth2/v2.0/token"
}

const (
	commercialAPI   = "https://api.securitycenter.microsoft.com"
	commercialScope = commercialAPI + "/.default"
	publicLogin     = "https://login.microsoftonline.com"
	usGovLogin      = "https://login.microsoftonline.us"
)

// clouds is every cloud UPSTREAM.md lists. The government clouds' scope is unconfirmed by
// Microsoft; third parties use the API host + "/.default", and MDE_SCOPE overrides it.
var clouds = map[string]Cloud{
	"commercial": {APIURL: commercialAPI, Authority: publicLogin, Scope: commercialScope},
	"us":         {APIURL: "https://us.api.security.microsoft.com", Authority: publicLogin, Scope: commercialScope},
	"eu":         {APIURL: "https://eu.api.security.microsoft.com", Authority: publicLogin, Scope: commercialScope},
	"uk":         {APIURL: "https://uk.api.security.microsoft.com", Authority: publicLogin, Scope: commercialScope},
	"au":         {APIURL: "https://au.api.security.microsoft.com", Authority: publicLogin, Scope: commercialScope},
	"swa":        {APIURL: "https://swa.api.security.microsoft.com", Authority: publicLogin, Scope: commercialScope},
	"ina":        {APIURL: "https://ina.api.security.microsoft.com", Authority: publicLogin, Scope: commercialScope},
	"gcc":        {APIURL: "https://api-gcc.securitycenter.microsoft.us", Authority: publicLogin, Scope: "https://api-gcc.securitycenter.microsoft.us/.default"},
	"gcc-high":   {APIURL: "https://api-gov.securitycenter.microsoft.us", Authority: usGovLogin, Scope: "https://api-gov.securitycenter.microsoft.us/.default"},
	"dod":        {APIURL: "https://api-gov.securitycenter.microsoft.us", Authority: usGovLogin, Scope: "https://api-gov.securitycenter.microsoft.us/.default"},
}

// cloudAliases are spellings people use for the same clouds.
var cloudAliases = map[string]string{
	"":          "commercial",
	"public":    "commercial",
	"global":    "commercial",
	"gcchigh":   "gcc-high",
	"gcc_high":  "gcc-high",
	"usgov":     "gcc-high",
	"usgovhigh": "gcc-high",
}

// LookupCloud returns the cloud named name (case-insensitive), as MDE_CLOUD spells it.
func LookupCloud(name string) (Cloud, error) {
	key := strings.ToLower(strings.TrimSpace(name))
	if alias, ok := cloudAliases[key]; ok {
		key = alias
	}
	c, ok := clouds[key]
	if !ok {
		return Cloud{}, fmt.Errorf("unknown cloud %q (known: %s)", name, strings.Join(CloudNames(), ", "))
	}
	c.Name = key
	return c, nil
}

// CloudNames lists the cloud names LookupCloud accepts, sorted.
func CloudNames() []string {
	names := make([]string, 0, len(clouds))
	for n := range clouds {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
