package gqlhttp

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/mdegraph/mdegraph/resolvers"
)

// gqlgen answers some malformed requests itself, with errors that carry no extensions.code:
// a request no transport supports ("transport not supported", as text/plain), and a GET whose
// parameters cannot be decoded. The transports here answer those with coded JSON errors.

// supported says what the endpoint serves, in every answer to a request it does not.
const supported = "send POST with Content-Type: application/json, or GET with the query in URL parameters (query, variables, operationName, extensions)"

// allowedMethods is the Allow header of a 405 and of the answer to OPTIONS. HEAD is not among
// them: a HEAD of a GET query would have to run the query, spending Defender's quota, to send
// no answer; it is answered 405 like any other method the endpoint does not serve.
const allowedMethods = "OPTIONS, GET, POST"

// options answers OPTIONS with the methods the endpoint serves (gqlgen's transport.Options
// also answers HEAD, with a bare 405 that lacks Allow; here unsupported answers it).
type options struct{}

var _ graphql.Transport = options{}

// Supports accepts OPTIONS.
func (options) Supports(r *http.Request) bool { return r.Method == http.MethodOptions }

// Do says which methods are allowed.
func (options) Do(w http.ResponseWriter, _ *http.Request, _ graphql.GraphExecutor) {
	w.Header().Set("Allow", allowedMethods)
	w.WriteHeader(http.StatusOK)
}

// queryParams is gqlgen's GET transport, except that a query string longer than max bytes is
// answered BAD_REQUEST with 414 URI Too Long (a GET's parameters are bounded as a POST body
// is), and a query string, variables or extensions that cannot be decoded BAD_REQUEST (400).
type queryParams struct {
	transport.GET
	max int64
}

var _ graphql.Transport = queryParams{}

// Do refuses a query string longer than q.max (MAX_BODY_BYTES) with 414, decodes the URL's
// parameters as gqlgen's GET does, refusing what it cannot decode, then runs the query.
func (q queryParams) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	start := graphql.TraceTiming{Start: graphql.Now()}
	if n := int64(len(r.URL.RawQuery)); n > q.max {
		writeError(w, r, exec, http.StatusRequestURITooLong, resolvers.CodeBadRequest, fmt.Sprintf(
			"the URL's query string is %d bytes, more than %d (MAX_BODY_BYTES): send the request as a POST with Content-Type: application/json, or a persisted query's hash", n, q.max))
		return
	}
	params, problem := queryParamsOf(r.URL.RawQuery)
	if problem != nil {
		writeError(w, r, exec, problem.status, resolvers.CodeBadRequest, problem.msg)
		return
	}
	execute(w, r, exec, params, start, true)
}

// queryParamsOf decodes a GET's query string (query, operationName, and the JSON objects
// variables and extensions) as gqlgen's GET transport does, or says what is wrong with it (a
// parameter that is not a JSON object, a malformed persisted-query extension).
func queryParamsOf(rawQuery string) (*graphql.RawParams, *requestProblem) {
	values, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, &requestProblem{http.StatusBadRequest, fmt.Sprintf("the URL's query string cannot be parsed: %v", err)}
	}
	params := &graphql.RawParams{Query: values.Get("query"), OperationName: values.Get("operationName")}
	for _, p := range [...]struct {
		name string
		obj  *map[string]any
	}{{"variables", &params.Variables}, {"extensions", &params.Extensions}} {
		name, obj := p.name, p.obj
		v := values.Get(name)
		if v == "" {
			continue
		}
		// As gqlgen decodes it: the first JSON value, into an object, numbers kept.
		dec := json.NewDecoder(strings.NewReader(v))
		dec.UseNumber()
		if err := dec.Decode(obj); err != nil {
			return nil, &requestProblem{http.StatusBadRequest, fmt.Sprintf("the %s parameter must be a JSON object: %v", name, err)}
		}
	}
	if msg := persistedQueryProblem(params.Extensions, params.Query); msg != "" {
		return nil, &requestProblem{http.StatusBadRequest, msg}
	}
	return params, nil
}

// MaxBodyBytes is the default bound of a POST body (Options.MaxBodyBytes). A GraphQL request
// is a query of a few kilobytes and its variables (GraphiQL's introspection query is 2 KB, a
// 50-device dashboard 11 KB, a query of MAX_QUERY_TOKENS's 5,000 tokens, pretty-printed, about
// 60 KB). The whole body is decoded as JSON before anything can refuse the query in it, so the
// bound sets what the worst hostile body costs.
const MaxBodyBytes = 64 << 10

