package callerauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/mdegraph/mdegraph/internal/principal"
	"github.com/mdegraph/mdegraph/internal/quietlog"
)

// TokenVerifier validates a bearer token and says whom it identifies. The error should be an
// *Error; any other error is answered 401 invalid_token. *EntraVerifier implements it.
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (principal.Principal, error)
}

// DefaultRealm is the realm of WWW-Authenticate challenges when Options.Realm is empty.
const DefaultRealm = "mdegraph"

// MaxCredentialBytes bounds a presented credential. Entra ID access tokens are a few kilobytes
// (more with many group claims); anything longer is refused as malformed before any work.
const MaxCredentialBytes = 32 << 10

// Options configure an Authenticator.
type Options struct {
	// Mode is AUTH_MODE (ParseMode).
	Mode Mode
	// APIKeys are the accepted keys (LoadAPIKeys); ModeAPIKey needs at least one.
	APIKeys []APIKey
	// Tokens validates bearer tokens in ModeEntra (NewEntraVerifier); required there.
	Tokens TokenVerifier
	// Optional lets requests without any credential through as anonymous principals, while a
	// request that presents one still has it checked (401 if bad) and becomes its caller. It is
	// meant for the demo: anyone may use the playground, and a demo person signed in with the
	// simulated Entra ID is served as that person, with that person's Defender view. It has no
	// effect in ModeNone.
	Optional bool
	// Realm is the realm of WWW-Authenticate challenges; "" means DefaultRealm.
	Realm string
	// Logger receives one warning per refused request (reason, status, client address; never
	// the credential), repeats of a reason from one address within a minute at debug level;
	// nil discards.
	Logger *slog.Logger
	// OnRefusal, if set, is called once per refused request with its reason, for a metric.
	OnRefusal func(Reason)
}

// Authenticator establishes who calls: it puts a principal.Principal in each request's context
// (principal.NewContext) and, in ModeEntra, the caller's token (principal.WithAssertion) for the
// on-behalf-of exchange; or it refuses the request before it goes further. It is safe for
// concurrent use.
type Authenticator struct {
	opts    Options
	log     *slog.Logger
	repeats *quietlog.Repeats
}

