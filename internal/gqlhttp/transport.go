package gqlhttp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
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

// queryParams is gqlgen's GET transport, except that a query string, variables or extensions
// that cannot be decoded are answered BAD_REQUEST.
type queryParams struct {
	transport.GET
}

var _ graphql.Transport = queryParams{}

// Do checks what gqlgen's GET decodes, the same way, before handing the request over.
func (q queryParams) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	if msg := checkQueryParams(r.URL.RawQuery); msg != "" {
		writeError(w, r, exec, http.StatusBadRequest, resolvers.CodeBadRequest, msg)
		return
	}
	q.GET.Do(w, r, exec)
}

// checkQueryParams says what is wrong with a GET's query string, or "" if gqlgen can decode it.
func checkQueryParams(rawQuery string) string {
	params, err := url.ParseQuery(rawQuery)
	if err != nil {
		return fmt.Sprintf("the URL's query string cannot be parsed: %v", err)
	}
	for _, name := range []string{"variables", "extensions"} {
		v := params.Get(name)
		if v == "" {
			continue
		}
		// As gqlgen decodes it: the first JSON value, into an object.
		var obj map[string]any
		if err := json.NewDecoder(strings.NewReader(v)).Decode(&obj); err != nil {
			return fmt.Sprintf("the %s parameter must be a JSON object: %v", name, err)
		}
	}
	return ""
}

// MaxBodyBytes is the default bound of a POST body (Options.MaxBodyBytes). A GraphQL request
// is a query of a few kilobytes and its variables (GraphiQL's introspection query is 2 KB, a
// 50-device dashboard 11 KB, a query of MAX_QUERY_TOKENS's 5,000 tokens, pretty-printed, about
// 60 KB). The whole body is decoded as JSON before anything can refuse the query in it, so the
// bound sets what the worst hostile body costs.
const MaxBodyBytes = 64 << 10

// boundedPOST is gqlgen's POST transport with the body bounded by max bytes: a longer body
// (declared or not) is answered 413 with BAD_REQUEST, before gqlgen decodes anything. A body
// with a declared length (the server reads no more than that) is handed over unread; only a
// chunked one is read first.
type boundedPOST struct {
	transport.POST
	max int64
}

var _ graphql.Transport = boundedPOST{}

// Do refuses a body over p.max bytes, then hands the request to gqlgen.
func (p boundedPOST) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	tooLarge := r.ContentLength > p.max
	if r.ContentLength < 0 { // length unknown (chunked): read it to know, within the bound
		body, err := io.ReadAll(io.LimitReader(r.Body, p.max+1))
		if err != nil {
			writeError(w, r, exec, http.StatusBadRequest, resolvers.CodeBadRequest, "the request body could not be read: "+err.Error())
			return
		}
		tooLarge = int64(len(body)) > p.max
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	if tooLarge {
		writeError(w, r, exec, http.StatusRequestEntityTooLarge, resolvers.CodeBadRequest,
			fmt.Sprintf("the request body is larger than %d bytes (MAX_BODY_BYTES): a GraphQL request is a small JSON object (use variables, not inline data)", p.max))
		return
	}
	p.POST.Do(w, r, exec)
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
// extension, the status rules) see it. It is in the media type the client accepts.
func writeError(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor, status int, code, msg string) {
	resp := exec.DispatchError(r.Context(), gqlerror.List{{Message: msg, Extensions: map[string]any{"code": code}}})
	b, err := json.Marshal(resp)
	if err != nil { // not expected: the response holds only strings, numbers and maps of them
		b = fmt.Appendf(nil, `{"errors":[{"message":"internal error","extensions":{"code":%q}}],"data":null}`, resolvers.CodeInternal)
		status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", responseMediaType(r))
	w.WriteHeader(status)
	_, _ = w.Write(b)
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
