package callerauth

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"github.com/mdegraph/mdegraph/internal/principal"
	"github.com/mdegraph/mdegraph/internal/quietlog"
)

// Entra ID's public cloud: the authority and the issuers of its access tokens for tenant %s
// (https://learn.microsoft.com/entra/identity-platform/access-tokens#validate-the-issuer).
const (
	entraAuthority = "https://login.microsoftonline.com"
	issuerV1Format = "https://sts.windows.net/%s/"
	issuerV2Format = entraAuthority + "/%s/v2.0"
)

// Defaults of EntraOptions.
const (
	DefaultFetchTimeout       = 10 * time.Second
	DefaultLeeway             = 2 * time.Minute
	DefaultKeyRefreshInterval = time.Hour
	DefaultUnknownKeyRefresh  = time.Minute
)

// maxDiscoveryBytes bounds the OpenID discovery document (Entra ID's is about 1.7 kB).
const maxDiscoveryBytes = 1 << 20

// EntraSettings are the raw values of the settings of ModeEntra, as configured.
type EntraSettings struct {
	// TenantID is AUTH_TENANT_ID: the directory (tenant) id, a GUID, or (with AUTH_ISSUER
	// empty) one of the tenant's domains. The wiring defaults it to MDE_TENANT_ID, the tenant
	// whose Defender the service reads, which may be either.
	TenantID string
	// Issuer is AUTH_ISSUER: "" for Entra ID's public cloud, else the one issuer to accept
	// (see ParseIssuer).
	Issuer string
	// Audience is AUTH_AUDIENCE: comma-separated audiences (see ParseAudiences).
	Audience string
	// RequiredRole is AUTH_REQUIRED_ROLE: an app role or scope every caller needs, "" for none.
	RequiredRole string
}

// Parse checks the settings and returns the options of NewEntraVerifier (its HTTP client,
// logger and timing fields left zero for the defaults). The error joins one error per bad
// setting, each naming its variable.
func (s EntraSettings) Parse() (EntraOptions, error) {
	var errs []error
	tenant, err := ParseTenantID(s.TenantID)
	errs = append(errs, err)
	issuer, err := ParseIssuer(s.Issuer)
	errs = append(errs, err)
	auds, err := ParseAudiences(s.Audience)
	errs = append(errs, err)
	role, err := ParseRequiredRole(s.RequiredRole)
	errs = append(errs, err)
	if tenant != "" && issuer != "" && !isGUID(tenant) {
		errs = append(errs, fmt.Errorf("AUTH_TENANT_ID %q: with AUTH_ISSUER set, give the tenant id (a GUID), not a domain", s.TenantID))
	}
	if err := errors.Join(errs...); err != nil {
		return EntraOptions{}, err
	}
	return EntraOptions{TenantID: tenant, Issuer: issuer, Audiences: auds, RequiredRole: role}, nil
}

// ParseTenantID parses AUTH_TENANT_ID: a tenant id GUID or one of the tenant's domain names
// (contoso.onmicrosoft.com), returned in lower case. NewEntraVerifier learns a domain's tenant id
// from Entra ID's discovery document, since the tid claim of every token is checked against it
// and a tid is always a GUID. The multi-tenant aliases (common, organizations, consumers) are
// refused: they would let any tenant's tokens in.
func ParseTenantID(s string) (string, error) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "":
		return "", errors.New("AUTH_TENANT_ID: required with AUTH_MODE=entra: the directory (tenant) id, a GUID (Entra admin center, Overview)")
	case "common", "organizations", "consumers":
		return "", fmt.Errorf("AUTH_TENANT_ID %q: a multi-tenant alias; give the tenant's own id (a GUID), so that tokens of other tenants are refused", s)
	}
	if !isGUID(s) && !isDomain(s) {
		return "", fmt.Errorf("AUTH_TENANT_ID %q: neither a tenant id GUID like 72f988bf-86f1-41af-91ab-2d7cd011db47 nor a domain like contoso.onmicrosoft.com", s)
	}
	return strings.ToLower(s), nil
}

