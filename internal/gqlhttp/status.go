package gqlhttp

import (
	"context"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/mdegraph/mdegraph/resolvers"
)

// The GraphQL over HTTP specification's status rules
// (https://graphql.github.io/graphql-over-http/draft/, "Response"), which gqlgen does not
// follow: it answers parse and validation failures 422 to a client that accepts
// application/json, where 200 is expected, and gives every answer a "data" entry, which must
// be absent when the request failed before execution.
//
// An answer given before execution (a request error: the document does not parse or
// validate, a variable cannot be coerced, a limit refuses the query) has no "data" entry, and
// its status depends on the media type the client accepts:
//   - application/json: 200, as for any well-formed GraphQL-over-HTTP request;
//   - application/graphql-response+json: 400, since an answer without data must be 4xx or 5xx.
//
// A request that is not a well-formed GraphQL-over-HTTP request at all (BAD_REQUEST: a body
// that is not a JSON object, no query, an unsupported Content-Type; METHOD_NOT_ALLOWED) keeps
// its 4xx status with either media type. An executed operation is answered 200, with data.

// Media types of a GraphQL answer.
const (
	mediaJSON            = "application/json"
	mediaGraphQLResponse = "application/graphql-response+json"
)

// responseMediaType is the media type gqlgen's transports answer r with: the first of
// application/json and application/graphql-response+json that r's Accept header lists,
// application/json for no Accept or a wildcard, and application/graphql-response+json when
// Accept names neither (gqlgen v0.17.98, handler/transport/headers.go).
func responseMediaType(r *http.Request) string {
	accept := r.Header.Get("Accept")
	if accept == "" {
		return mediaJSON
	}
	for part := range strings.SplitSeq(accept, ",") {
		mediaType, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mediaType {
		case "*/*", "application/*", mediaJSON:
			return mediaJSON
		case mediaGraphQLResponse:
			return mediaGraphQLResponse
		}
	}
	return mediaGraphQLResponse
}

// answerMediaType is the media type of r's answer: the one its exchange read from Accept
// when the request reached the handler (so that Accept is parsed once), or read now outside
// the handler New returns.
func answerMediaType(r *http.Request) string {
	if x := exchangeFrom(r.Context()); x != nil {
		return x.media
	}
	return responseMediaType(r)
}

// exchange is one request's state, shared by the HTTP layer and gqlgen's hooks through the
// request context. All of it is read and written on the request's own goroutine.
type exchange struct {
	start time.Time
	media string // the answer's media type
	// executed is set when the operation starts executing: its answer may carry data.
	executed bool
	// preExecution is set by the response hook for an answer given before execution; code is
	// its first error's code.
	preExecution bool
	code         string
	// answers is the response cache's look for this request's answer (nil: none made).
	answers *lookup
	// quota holds extensions.quota's bytes until the answer is written (nil: none).
	quota *[]byte
}

type exchangeKey struct{}

// exchangeFrom returns the request's exchange, or nil outside the handler New returns.
func exchangeFrom(ctx context.Context) *exchange {
	x, _ := ctx.Value(exchangeKey{}).(*exchange)
	return x
}

// elapsed is the time since the request reached the handler, parsing and validation included.
func (x *exchange) elapsed() time.Duration {
	if x == nil {
		return 0
	}
	return time.Since(x.start)
}

// answered notes what the response hook learned of the answer about to be written.
func (x *exchange) answered(resp *graphql.Response, codes []string) {
	if x == nil || x.executed || resp.Data != nil {
		return
	}
	x.preExecution = true
	if len(codes) > 0 {
		x.code = codes[0]
	}
}

// noData reports whether the answer about to be written is one given before execution, which
// has no "data" entry (writeResponse leaves it out); false outside the handler New returns.
func (x *exchange) noData() bool { return x != nil && x.preExecution }

// status is the HTTP status of an answer given before execution, from the status the
// transport chose (written, 0 if none).
func (x *exchange) status(written int) int {
	switch x.code {
	case resolvers.CodeBadRequest: // not a well-formed GraphQL-over-HTTP request
		if written == http.StatusRequestEntityTooLarge || written == http.StatusRequestURITooLong {
			return written
		}
		return http.StatusBadRequest
	case resolvers.CodeMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case resolvers.CodeInternal:
		return http.StatusInternalServerError
	}
	if x.media == mediaGraphQLResponse {
		return http.StatusBadRequest
	}
	return http.StatusOK
}

// withResponseRules applies the status rules above to the answers of next, and gives each
// request its exchange.
func withResponseRules(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		x := &exchange{start: time.Now(), media: responseMediaType(r)}
		rw := &rulesWriter{ResponseWriter: w, x: x}
		next.ServeHTTP(rw, r.WithContext(context.WithValue(r.Context(), exchangeKey{}, x)))
		if !rw.sent && rw.status != 0 { // a status without a body (OPTIONS, HEAD)
			rw.send()
		}
		if x.quota != nil && cap(*x.quota) <= maxPooledBuffer { // written: nothing refers to it now
			quotaBuffers.Put(x.quota)
		}
	})
}

// rulesWriter holds back the status until the answer's first bytes, when the response hook
// has said whether it is a pre-execution answer. (Such an answer's writer leaves its "data"
// entry out: exchange.noData.)
type rulesWriter struct {
	http.ResponseWriter
	x      *exchange
	status int // as the transport set it, 0 until then
	sent   bool
}

func (w *rulesWriter) WriteHeader(code int) {
	if !w.sent && w.status == 0 {
		w.status = code
	}
}

func (w *rulesWriter) Write(b []byte) (int, error) {
	if !w.sent {
		w.send()
	}
	return w.ResponseWriter.Write(b)
}

// send writes the status: the transport's, or the rules' for a pre-execution answer.
func (w *rulesWriter) send() {
	w.sent = true
	status := w.status
	if status == 0 {
		status = http.StatusOK
	}
	if w.x.preExecution {
		status = w.x.status(w.status)
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *rulesWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
