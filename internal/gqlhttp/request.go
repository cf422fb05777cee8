package gqlhttp

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"sync"

	"github.com/99designs/gqlgen/graphql"
)

// gqlgen reports a POST body it cannot decode, and a malformed persisted-query extension, with
// code-less errors told apart only by their English text. The checks here find the same
// mistakes first, by Go type (*json.SyntaxError, *json.UnmarshalTypeError, *http.MaxBytesError,
// io.ErrUnexpectedEOF) and by value, and answer them BAD_REQUEST in the client's terms; what
// they let through, gqlgen decodes without error. A gqlgen or encoding/json upgrade that
// rewords its errors therefore changes no code.

// requestProblem is a request refused before gqlgen sees it: the HTTP status and the message.
type requestProblem struct {
	status int
	msg    string
}

// readBody reads r's body, at most max bytes of it, and decodes it as gqlgen's POST transport
// does (one JSON object of graphql.RawParams, the first JSON value, numbers kept), checking its
// persisted-query extension. A problem says why the request is refused; otherwise params are
// what the client sent.
func readBody(w http.ResponseWriter, r *http.Request, max int64) (*graphql.RawParams, *requestProblem) {
	tooLarge := &requestProblem{http.StatusRequestEntityTooLarge,
		fmt.Sprintf("the request body is larger than %d bytes (MAX_BODY_BYTES): a GraphQL request is a small JSON object (use variables, not inline data)", max)}
	if r.ContentLength > max {
		return nil, tooLarge // declared: no need to read it
	}
	buf := bodyBuffers.Get().(*bytes.Buffer) // the decoded parameters hold no part of it
	defer putBuffer(&bodyBuffers, buf)
	buf.Reset()
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength) + bytes.MinRead)
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, max))
	var maxBytes *http.MaxBytesError
	switch {
	case errors.As(err, &maxBytes):
		return nil, tooLarge
	case err != nil:
		return nil, &requestProblem{http.StatusBadRequest, "the request body could not be read: " + err.Error()}
	}
	params := &graphql.RawParams{}
	dec := json.NewDecoder(buf)
	dec.UseNumber()
	if err := dec.Decode(params); err != nil {
		return nil, &requestProblem{http.StatusBadRequest, decodeProblem(err)}
	}
	if msg := persistedQueryProblem(params.Extensions, params.Query); msg != "" {
		return nil, &requestProblem{http.StatusBadRequest, msg}
	}
	return params, nil
}

// bodyBuffers hold request bodies while they are decoded.
var bodyBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// putBuffer gives buf back to pool, unless it grew larger than maxPooledBuffer.
func putBuffer(pool *sync.Pool, buf *bytes.Buffer) {
	if buf.Cap() <= maxPooledBuffer {
		pool.Put(buf)
	}
}

// decodeProblem says in the client's terms what is wrong with a body that does not decode
// into graphql.RawParams, without repeating the body or naming Go types.
func decodeProblem(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Sprintf(`the body is empty or cut short (%v): send one JSON object {"query": "...", "variables": {...}}`, err)
	case errors.As(err, &syntax):
		return fmt.Sprintf("the body is not valid JSON: %v (at byte %d)", err, syntax.Offset)
	case errors.As(err, &typ) && typ.Field == "" && typ.Value == "array":
		return "the body is a JSON array: batched operations are not supported; send one operation per request"
	case errors.As(err, &typ) && typ.Field == "":
		return `the body must be one JSON object: {"query": "...", "variables": {...}}`
	case errors.As(err, &typ):
		want := "a string"
		if typ.Type != nil && typ.Type.Kind() == reflect.Map {
			want = "a JSON object"
		}
		return fmt.Sprintf("%s must be %s, not %s", typ.Field, want, typ.Value)
	}
	return "the body is not valid JSON: " + err.Error()
}

// persistedQueryProblem checks extensions.persistedQuery as gqlgen's AutomaticPersistedQuery
// extension reads it (version 1, sha256Hash the hex SHA-256 of the query when one is sent);
// "" when it is absent or well-formed. An unknown hash without a query is left to gqlgen,
// which answers PERSISTED_QUERY_NOT_FOUND as clients expect.
func persistedQueryProblem(extensions map[string]any, query string) string {
	raw, ok := extensions["persistedQuery"]
	if !ok || raw == nil {
		return ""
	}
	pq, ok := raw.(map[string]any)
	hash, hashOK := pq["sha256Hash"].(string)
	if !ok || !hashOK && pq["sha256Hash"] != nil {
		return `extensions.persistedQuery must be an object {"version": 1, "sha256Hash": "<hex SHA-256 of the query>"}`
	}
	if v, ok := pq["version"].(json.Number); !ok || v.String() != "1" {
		return "extensions.persistedQuery.version must be 1, the only version of automatic persisted queries"
	}
	if query != "" {
		sum := sha256.Sum256([]byte(query))
		if hex.EncodeToString(sum[:]) != hash {
			return "extensions.persistedQuery.sha256Hash does not match the query: it must be the hex SHA-256 of the exact query text"
		}
	}
	return ""
}