// isDomain reports whether s is a DNS name of two labels or more: letters, digits and inner
// hyphens, 63 characters a label at most.
func isDomain(s string) bool {
	labels := strings.Split(s, ".")
	if len(labels) < 2 || len(s) > 253 {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range l {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// ParseIssuer parses AUTH_ISSUER. "" (the default) means Entra ID's public cloud: tokens with
// the tenant's v1 issuer https://sts.windows.net/{tid}/ or v2 issuer
// https://login.microsoftonline.com/{tid}/v2.0 are accepted, and the keys are discovered from the
// v2 one. Any other value is the one issuer accepted, compared exactly (a national cloud, the
// simulator): an absolute https:// URL, or http:// on a loopback host (127.0.0.0/8, ::1,
// localhost) for the simulator and tests, without query or fragment, whose
// /.well-known/openid-configuration is the OpenID discovery document. Multi-tenant issuers
// (common, organizations, consumers, {tenantid}) are refused: the tenant is pinned.
func ParseIssuer(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", nil
	}
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("AUTH_ISSUER %q: not an issuer URL like https://login.microsoftonline.com/{tenant id}/v2.0", s)
	}
	if err := checkFetchURL(u); err != nil {
		return "", fmt.Errorf("AUTH_ISSUER %q: %w", s, err)
	}
	for seg := range strings.SplitSeq(strings.ToLower(u.Path), "/") {
		switch seg {
		case "common", "organizations", "consumers", "{tenantid}", "%7btenantid%7d":
			return "", fmt.Errorf("AUTH_ISSUER %q: a multi-tenant issuer; give the tenant's own issuer, such as https://login.microsoftonline.com/{tenant id}/v2.0", s)
		}
	}
	return s, nil
}

// checkFetchURL allows https, and http only to a loopback host.
func checkFetchURL(u *url.URL) error {
	switch {
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && IsLoopbackHost(u.Hostname()):
		return nil
	case u.Scheme == "http":
		return errors.New("http:// is allowed only on a loopback host (the simulator, tests); use https://")
	}
	return fmt.Errorf("scheme %q: want https://", u.Scheme)
}

// ParseAudiences parses AUTH_AUDIENCE: comma-separated audiences, at least one, each the API's
// application (client) id (a GUID) or an absolute URI such as its App ID URI api://mdegraph. A
// token is accepted when its aud is one of them. Entra ID writes the client id into v2 tokens
// and the App ID URI into v1 tokens, so list both when clients may get either.
func ParseAudiences(s string) ([]string, error) {
	var auds []string
	for a := range strings.SplitSeq(s, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if u, err := url.Parse(a); !isGUID(a) && (err != nil || !u.IsAbs()) {
			return nil, fmt.Errorf("AUTH_AUDIENCE: %q is neither an application (client) id (a GUID) nor an App ID URI such as api://mdegraph", a)
		}
		if !slices.Contains(auds, a) {
			auds = append(auds, a)
		}
	}
	if len(auds) == 0 {
		return nil, errors.New("AUTH_AUDIENCE: required with AUTH_MODE=entra: the API's application (client) id and/or App ID URI (api://...), comma-separated")
	}
	return auds, nil
}

// ParseRequiredRole parses AUTH_REQUIRED_ROLE: "" (no role needed) or the value of an app role
// (roles claim) or delegated scope (scp claim) every caller's token must carry, such as
// Mdegraph.Read; one word, no spaces or commas.
func ParseRequiredRole(s string) (string, error) {
	s = strings.TrimSpace(s)
	if strings.ContainsAny(s, " \t,\"") {
		return "", fmt.Errorf("AUTH_REQUIRED_ROLE %q: one app role or scope value, without spaces, commas or quotes", s)
	}
	return s, nil
}

// isGUID reports whether s is a GUID in 8-4-4-4-12 hex digits.
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// EntraOptions configure an EntraVerifier. TenantID and Audiences are required; EntraSettings.Parse
// fills the first four fields from the settings.
type EntraOptions struct {
	// TenantID is the tenant whose tokens are accepted (the tid claim), in lower case: its id,
	// or with Issuer empty one of its domains, resolved to the id by the discovery document.
	TenantID string
	// Issuer is "" for Entra ID's public cloud or the one issuer accepted (ParseIssuer).
	Issuer string
	// Audiences are the accepted aud values (ParseAudiences).
	Audiences []string
	// RequiredRole, if not empty, must be in the roles claim or the space-separated scp claim.
	RequiredRole string

	// HTTPClient fetches the discovery document and the key set; nil means a client with
	// FetchTimeout as its timeout.
	HTTPClient *http.Client
	// FetchTimeout bounds each fetch of the discovery document or the key set (default 10s).
	FetchTimeout time.Duration
	// Leeway is the clock skew allowed on exp, nbf and iat (default 2 minutes).
	Leeway time.Duration
	// KeyRefreshInterval is how often the key set is fetched in the background (default 1h).
	KeyRefreshInterval time.Duration
	// UnknownKeyRefresh is the least time between two fetches of the key set caused by a token
	// whose kid is not in it (default 1 minute): a token signed with a newly rotated key is
	// accepted after one fetch, and a flood of tokens with made-up kids costs one fetch a
	// minute, not one per request.
	UnknownKeyRefresh time.Duration
	// Now is the clock for exp, nbf and iat; nil means time.Now.
	Now func() time.Time
	// Logger receives the start-up line and the key-set refresh failures; nil discards.
	Logger *slog.Logger
}

// EntraVerifier validates Microsoft Entra ID access tokens for this service's API, locally:
// the RS256 signature against the tenant's published signing keys, the issuer, the audience,
// exp, nbf and iat within the leeway, the tenant, and the required role. It is safe for
// concurrent use.
type EntraVerifier struct {
	keys      keyfunc.Keyfunc
	tenant    string
	issuers   []string
	audiences []string
	role      string
	parser    *jwt.Parser
}

var _ TokenVerifier = (*EntraVerifier)(nil)

// NewEntraVerifier discovers the tenant's signing keys and returns a verifier of its tokens. It
// fetches {issuer}/.well-known/openid-configuration (OpenID Connect Discovery 1.0 section 4),
// checks that its issuer is the expected one, and fetches its jwks_uri, each fetch bounded by
// FetchTimeout; any failure is returned as an error naming AUTH_ISSUER (or AUTH_TENANT_ID for
// the public cloud) and the URL, so that a wrong setting stops the start. On success it logs one
// line with the issuers, audiences and the number of keys.
//
// ctx must be the application's long-lived context, not a request's: the key set is refreshed
// in the background every KeyRefreshInterval until ctx ends.
func NewEntraVerifier(ctx context.Context, opts EntraOptions) (*EntraVerifier, error) {
	switch {
	case isGUID(opts.TenantID):
	case opts.Issuer == "" && isDomain(opts.TenantID):
	default:
		return nil, fmt.Errorf("AUTH_TENANT_ID %q: not a tenant id GUID (or, with AUTH_ISSUER empty, a domain)", opts.TenantID)
	}
	if len(opts.Audiences) == 0 {
		return nil, errors.New("AUTH_AUDIENCE: no audience configured")
	}
	opts.FetchTimeout = cmp.Or(opts.FetchTimeout, DefaultFetchTimeout)
	opts.Leeway = cmp.Or(opts.Leeway, DefaultLeeway)
	opts.KeyRefreshInterval = cmp.Or(opts.KeyRefreshInterval, DefaultKeyRefreshInterval)
	opts.UnknownKeyRefresh = cmp.Or(opts.UnknownKeyRefresh, DefaultUnknownKeyRefresh)
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: opts.FetchTimeout}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tenant := strings.ToLower(opts.TenantID)

	setting, issuer := "AUTH_ISSUER", opts.Issuer
	issuers := []string{issuer}
	if issuer == "" {
		setting, issuer = "AUTH_TENANT_ID", fmt.Sprintf(issuerV2Format, tenant)
		issuers = []string{issuer, fmt.Sprintf(issuerV1Format, tenant)}
	}
	discoveryURL := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	doc, err := discover(ctx, opts.HTTPClient, discoveryURL, opts.FetchTimeout)
	if err != nil {
		return nil, fmt.Errorf("%s: OpenID discovery at %s: %w", setting, discoveryURL, err)
	}
	if !isGUID(tenant) {
		// A domain: the discovery document's issuer holds the tenant id.
		id, ok := strings.CutPrefix(doc.Issuer, entraAuthority+"/")
		if id, ok = strings.CutSuffix(id, "/v2.0"); !ok || !isGUID(id) {
			return nil, fmt.Errorf("%s %q: the discovery document at %s names the issuer %q, which holds no tenant id", setting, tenant, discoveryURL, doc.Issuer)
		}
		log.Info("caller sign-in: AUTH_TENANT_ID is a domain; Entra ID gives its tenant id", "domain", tenant, "tenant", strings.ToLower(id))
		tenant = strings.ToLower(id)
		issuer = fmt.Sprintf(issuerV2Format, tenant)
		issuers = []string{issuer, fmt.Sprintf(issuerV1Format, tenant)}
	}
	if got := strings.ReplaceAll(doc.Issuer, "{tenantid}", tenant); got != issuer {
		return nil, fmt.Errorf("%s: the discovery document at %s names the issuer %q, not %q", setting, discoveryURL, doc.Issuer, issuer)
	}
	jwksURL, err := url.Parse(doc.JWKSURI)
	if err == nil && !jwksURL.IsAbs() {
		err = errors.New("not an absolute URL")
	}
	if err == nil {
		err = checkFetchURL(jwksURL)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: the discovery document at %s has jwks_uri %q: %w", setting, discoveryURL, doc.JWKSURI, err)
	}

	refreshLog := quietlog.New(time.Minute)
	failFirst := false
	kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{doc.JWKSURI}, keyfunc.Override{
		Client:                    opts.HTTPClient,
		HTTPTimeout:               opts.FetchTimeout,
		NoErrorReturnFirstHTTPReq: &failFirst,
		RefreshInterval:           opts.KeyRefreshInterval,
		RefreshUnknownKID:         rate.NewLimiter(rate.Every(opts.UnknownKeyRefresh), 1),
		// Bounds both the wait for the rate limiter and the refresh itself: a token with an
		// unknown kid within UnknownKeyRefresh of the last refresh is refused at once (the
		// wait would exceed this), not held until the next one.
		RateLimitWaitMax: opts.FetchTimeout,
		RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
			return func(ctx context.Context, err error) {
				lvl, lowered := refreshLog.Level(u, slog.LevelWarn)
				log.Log(ctx, lvl, "caller sign-in: refreshing Entra ID's signing keys failed; tokens signed with a new key are refused until it works",
					"jwks_uri", u, "err", err, "repeats", lowered)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("%s: fetching the signing keys at %s: %w", setting, doc.JWKSURI, err)
	}
	all, err := kf.Storage().KeyReadAll(ctx)
	if err == nil && len(all) == 0 {
		err = errors.New("the key set holds no key")
	}
	if err != nil {
		return nil, fmt.Errorf("%s: the signing keys at %s: %w", setting, doc.JWKSURI, err)
	}

	v := &EntraVerifier{
		keys:      kf,
		tenant:    tenant,
		issuers:   issuers,
		audiences: slices.Clone(opts.Audiences),
		role:      opts.RequiredRole,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodRS256.Alg()}),
			jwt.WithAudience(opts.Audiences...),
			jwt.WithLeeway(opts.Leeway),
			jwt.WithTimeFunc(opts.Now),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
		),
	}
	log.Info("caller sign-in: Entra ID access tokens, signing keys loaded",
		"tenant", tenant, "issuers", issuers, "audiences", opts.Audiences, "required_role", opts.RequiredRole,
		"jwks_uri", doc.JWKSURI, "keys", len(all))
	return v, nil
}