// New checks opts and returns an Authenticator. Errors: an unknown Mode (naming AUTH_MODE),
// ModeAPIKey without keys (naming API_KEYS), ModeEntra without Tokens.
func New(opts Options) (*Authenticator, error) {
	switch opts.Mode {
	case ModeNone:
	case ModeAPIKey:
		if len(opts.APIKeys) == 0 {
			return nil, errors.New("API_KEYS: AUTH_MODE=apikey needs at least one key in API_KEYS or API_KEYS_FILE")
		}
	case ModeEntra:
		if opts.Tokens == nil {
			return nil, errors.New("AUTH_MODE=entra needs a token verifier (callerauth.NewEntraVerifier)")
		}
	default:
		return nil, fmt.Errorf("AUTH_MODE %q: want none, apikey or entra", opts.Mode)
	}
	if opts.Realm == "" {
		opts.Realm = DefaultRealm
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Authenticator{opts: opts, log: log, repeats: quietlog.New(time.Minute)}, nil
}

// Hint says how to send a credential in this mode, for the playground and for the message of a
// request that sent none; "" in ModeNone.
func (a *Authenticator) Hint() string {
	switch a.opts.Mode {
	case ModeAPIKey:
		return "send your API key in the header X-Api-Key: <key> (or Authorization: Bearer <key>)"
	case ModeEntra:
		return "sign in with Microsoft Entra ID and send the access token for this API in the header Authorization: Bearer <token>"
	}
	return ""
}

// Handler returns next behind authentication. A refused request is answered here: 401 with
// WWW-Authenticate: Bearer realm="..." (plus error="invalid_token" or "invalid_request" and
// error_description when a credential was presented, RFC 6750 section 3) and the GraphQL error
// UNAUTHENTICATED, or 403 with error="insufficient_scope" and FORBIDDEN; the body is
// {"errors":[{"message":...,"extensions":{"code":...,"reason":...}}]} as application/json,
// Cache-Control: no-store. next never sees it, so it spends no quota. OPTIONS requests (CORS
// preflights, which carry no credential) pass as anonymous.
func (a *Authenticator) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, assertion, err := a.Authenticate(r)
		if err != nil {
			a.refuse(w, r, err)
			return
		}
		ctx := principal.NewContext(r.Context(), p)
		if assertion != "" {
			ctx = principal.WithAssertion(ctx, assertion)
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// Authenticate returns the caller of r, and in ModeEntra the token it presented, or an *Error.
// Principals carry the client address (r.RemoteAddr without the port).
func (a *Authenticator) Authenticate(r *http.Request) (principal.Principal, principal.Assertion, error) {
	anon := principal.Anonymous(r.RemoteAddr)
	if a.opts.Mode == ModeNone || r.Method == http.MethodOptions {
		return anon, "", nil
	}
	cred, refused := a.credential(r.Header)
	switch {
	case refused != nil:
		return principal.Principal{}, "", refused
	case cred == "" && a.opts.Optional:
		return anon, "", nil
	case cred == "":
		return principal.Principal{}, "", unauthenticated(ReasonMissing, "no credential: "+a.Hint())
	}
	if a.opts.Mode == ModeAPIKey {
		k, ok := matchAPIKey(a.opts.APIKeys, cred)
		if !ok {
			return principal.Principal{}, "", unauthenticated(ReasonUnknownAPIKey, "the API key is not one this service accepts")
		}
		return principal.Principal{Kind: principal.KindAPIKey, Name: k.Name, Addr: anon.Addr}, "", nil
	}
	p, err := a.opts.Tokens.Verify(r.Context(), cred)
	if err != nil {
		if _, ok := errors.AsType[*Error](err); !ok {
			err = unauthenticated(ReasonSignature, "the bearer token is not valid")
		}
		return principal.Principal{}, "", err
	}
	p.Addr = anon.Addr
	return p, principal.Assertion(cred), nil
}

// credential returns the credential r presents in this mode ("" for none): an API key from
// X-Api-Key or Authorization: Bearer (ModeAPIKey), a token from Authorization: Bearer
// (ModeEntra).
func (a *Authenticator) credential(h http.Header) (string, *Error) {
	bearer, err := authorizationBearer(h)
	if err != nil {
		return "", err
	}
	keys := h.Values("X-Api-Key")
	switch {
	case len(keys) == 0:
		return bearer, nil
	case a.opts.Mode == ModeEntra:
		return "", unauthenticated(ReasonWrongKind, "this service takes Microsoft Entra ID access tokens in Authorization: Bearer, not API keys")
	case len(keys) > 1 || bearer != "":
		return "", unauthenticated(ReasonMalformed, "send one credential: either X-Api-Key or Authorization: Bearer, once")
	}
	key := strings.TrimSpace(keys[0])
	switch {
	case key == "":
		return "", unauthenticated(ReasonMalformed, "the X-Api-Key header is empty")
	case len(key) > MaxCredentialBytes:
		return "", unauthenticated(ReasonMalformed, "the X-Api-Key header is too long to be an API key")
	}
	return key, nil
}

// authorizationBearer returns the credential of an Authorization: Bearer header, "" when there
// is no Authorization header.
func authorizationBearer(h http.Header) (string, *Error) {
	values := h.Values("Authorization")
	switch len(values) {
	case 0:
		return "", nil
	case 1:
	default:
		return "", unauthenticated(ReasonMalformed, "send one Authorization header")
	}
	tok, err := ParseBearer(values[0])
	if err != nil {
		return "", unauthenticated(ReasonMalformed, err.Error())
	}
	return tok, nil
}

// ParseBearer returns the credential of an Authorization header value of the Bearer scheme
// (RFC 6750 section 2.1: "Bearer" 1*SP b64token, the scheme in any case, RFC 9110 section 11.1).
// The error says what is wrong without repeating the credential: another scheme (named, when
// it is a token), no credential, a credential with characters outside b64token (ALPHA DIGIT
// - . _ ~ + / and trailing =), or one longer than MaxCredentialBytes.
func ParseBearer(value string) (string, error) {
	value = strings.Trim(value, " \t")
	scheme, rest, spaced := strings.Cut(value, " ")
	switch {
	case strings.EqualFold(scheme, "Bearer"):
	case !spaced:
		// A credential without a scheme, most likely: never repeat it.
		return "", errors.New("the Authorization header has no scheme: send Authorization: Bearer <credential>")
	case slices.ContainsFunc(knownSchemes, func(s string) bool { return strings.EqualFold(s, scheme) }):
		return "", fmt.Errorf("the Authorization header uses the %s scheme; send Authorization: Bearer <credential>", scheme)
	default:
		return "", errors.New("the Authorization header uses a scheme other than Bearer; send Authorization: Bearer <credential>")
	}
	cred := strings.TrimLeft(rest, " ")
	switch {
	case cred == "":
		return "", errors.New("the Authorization header has no credential after Bearer")
	case len(cred) > MaxCredentialBytes:
		return "", errors.New("the bearer credential is too long")
	case !isB64Token(cred):
		return "", errors.New("the bearer credential has characters a bearer token cannot have (RFC 6750 b64token)")
	}
	return cred, nil
}

// isB64Token reports whether s is an RFC 6750 b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" /
// "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~+/", c) >= 0) {
			return false
		}
	}
	return true
}

// knownSchemes are authentication schemes a refusal may name (IANA's HTTP Authentication
// Scheme Registry, and two common non-standard ones); any other word in the scheme's place may
// be a credential and is never repeated.
var knownSchemes = []string{"Basic", "Digest", "Negotiate", "NTLM", "HOBA", "Mutual", "DPoP", "PrivateToken",
	"SCRAM-SHA-1", "SCRAM-SHA-256", "vapid", "Concealed", "Token", "ApiKey"}

// refuse answers a refused request and logs it.
func (a *Authenticator) refuse(w http.ResponseWriter, r *http.Request, err error) {
	e, ok := errors.AsType[*Error](err)
	if !ok {
		e = unauthenticated(ReasonSignature, "the credential is not valid")
	}
	addr := principal.Anonymous(r.RemoteAddr).Addr
	lvl, repeats := a.repeats.Level(string(e.Reason)+" "+addr, slog.LevelWarn)
	a.log.Log(r.Context(), lvl, "caller refused", "reason", e.Reason, "status", e.Status, "client", addr,
		"method", r.Method, "path", r.URL.Path, "repeats", repeats)
	if a.opts.OnRefusal != nil {
		a.opts.OnRefusal(e.Reason)
	}
	e.write(w, a.opts.Realm)
}
