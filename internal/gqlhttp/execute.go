package gqlhttp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/mdegraph/mdegraph/resolvers"
)

// What gqlgen's POST and GET transports do once they have the request's parameters, without
// what every answer paid for twice there: the POST body decoded a second time (readBody has
// decoded and checked it), and the answer encoded by reflection (writeResponse).

// execute runs the operation params describe (read since start) and writes its answer in the
// media type r accepts. A GET may run only a query (queryOnly), as gqlgen's GET transport
// says.
func execute(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor, params *graphql.RawParams, start graphql.TraceTiming, queryOnly bool) {
	ctx := r.Context()
	w.Header().Set("Content-Type", answerMediaType(r))
	params.Headers = r.Header
	params.ReadTime = graphql.TraceTiming{Start: start.Start, End: graphql.Now()}
	opCtx, errs := exec.CreateOperationContext(ctx, params)
	if errs != nil {
		// No status here: the status rules (withResponseRules) give a request error its own.
		resp := exec.DispatchError(graphql.WithOperationContext(ctx, opCtx), errs)
		writeResponse(w, resp, exchangeFrom(ctx).noData())
		return
	}
	if queryOnly && opCtx.Operation.Operation != ast.Query {
		w.Header().Set("Allow", "POST")
		writeError(w, r, exec, http.StatusMethodNotAllowed, resolvers.CodeMethodNotAllowed,
			fmt.Sprintf("a GET may only run a query, not a %s: send it with POST", opCtx.Operation.Operation))
		return
	}
	responses, ctx := exec.DispatchOperation(ctx, opCtx)
	resp := responses(ctx)
	writeResponse(w, resp, exchangeFrom(ctx).noData())
}

// responseBuffers hold answers while they are written; one larger than maxPooledBuffer is
// left to the garbage collector rather than kept.
var responseBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const maxPooledBuffer = 1 << 20

// writeResponse writes resp as encoding/json writes a graphql.Response, byte for byte, in one
// Write, but without the "data" entry when noData is set: the status rules want none in an
// answer given before execution (exchange.noData). Data and the extensions already in
// JSON (extensions.quota) are copied as they are, HTML-escaped as encoding/json escapes them;
// errors and other extensions are encoded by encoding/json.
func writeResponse(w io.Writer, resp *graphql.Response, noData bool) {
	buf := responseBuffers.Get().(*bytes.Buffer)
	buf.Reset()
	if err := appendResponse(buf, resp, noData); err != nil {
		// Not expected: everything in an answer marshals. Say so in JSON, as gqlgen would panic.
		buf.Reset()
		fmt.Fprintf(buf, `{"errors":[{"message":"internal error","extensions":{"code":%q}}]`, resolvers.CodeInternal)
		if !noData {
			buf.WriteString(`,"data":null`)
		}
		buf.WriteByte('}')
	}
	_, _ = w.Write(buf.Bytes())
	putBuffer(&responseBuffers, buf)
}

// appendResponse writes resp's JSON into buf, which must be empty: the fields of
// graphql.Response in their order, empty ones left out as its omitempty tags say, and data too
// when noData is set; the extensions sorted by name.
func appendResponse(buf *bytes.Buffer, resp *graphql.Response, noData bool) error {
	buf.WriteByte('{')
	// comma separates an entry from the one before it, if any.
	comma := func() {
		if buf.Len() > 1 {
			buf.WriteByte(',')
		}
	}
	if len(resp.Errors) > 0 {
		b, err := json.Marshal(resp.Errors)
		if err != nil {
			return err
		}
		buf.WriteString(`"errors":`)
		buf.Write(b)
	}
	if !noData {
		comma()
		buf.WriteString(`"data":`)
		if resp.Data == nil {
			buf.WriteString("null")
		} else {
			appendRaw(buf, resp.Data)
		}
	}
	if resp.Label != "" || len(resp.Path) > 0 || resp.HasNext != nil {
		rest, err := json.Marshal(struct {
			Label   string   `json:"label,omitempty"`
			Path    ast.Path `json:"path,omitempty"`
			HasNext *bool    `json:"hasNext,omitempty"`
		}{resp.Label, resp.Path, resp.HasNext})
		if err != nil {
			return err
		}
		comma()
		buf.Write(rest[1 : len(rest)-1])
	}
	if len(resp.Extensions) > 0 {
		comma()
		buf.WriteString(`"extensions":{`)
		names := make([]string, 0, len(resp.Extensions))
		for name := range resp.Extensions {
			names = append(names, name)
		}
		slices.Sort(names)
		for i, name := range names {
			if i > 0 {
				buf.WriteByte(',')
			}
			key, err := json.Marshal(name)
			if err != nil {
				return err
			}
			buf.Write(key)
			buf.WriteByte(':')
			if err := appendValue(buf, resp.Extensions[name]); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	}
	buf.WriteByte('}')
	return nil
}

// appendValue writes v's JSON: a json.RawMessage as it is (see appendRaw), anything else by
// encoding/json.
func appendValue(buf *bytes.Buffer, v any) error {
	if raw, ok := v.(json.RawMessage); ok && raw != nil {
		appendRaw(buf, raw)
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	buf.Write(b)
	return nil
}

// appendRaw writes JSON that gqlgen or QuotaReading.AppendJSON made (compact and valid) as
// encoding/json writes a json.RawMessage: with <, >, &, U+2028 and U+2029 escaped.
func appendRaw(buf *bytes.Buffer, raw json.RawMessage) {
	json.HTMLEscape(buf, raw)
}