// discoveryDocument holds the members of the OpenID Provider Metadata this package reads.
type discoveryDocument struct {
	Issuer  string `json:"issuer"`
	JWKSURI string `json:"jwks_uri"`
}

func discover(ctx context.Context, client *http.Client, u string, timeout time.Duration) (discoveryDocument, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return discoveryDocument{}, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return discoveryDocument{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDiscoveryBytes))
	if err != nil {
		return discoveryDocument{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return discoveryDocument{}, fmt.Errorf("HTTP %d: %s", resp.StatusCode, clip(string(body), 200))
	}
	var doc discoveryDocument
	if err := json.Unmarshal(body, &doc); err != nil {
		return discoveryDocument{}, fmt.Errorf("not an OpenID discovery document: %w", err)
	}
	if doc.Issuer == "" || doc.JWKSURI == "" {
		return discoveryDocument{}, errors.New("the discovery document has no issuer or no jwks_uri")
	}
	return doc, nil
}

// entraClaims are the claims of an Entra ID access token this package reads
// (https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference).
type entraClaims struct {
	jwt.RegisteredClaims
	TenantID          string   `json:"tid"`
	ObjectID          string   `json:"oid"`
	Scope             string   `json:"scp"`
	Roles             []string `json:"roles"`
	Name              string   `json:"name"`
	PreferredUsername string   `json:"preferred_username"` // v2
	UPN               string   `json:"upn"`                // v1
	IDType            string   `json:"idtyp"`              // "app" for app-only tokens, when configured
	AuthorizedParty   string   `json:"azp"`                // v2: the client application
	AppID             string   `json:"appid"`              // v1: the client application
}

