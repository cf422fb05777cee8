package gqlhttp

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// TestWriteResponse: an answer is written byte for byte as gqlgen's transports wrote it
// (encoding/json of the graphql.Response), in one Write.
func TestWriteResponse(t *testing.T) {
	t.Parallel()
	yes := true
	quota := json.RawMessage(`{"machines.get":{"endpoint":"machines.get","queued":0}}`)
	tests := []struct {
		name string
		resp *graphql.Response
	}{
		{"data", &graphql.Response{Data: json.RawMessage(`{"machine":{"id":"a"}}`)}},
		{"no data", &graphql.Response{}},
		{"data to escape for HTML", &graphql.Response{Data: json.RawMessage(`{"title":"<b>a & b</b>\u2028","x":"\"\\"}`)}},
		{"extensions, sorted", &graphql.Response{Data: json.RawMessage(`{}`), Extensions: map[string]any{
			"quota": quota, "stale": []map[string]any{{"path": ast.Path{ast.PathName("machine"), ast.PathIndex(2)}, "ageSeconds": 3}},
			"a <first>": "x"}}},
		{"errors", &graphql.Response{Errors: gqlerror.List{{Message: "no <such> device", Path: ast.Path{ast.PathName("machine")},
			Extensions: map[string]any{"code": "NOT_FOUND"}}}, Data: json.RawMessage(`{"machine":null}`), Extensions: map[string]any{"quota": quota}}},
		{"deferred parts", &graphql.Response{Data: json.RawMessage(`{"a":1}`), Label: "l", Path: ast.Path{ast.PathName("x")}, HasNext: &yes}},
		{"a nil raw extension", &graphql.Response{Data: json.RawMessage(`1`), Extensions: map[string]any{"x": json.RawMessage(nil)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			want, err := json.Marshal(tt.resp)
			if err != nil {
				t.Fatal(err)
			}
			var w countingWriter
			writeResponse(&w, tt.resp, false)
			if got := w.buf.String(); got != string(want) {
				t.Errorf("writeResponse:\n%s\nwant (encoding/json):\n%s", got, want)
			}
			if w.writes != 1 {
				t.Errorf("%d writes, want 1", w.writes)
			}
		})
	}
}

type countingWriter struct {
	buf    bytes.Buffer
	writes int
}

func (w *countingWriter) Write(b []byte) (int, error) {
	w.writes++
	return w.buf.Write(b)
}
