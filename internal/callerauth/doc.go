// Package callerauth decides who calls the service (incoming identity) and refuses callers that
// do not sign in: the AUTH_MODE setting. Its Authenticator puts a principal.Principal in each
// request's context, and in ModeEntra the caller's own token as a principal.Assertion for the
// on-behalf-of exchange; how the service signs in to Defender is the upstream token package's
// business.
//
// # Modes
//
//   - none: every caller is principal.Anonymous(client address); credentials are ignored.
//     CheckMode allows it on a loopback ADDR, refuses it elsewhere unless AUTH_MODE=none was
//     set explicitly (then it returns a warning to log at start).
//   - apikey: the caller presents a key as X-Api-Key: <key> or Authorization: Bearer <key>; its
//     SHA-256 is compared in constant time with every configured hash. The principal is
//     KindAPIKey with the key's name; the key itself is never logged or stored.
//   - entra: the caller presents a Microsoft Entra ID access token for this API as
//     Authorization: Bearer <token>, validated locally by EntraVerifier (RS256 only; issuer,
//     audience, exp/nbf/iat with a 2-minute leeway, tid, oid, scp or roles, the required role).
//     The principal is KindUser (tid, oid), never sub. App-only tokens (a daemon's client
//     credentials) are accepted as the service principal's oid, named "app:{client id}". They
//     cannot be exchanged on-behalf-of (that needs a person's token), so where Defender is
//     asked as the caller, a daemon's query fails at the exchange with its error; such a
//     daemon is better served by its own deployment in apikey mode.
//
// Options.Optional (any mode but none) lets requests without a credential through as anonymous
// while still checking, and honouring, a presented one: the demo, where anyone may use the
// playground and a demo person signed in with the simulator is served as that person.
//
// # Refusals
//
// Missing or bad credentials: 401, WWW-Authenticate: Bearer realm="mdegraph" (with
// error="invalid_token" or "invalid_request" and error_description when something was
// presented, RFC 6750 section 3), body {"errors":[{"message":...,"extensions":{"code":
// "UNAUTHENTICATED","reason":...}}]}. A valid token without AUTH_REQUIRED_ROLE: 403,
// error="insufficient_scope", code FORBIDDEN. Messages say what is wrong (expired when, which
// audience is expected, which role is missing) and never repeat the credential. Each refusal is
// logged once a minute per reason and client address (internal/quietlog) and reported to
// Options.OnRefusal with its Reason, a fixed set fit for a metric label.
//
// # Settings and their parse functions
//
//	AUTH_MODE           none | apikey | entra                  ParseMode, then CheckMode(mode, explicit, ADDR)
//	API_KEYS            name:sha256hex,name:sha256hex          LoadAPIKeys(API_KEYS, API_KEYS_FILE)
//	API_KEYS_FILE       path: one name:sha256hex a line, # comments
//	AUTH_TENANT_ID      tenant id GUID, or a domain when AUTH_ISSUER is empty (default: MDE_TENANT_ID)
//	                                                           EntraSettings{...}.Parse()
//	AUTH_ISSUER         "" = Entra ID public cloud; else the exact issuer (https, or http on loopback)
//	AUTH_AUDIENCE       client id and/or api://... URI, comma-separated
//	AUTH_REQUIRED_ROLE  app role or scope every caller needs, "" for none (suggested: Mdegraph.Read)
//
// Every error names its variable. Keys and their entries are made with
// `go run ./cmd/mdegraph-apikey NAME` (or `printf %s "$KEY" | sha256sum`).
//
// # Wiring
//
//	mode, err := callerauth.ParseMode(cfg.AuthMode)
//	warning, err := callerauth.CheckMode(mode, authModeWasSet, cfg.Addr) // log warning if not ""
//	opts := callerauth.Options{Mode: mode, Logger: log, OnRefusal: metrics.AuthRefused}
//	switch mode {
//	case callerauth.ModeAPIKey:
//		opts.APIKeys, err = callerauth.LoadAPIKeys(cfg.APIKeys, cfg.APIKeysFile)
//	case callerauth.ModeEntra:
//		eo, err := callerauth.EntraSettings{TenantID: cmp.Or(cfg.AuthTenantID, cfg.MDETenantID),
//			Issuer: cfg.AuthIssuer, Audience: cfg.AuthAudience, RequiredRole: cfg.AuthRequiredRole}.Parse()
//		eo.Logger = log
//		opts.Tokens, err = callerauth.NewEntraVerifier(appCtx, eo) // fetches discovery + JWKS: fails start if wrong
//	}
//	auth, err := callerauth.New(opts)
//	guard, err := csrf.New(csrf.Options{TrustedOrigins: cfg.CORSOrigins, Logger: log})
//	mux.Handle("/query", cors(guard.Handler(auth.Handler(graphql))))
//
// Order matters: CORS outermost, so that refusals carry Access-Control-Allow-Origin and a
// cross-origin frontend can read its 401 (and must expose WWW-Authenticate with
// Access-Control-Expose-Headers); then csrf, which refuses forgeries before anything else;
// then this package; then the GraphQL handler, which never sees a refused request, so a refusal
// spends no quota and never reaches Defender. The playground and the example page stay outside
// (they hold no data); Hint says how to send a credential, for the playground's header editor.
// Answers to requests for which CarriesCredential is true must be Cache-Control: private (or
// no-store) with Vary: Authorization, X-Api-Key, Cookie (CredentialHeaders); MayCachePublicly
// says when a shared cache may keep one (ModeNone without a credential only).
//
// # Signing keys
//
// NewEntraVerifier fetches {AUTH_ISSUER}/.well-known/openid-configuration (default
// https://login.microsoftonline.com/{tenant}/v2.0/...), checks its issuer, and fetches its
// jwks_uri, each bounded by 10 seconds; a failure stops the start with an error naming the
// setting and the URL, and success logs one line (issuers, audiences, key count). The key set
// is then refreshed every hour in the background (so a key the tenant unpublishes stops
// verifying within the hour) and on a token with an unknown kid at most once a minute (so a
// rotation is picked up at once, while made-up kids or a key set that is down cost one fetch a
// minute, not one per request); refresh failures are logged once a minute. Entra ID publishes a
// new key well before signing with it, so the hourly refresh usually has it already.
//
// Entra ID writes the API's client id into the aud of v2 tokens and its App ID URI into v1
// tokens (the API's manifest, requestedAccessTokenVersion, decides): list both in AUTH_AUDIENCE
// when in doubt.
package callerauth