// Verify validates token and returns its principal: KindUser with TenantID the tid and ObjectID
// the oid (both lower-cased), and Name the preferred_username, upn or name claim (for log lines).
// An app-only token (a daemon with the client-credentials grant: idtyp "app", or roles without
// scp) is accepted too, as the service principal's oid, with Name "app:{client id}". The error is
// an *Error: 401 for a token that is malformed, not RS256, badly signed, signed with a key the
// tenant does not publish (after at most one key-set refresh per UnknownKeyRefresh), expired, not
// yet valid, for another audience, issuer or tenant, or without tid, oid, or either scp or roles
// (then it is no access token for an API); 403 when it lacks the required role.
func (v *EntraVerifier) Verify(ctx context.Context, token string) (principal.Principal, error) {
	var c entraClaims
	tok, err := v.parser.ParseWithClaims(token, &c, v.keys.KeyfuncCtx(ctx))
	if err != nil {
		return principal.Principal{}, v.refusal(tok, &c, err)
	}
	switch {
	case c.TenantID == "" || c.ObjectID == "":
		return principal.Principal{}, unauthenticated(ReasonClaims, "the token has no tid or no oid claim: it does not identify a person or application in a tenant")
	case !strings.EqualFold(c.TenantID, v.tenant):
		return principal.Principal{}, unauthenticated(ReasonTenant, fmt.Sprintf("the token was issued by another tenant (tid %s); this service accepts tenant %s", clip(c.TenantID, 64), v.tenant))
	case !slices.Contains(v.issuers, c.Issuer):
		return principal.Principal{}, unauthenticated(ReasonIssuer, fmt.Sprintf("the token's issuer %q is not one this service accepts (%s)", clip(c.Issuer, 200), strings.Join(v.issuers, ", ")))
	case c.Scope == "" && len(c.Roles) == 0:
		return principal.Principal{}, unauthenticated(ReasonClaims, "the token has neither scp nor roles: it is not an access token for this API (an ID token?)")
	}
	if v.role != "" && !slices.Contains(c.Roles, v.role) && !slices.Contains(strings.Fields(c.Scope), v.role) {
		return principal.Principal{}, &Error{Status: http.StatusForbidden, Reason: ReasonRole, Message: fmt.Sprintf(
			"signed in, but without the app role %s: ask an administrator to assign it to you on this API's enterprise application in Entra ID", v.role)}
	}
	p := principal.Principal{Kind: principal.KindUser, TenantID: v.tenant, ObjectID: strings.ToLower(c.ObjectID)}
	if c.IDType == "app" || (c.Scope == "" && len(c.Roles) > 0) {
		p.Name = "app:" + cmp.Or(c.AuthorizedParty, c.AppID)
	} else {
		p.Name = cmp.Or(c.PreferredUsername, c.UPN, c.Name)
	}
	return p, nil
}

