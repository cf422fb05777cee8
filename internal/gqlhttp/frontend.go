package gqlhttp

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/klauspost/compress/gzhttp"
	"github.com/klauspost/compress/gzip"
	"github.com/rs/cors"

	"github.com/mdegraph/mdegraph/internal/callerauth"
	"github.com/mdegraph/mdegraph/internal/csrf"
	"github.com/mdegraph/mdegraph/resolvers"
)

// Conventions web frontends expect from a GraphQL endpoint: CORS from configuration, gzip,
// cacheable persisted GET queries (never by a shared cache when callers sign in), and the
// state a frontend shows (quota) in extensions.

// CORS returns the middleware that lets the browser origins listed (CORS_ORIGINS; "*" for any)
// call the endpoint; with none, only same-origin pages can (no CORS headers are sent). It
// answers preflights itself, so it goes outermost, before the CSRF check and sign-in: a
// cross-origin frontend can then read their refusals, WWW-Authenticate included.
//
// Allowed request headers: Content-Type; Authorization and X-Api-Key (tokens and API keys);
// Cache-Control (stale-if-error); traceparent and tracestate (W3C Trace Context, so a
// frontend's trace continues here when tracing is on); and every csrf.PreflightHeaders, which
// the CSRF check takes as the sign of a preflight.
func CORS(origins []string) func(http.Handler) http.Handler {
	if len(origins) == 0 {
		return func(next http.Handler) http.Handler { return next }
	}
	headers := []string{"Content-Type", "Authorization", "X-Api-Key", "Cache-Control", "Traceparent", "Tracestate"}
	for _, h := range csrf.PreflightHeaders {
		if !slices.Contains(headers, h) {
			headers = append(headers, h)
		}
	}
	return cors.New(cors.Options{
		AllowedOrigins: origins,
		AllowedMethods: []string{http.MethodGet, http.MethodPost, http.MethodOptions},
		AllowedHeaders: headers,
		// A frontend reads why it was refused (RFC 6750's error and error_description) and,
		// after CALLER_LIMIT_PER_MINUTE, when to retry.
		ExposedHeaders: []string{"WWW-Authenticate", "Retry-After"},
		MaxAge:         600,
	}).Handler
}

// withGzip compresses answers for clients that accept it (answers under 1 kB are sent as is),
// at gzip's fastest level: at the default level (5) compressing took a fifth of the CPU a
// warm answer costs, for answers 7 to 8% smaller (a device's logon users: 600 bytes rather
// than 642; the graph around it: 4.9 KB rather than 5.4 KB).
var withGzip = func() func(http.Handler) http.HandlerFunc {
	wrap, err := gzhttp.NewWrapper(gzhttp.CompressionLevel(gzip.BestSpeed))
	if err != nil { // only for an invalid option
		panic(fmt.Sprintf("gqlhttp: gzhttp: %v", err))
	}
	return wrap
}()

// cacheHint travels in the request context from the HTTP layer to the response hook: the HTTP
// layer says whether the request may be cached at all, the hook whether the answer may.
type cacheHint struct {
	candidate bool // a GET of a persisted query
	cacheable bool // ... and the answer has no error, and nothing in it is stale
}

type cacheHintKey struct{}

// withCacheHeaders makes GET requests of persisted queries cacheable by browsers and CDNs
// when the answer carries no error and nothing stale, for maxAge; everything else is marked
// no-store, since answers reflect live quota, errors such as RATE_LIMITED must not be
// replayed, and a stale answer must not outlive the outage it stood in for. A cacheable
// answer is public only when callerauth.MayCachePublicly says so (AUTH_MODE=none and no
// credential in the request: Authorization, X-Api-Key or Cookie), private otherwise, and
// varies by the credential headers.
func withCacheHeaders(maxAge time.Duration, mode callerauth.Mode, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hint := &cacheHint{
			candidate: maxAge > 0 && r.Method == http.MethodGet && strings.Contains(r.URL.Query().Get("extensions"), "persistedQuery"),
		}
		ctx := context.WithValue(r.Context(), cacheHintKey{}, hint)
		cw := &cacheWriter{ResponseWriter: w, hint: hint, maxAge: maxAge, private: !callerauth.MayCachePublicly(mode, r)}
		next.ServeHTTP(cw, r.WithContext(ctx))
	})
}

// noteCacheable is the response hook's half: a candidate answer with no error and nothing
// stale is cacheable. Staleness is read both from the operation's state and from the answer,
// so that it holds whichever of the hooks runs first.
func noteCacheable(ctx context.Context, resp *graphql.Response) {
	hint, ok := ctx.Value(cacheHintKey{}).(*cacheHint)
	if !ok || !hint.candidate || len(resp.Errors) > 0 || resp.Extensions["stale"] != nil || resolvers.ServedStale(ctx) {
		return
	}
	hint.cacheable = true
}

// cacheWriter sets Cache-Control just before the headers go out, when the hook has decided.
type cacheWriter struct {
	http.ResponseWriter
	hint        *cacheHint
	maxAge      time.Duration
	private     bool
	wroteHeader bool
}

func (c *cacheWriter) WriteHeader(code int) {
	if !c.wroteHeader {
		c.wroteHeader = true
		h := c.Header()
		switch {
		case c.hint.cacheable && code == http.StatusOK:
			scope := "public"
			if c.private {
				scope = "private"
			}
			h.Set("Cache-Control", fmt.Sprintf("%s, max-age=%d", scope, int(c.maxAge/time.Second)))
			h.Add("Vary", strings.Join(callerauth.CredentialHeaders, ", "))
		case h.Get("Cache-Control") == "":
			h.Set("Cache-Control", "no-store")
		}
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *cacheWriter) Write(b []byte) (int, error) {
	if !c.wroteHeader {
		c.WriteHeader(http.StatusOK)
	}
	return c.ResponseWriter.Write(b)
}

func (c *cacheWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// quotaExtension is extensions.quota: per endpoint family, the object Query.quota lists (calls
// used and remaining in the sliding minute and hour, when and in how many whole seconds the
// next call can go out, any pause Defender asked for, the calls waiting in line), from the
// same reading, taken at the end of the operation (resolvers.OperationQuota), written as JSON
// here rather than by reflection when the answer is. Its bytes are the request's exchange's
// (x, if not nil), for the pool once the answer is written.
func quotaExtension(ctx context.Context, q resolvers.QuotaReporter, x *exchange) json.RawMessage {
	buf := quotaBuffers.Get().(*[]byte)
	*buf = resolvers.OperationQuota(ctx, q).AppendJSON((*buf)[:0])
	if x != nil {
		x.quota = buf
	}
	return *buf
}

// quotaBuffers hold extensions.quota until the answer is written.
var quotaBuffers = sync.Pool{New: func() any {
	b := make([]byte, 0, quotaJSONSize)
	return &b
}}

// quotaJSONSize is a little more than extensions.quota with five endpoint families (1.7 KB).
const quotaJSONSize = 2048