// MaxHeaderBytes is the http.Server's MaxHeaderBytes for an endpoint whose POST bodies and GET
// query strings are bounded by maxBody bytes: room for a URL of twice that (so that a GET just
// over the bound reaches the endpoint and is answered 414 with a coded error, not with Go's
// plain-text 431) and 32 KiB of other headers (a bearer token is a few KB). It stays a hard
// cap: a request line and headers beyond it (plus net/http's 4 KiB of slack) are refused by
// net/http itself with 431 Request Header Fields Too Large.
func MaxHeaderBytes(maxBody int64) int {
	const others = 32 << 10
	return int(min(2*max(maxBody, 0)+others, 1<<30))
}

// boundedPOST is gqlgen's POST transport with the body bounded by max bytes and checked first
// (readBody): a longer body (declared or not) is answered 413, one gqlgen could not decode or a
// malformed persisted-query extension BAD_REQUEST, in the client's terms and by Go error type
// rather than by gqlgen's message text.
type boundedPOST struct {
	transport.POST
	max int64
}

var _ graphql.Transport = boundedPOST{}

// Do refuses what readBody finds wrong, then runs the operation.
func (p boundedPOST) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	start := graphql.TraceTiming{Start: graphql.Now()}
	params, problem := readBody(w, r, p.max)
	if problem != nil {
		writeError(w, r, exec, problem.status, resolvers.CodeBadRequest, problem.msg)
		return
	}
	execute(w, r, exec, params, start, false)
}

// unsupported answers every request the transports before it do not support: a method other
// than GET, POST and OPTIONS (HEAD included) gets METHOD_NOT_ALLOWED (405, with Allow), anything else
// (a POST that is not JSON, a WebSocket upgrade) BAD_REQUEST (400). It supports every request,
// so it must be added last.
type unsupported struct{}

var _ graphql.Transport = unsupported{}

// Supports accepts every request: it is the last resort.
func (unsupported) Supports(*http.Request) bool { return true }

// Do says what the endpoint serves instead.
func (unsupported) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	switch {
	case r.Method != http.MethodGet && r.Method != http.MethodPost:
		w.Header().Set("Allow", allowedMethods)
		writeError(w, r, exec, http.StatusMethodNotAllowed, resolvers.CodeMethodNotAllowed,
			fmt.Sprintf("method %s is not allowed: %s", r.Method, supported))
	case r.Header.Get("Upgrade") != "":
		writeError(w, r, exec, http.StatusBadRequest, resolvers.CodeBadRequest,
			"protocol upgrades (WebSocket, subscriptions) are not supported: "+supported)
	default:
		writeError(w, r, exec, http.StatusBadRequest, resolvers.CodeBadRequest,
			fmt.Sprintf("%s is not supported: %s", describeContentType(r.Header.Get("Content-Type")), supported))
	}
}

// describeContentType names a request's Content-Type for a message, without repeating more
// of the header than its media type.
func describeContentType(v string) string {
	if v == "" {
		return "a request without Content-Type"
	}
	mediaType, _, err := mime.ParseMediaType(v)
	if err != nil {
		return "a malformed Content-Type"
	}
	return fmt.Sprintf("Content-Type %s", mediaType)
}

// writeError answers with one coded GraphQL error, through the executor like gqlgen's own
// request errors, so that the error presenter logs it and the response hooks (metrics, quota
// extension, the status rules) see it, and written as every answer is (writeResponse). It is
// in the media type the client accepts.
func writeError(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor, status int, code, msg string) {
	resp := exec.DispatchError(r.Context(), gqlerror.List{{Message: msg, Extensions: map[string]any{"code": code}}})
	w.Header().Set("Content-Type", answerMediaType(r))
	w.WriteHeader(status)
	writeResponse(w, resp, exchangeFrom(r.Context()).noData())
}

// ShuttingDown answers a request the service stopped before it could finish (package drain):
// 503 with one SHUTTING_DOWN error and no data, in the media type the client accepts.
func ShuttingDown(w http.ResponseWriter, r *http.Request) {
	b, _ := json.Marshal(map[string]any{"errors": gqlerror.List{{ // strings only: it always marshals
		Message:    "the service is shutting down and stopped this request before it finished; send it again",
		Extensions: map[string]any{"code": resolvers.CodeShuttingDown},
	}}})
	h := w.Header()
	h.Set("Content-Type", responseMediaType(r))
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Length")
	h.Del("Content-Encoding")
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write(b)
}
