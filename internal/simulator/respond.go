package simulator

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Content types the upstream answers with.
const (
	contentTypeOData = "application/json; odata.metadata=minimal"
	contentTypeError = "application/json"
	contentTypeOAuth = "application/json; charset=utf-8"
)

// response is an answer decided but not yet written, so the added latency can sit between the two.
type response struct {
	status      int
	contentType string
	header      http.Header // extra headers, may be nil
	body        []byte
	identity    string // who the call was made as, for statistics; "" before authentication
	hang        bool   // an injected hang: write nothing until the client gives up
}

func (resp response) write(w http.ResponseWriter) {
	h := w.Header()
	for k, v := range resp.header {
		h[k] = v
	}
	h.Set("Content-Type", resp.contentType)
	h.Set("Content-Length", strconv.Itoa(len(resp.body)))
	w.WriteHeader(resp.status)
	_, _ = w.Write(resp.body) // the client going away is not the simulator's problem
}

func (resp response) with(key, value string) response {
	if resp.header == nil {
		resp.header = http.Header{}
	}
	resp.header.Set(key, value)
	return resp
}

// okJSON is a successful OData answer.
func okJSON(v any) response {
	b, err := json.Marshal(v)
	if err != nil {
		// Only the simulator's own structs are marshalled here; failing is a bug in this package.
		panic(fmt.Sprintf("simulator: marshal answer: %v", err))
	}
	return response{status: http.StatusOK, contentType: contentTypeOData, body: b}.with("OData-Version", "4.0")
}

// defenderError is the upstream's error body: {"error":{"code","message","target"}}, target a
// fresh correlation id.
type defenderError struct {
	Error defenderErrorDetail `json:"error"`
}

type defenderErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Target  string `json:"target"`
}

// Error codes the simulator answers with, from the upstream's vocabulary.
const (
	codeBadRequest       = "BadRequest"
	codeODataError       = "ODataError"
	codeUnauthorized     = "Unauthorized"
	codeForbidden        = "Forbidden"
	codeNotFound         = "NotFound"
	codeResourceNotFound = "ResourceNotFound"
	codeTooManyRequests  = "TooManyRequests"
	codeInternal         = "InternalServerError"
)

func apiError(status int, code, message string) response {
	b, _ := json.Marshal(defenderError{Error: defenderErrorDetail{Code: code, Message: message, Target: newGUID()}})
	return response{status: status, contentType: contentTypeError, body: b}
}

// codeForStatus is the code an injected fault of that status carries.
func codeForStatus(status int) string {
	switch status {
	case http.StatusBadRequest:
		return codeBadRequest
	case http.StatusUnauthorized:
		return codeUnauthorized
	case http.StatusForbidden:
		return codeForbidden
	case http.StatusNotFound:
		return codeNotFound
	case http.StatusTooManyRequests:
		return codeTooManyRequests
	case http.StatusInternalServerError:
		return codeInternal
	}
	if text := http.StatusText(status); text != "" {
		return strings.ReplaceAll(text, " ", "")
	}
	return codeInternal
}

// tooManyRequests is a 429 with the Retry-After the client must honour.
func tooManyRequests(wait time.Duration) response {
	secs := retryAfterSeconds(wait)
	return apiError(http.StatusTooManyRequests, codeTooManyRequests,
		fmt.Sprintf("Rate limit is exceeded. Try again in %d seconds.", secs)).
		with("Retry-After", strconv.Itoa(secs))
}

// newGUID is a random version-4 GUID, for correlation and trace ids.
func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails since Go 1.24
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// clip shortens client input echoed in messages, so a huge path does not make a huge body.
func clip(s string) string {
	const limit = 200
	if len(s) <= limit {
		return s
	}
	return s[:limit] + "..."
}