// refusal turns a parse error into an *Error. Claims errors come only after the signature
// verified, so the claims they quote are Entra ID's, not an attacker's.
func (v *EntraVerifier) refusal(tok *jwt.Token, c *entraClaims, err error) *Error {
	if errors.Is(err, jwt.ErrTokenMalformed) {
		return unauthenticated(ReasonMalformed, "the bearer token is not a well-formed JWT")
	}
	if tok != nil {
		if alg, _ := tok.Header["alg"].(string); alg != jwt.SigningMethodRS256.Alg() {
			return unauthenticated(ReasonAlgorithm, fmt.Sprintf("the token is signed with alg %q; this service accepts only RS256", clip(alg, 16)))
		}
	}
	switch {
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// The key function failed: the kid is not in the key set, even after a refresh, or a
		// refresh was not allowed yet (once per UnknownKeyRefresh) or failed.
		return unauthenticated(ReasonUnknownKey, "the token is signed with a key (kid) that the tenant's published signing keys do not include")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return unauthenticated(ReasonSignature, "the token's signature does not verify against the tenant's signing keys")
	case errors.Is(err, jwt.ErrTokenExpired):
		return unauthenticated(ReasonExpired, fmt.Sprintf("the token expired at %s: get a new one", numericDate(c.ExpiresAt)))
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return unauthenticated(ReasonNotYetValid, fmt.Sprintf("the token is not valid before %s (check this machine's clock)", numericDate(c.NotBefore)))
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return unauthenticated(ReasonNotYetValid, fmt.Sprintf("the token was issued in the future, at %s (check this machine's clock)", numericDate(c.IssuedAt)))
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return unauthenticated(ReasonAudience, fmt.Sprintf("the token is for audience %q; this service accepts %s (AUTH_AUDIENCE)",
			clip(strings.Join(c.Audience, " "), 200), strings.Join(v.audiences, ", ")))
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return unauthenticated(ReasonClaims, "the token has no exp claim")
	}
	return unauthenticated(ReasonClaims, "the token's claims are invalid")
}

func numericDate(d *jwt.NumericDate) string {
	if d == nil {
		return "(unknown)"
	}
	return d.UTC().Format(time.RFC3339)
}

// clip shortens s to at most n bytes, at a rune boundary, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}
