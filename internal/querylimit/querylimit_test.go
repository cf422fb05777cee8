package querylimit

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

// measure scans query without limits and returns its token count and the counts of each
// operation, fragments expanded, by operation name.
func measure(t testing.TB, query string) (tokens int, ops map[string]counts) {
	t.Helper()
	s := scanner{}
	s.lex = newLexer(query)
	if e := s.scan(); e != nil {
		t.Fatalf("scan without limits: %v", e)
	}
	x := newExpander(s.defs)
	ops = map[string]counts{}
	for i := range s.defs {
		if d := &s.defs[i]; !d.fragment {
			ops[d.name] = x.total(d)
		}
	}
	return s.tokens, ops
}

func TestCounts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		query string
		want  counts
	}{
		{"shorthand", `{ __typename }`, counts{fields: 1, depth: 1}},
		{"aliases and nesting", `{ a: machine(id: "x") { id logonUsers { id } } b: machine(id: 1) { id } }`,
			counts{fields: 6, aliases: 2, depth: 3}},
		{"arguments hold no fields", `{ machine(id: "{ a b c }", x: {a: {b: [1, {c: 2}]}}) { id } }`,
			counts{fields: 2, depth: 2}},
		{"directives", `query Q($s: Boolean! @d) @o { machine(id: "x") @include(if: $s) { id @skip(if: true) } }`,
			counts{fields: 2, depth: 2, directives: 4}},
		{"fragment expanded at each spread", `query Q { a: machine(id: "1") { ...F } b: machine(id: "2") { ...F } }
			fragment F on Machine { id k: osPlatform logonUsers { id } }`,
			counts{fields: 2 + 2*4, aliases: 2 + 2*1, depth: 3}},
		{"fragment in a fragment, depth added at the spread", `{ ...A } fragment A on Query { quota { ...B } } fragment B on EndpointQuota { minute { limit } }`,
			counts{fields: 3, depth: 3}},
		{"fragment directives count at each spread", `{ ...A ...A } fragment A on Query @d { __typename }`,
			counts{fields: 2, directives: 2, depth: 1}},
		{"inline fragments add no level", `{ ... on Query { quota { ... @include(if: true) { endpoint } } } }`,
			counts{fields: 2, directives: 1, depth: 2}},
		{"comments are not fields", "{ a # b c : d\n : __typename # e {\n }", counts{fields: 1, aliases: 1, depth: 1}},
		{"a cycle counts once", `{ ...A } fragment A on Query { __typename ...B } fragment B on Query { __typename ...A }`,
			counts{fields: 2, depth: 1}},
		{"unknown fragment counts nothing", `{ ...Nope __typename }`, counts{fields: 1, depth: 1}},
		{"block strings", `{ machine(id: """ a: b { c } """) { id } }`, counts{fields: 2, depth: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, ops := measure(t, tt.query)
			var got counts
			for _, c := range ops {
				got = c
			}
			if len(ops) != 1 || got != tt.want {
				t.Errorf("counts = %+v (%d operations), want %+v", ops, len(ops), tt.want)
			}
			if want := astCounts(t, tt.query); want != nil && tt.name != "comments are not fields" {
				for name, c := range want {
					if ops[name] != c {
						t.Errorf("operation %q: scanner %+v, AST %+v", name, ops[name], c)
					}
				}
			}
		})
	}
}

// bomb is a fragment bomb: fragment i holds body, in which %[1]d is the fragment before it.
func bomb(n int, body string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "{ ...F%d }\nfragment F0 on Query { __typename }\n", n)
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "fragment F%d on Query { %s }\n", i, fmt.Sprintf(body, i-1))
	}
	return b.String()
}

// aliasBomb spreads each fragment in the next under two aliases, so the operation selects
// 3·2^n-2 fields, 2^(n+1)-2 of them aliased, in a document of n lines.
func aliasBomb(n int) string { return bomb(n, "a: quota { ...F%[1]d } b: quota { ...F%[1]d }") }

// fieldBomb spreads each fragment twice in the next, without aliases: 2^(n+1)-1 fields.
func fieldBomb(n int) string { return bomb(n, "__typename ...F%[1]d ...F%[1]d") }

// Defaults that every honest query passes; the service's configuration uses its own, checked
// against the same documents in package gqlhttp.
var testLimits = Limits{Tokens: 10000, Aliases: 200, Depth: 15, Fields: 2000, Directives: 50}

func TestCheck(t *testing.T) {
	t.Parallel()
	repeat := func(s string, n int) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			fmt.Fprintf(&b, s, i)
		}
		b.WriteString("}")
		return b.String()
	}
	tests := []struct {
		name  string
		query string
		want  *Exceeded
	}{
		{"55,000 aliases of __typename: stops at the 201st", repeat("a%d: __typename ", 55000),
			&Exceeded{Limit: Aliases, Max: 200, Count: 201}},
		{"a list of 55,000 values: stops at the 10001st token", "{ machine(id: [" + strings.Repeat("1 ", 55000) + "]) { id } }",
			&Exceeded{Limit: Tokens, Max: 10000, Count: 10001}},
		{"201 aliases", repeat("a%d: __typename ", 201), &Exceeded{Limit: Aliases, Max: 200, Count: 201}},
		{"200 aliases", repeat("a%d: __typename ", 200), nil},
		{"2001 fields", "{" + strings.Repeat("__typename ", 2001) + "}", &Exceeded{Limit: Fields, Max: 2000, Count: 2001}},
		{"16 deep", "query Deep {" + strings.Repeat("a {", 15) + "b" + strings.Repeat("}", 16),
			&Exceeded{Limit: Depth, Max: 15, Count: 16, Operation: "Deep"}},
		{"15 deep", "{" + strings.Repeat("a {", 14) + "b" + strings.Repeat("}", 15), nil},
		{"51 directives", "{" + strings.Repeat("__typename @skip(if: false) ", 51) + "}", &Exceeded{Limit: Directives, Max: 50, Count: 51}},
		{"fragment bomb, aliases", aliasBomb(11), &Exceeded{Limit: Aliases, Max: 200, Count: 1<<12 - 2}},
		{"fragment bomb, fields", fieldBomb(10), &Exceeded{Limit: Fields, Max: 2000, Count: 1<<11 - 1}},
		{"fragment bomb of 60 levels", fieldBomb(60), &Exceeded{Limit: Fields, Max: 2000, Count: 1 << 40}},
		{"fragment bomb, depth", "{ ...F } fragment F on Query { " + strings.Repeat("a {", 9) + "b" + strings.Repeat("}", 9) + " } " +
			"fragment G on Query { x { y { z { ...F } } } }" + " query Q { w { x { y { ...G } } } }",
			&Exceeded{Limit: Depth, Max: 15, Count: 16, Operation: "Q"}},
		{"a second operation over a limit", "query A { __typename } query B " + repeat("a%d: __typename ", 201),
			&Exceeded{Limit: Aliases, Max: 200, Count: 201, Operation: "B"}},
		{"a long comment is tokens", "# " + strings.Repeat("x", 1<<20) + "\n{ __typename }", nil},
		{"many comments are tokens", strings.Repeat("#\n", 10001) + "{ __typename }", &Exceeded{Limit: Tokens, Max: 10000, Count: 10001}},
		{"not GraphQL", "SELECT * FROM machines", nil},
		{"a lexical error", `{ "unterminated }`, nil},
		{"empty", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := testLimits.Check(tt.query)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) || (got == nil) != (tt.want == nil) || got != nil && *got != *tt.want {
				t.Errorf("Check = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// Honest documents pass the limits with room to spare: the real introspection queries of
// GraphiQL (graphql-js 16.15.0's getIntrospectionQuery, the version GraphiQL 3.9.0 bundles,
// with GraphiQL's options, and with every option on).
func TestIntrospectionQueriesPass(t *testing.T) {
	t.Parallel()
	for _, file := range []string{"testdata/graphiql-introspection.graphql", "testdata/full-introspection.graphql"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		tokens, ops := measure(t, string(b))
		c := ops["IntrospectionQuery"]
		t.Logf("%s: %d tokens, %+v", file, tokens, c)
		if e := testLimits.Check(string(b)); e != nil {
			t.Errorf("%s refused: %v", file, e)
		}
		if c.depth < 10 || c.fields < 100 {
			t.Errorf("%s: counts %+v look too small for an introspection query", file, c)
		}
		if want := astCounts(t, string(b)); want["IntrospectionQuery"] != c {
			t.Errorf("%s: scanner %+v, AST %+v", file, c, want["IntrospectionQuery"])
		}
	}
}

func TestExceededError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		e    Exceeded
		want string
	}{
		{Exceeded{Limit: Tokens, Max: 10, Count: 11}, "the query has more than 10 tokens, the limit"},
		{Exceeded{Limit: Aliases, Max: 2, Count: 3, Operation: "Q"}, "operation Q has 3 aliases (fragments expanded), more than the limit of 2"},
		{Exceeded{Limit: Depth, Max: 2, Count: 3}, "the query nests selections 3 deep, more than the limit of 2"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

// astCounts is the reference: the counts of each operation of query as gqlparser's parser
// sees it, or nil when it does not parse. An alias equal to its field's name (`a: a`) is
// invisible in the AST, so astCounts counts only aliases that differ.
func astCounts(t testing.TB, query string) map[string]counts {
	t.Helper()
	doc, err := parser.ParseQuery(&ast.Source{Input: query})
	if err != nil {
		return nil
	}
	frags := map[string]*ast.FragmentDefinition{}
	for _, f := range doc.Fragments {
		if _, dup := frags[f.Name]; !dup {
			frags[f.Name] = f
		}
	}
	out := map[string]counts{}
	for _, op := range doc.Operations {
		c := counts{directives: len(op.Directives)}
		for _, v := range op.VariableDefinitions {
			c.directives += len(v.Directives)
		}
		walk(op.SelectionSet, 1, frags, map[string]bool{}, &c)
		out[op.Name] = c
	}
	return out
}

func walk(set ast.SelectionSet, level int, frags map[string]*ast.FragmentDefinition, visiting map[string]bool, c *counts) {
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			c.fields++
			if s.Alias != s.Name {
				c.aliases++
			}
			c.directives += len(s.Directives)
			c.depth = max(c.depth, level)
			walk(s.SelectionSet, level+1, frags, visiting, c)
		case *ast.InlineFragment:
			c.directives += len(s.Directives)
			walk(s.SelectionSet, level, frags, visiting, c)
		case *ast.FragmentSpread:
			c.directives += len(s.Directives)
			f, ok := frags[s.Name]
			if !ok || visiting[s.Name] {
				continue
			}
			visiting[s.Name] = true
			c.directives += len(f.Directives)
			walk(f.SelectionSet, level, frags, visiting, c)
			delete(visiting, s.Name)
		}
	}
}

// FuzzCheck: Check never panics, and on any document gqlparser parses, the scanner counts
// what the parser's AST holds (aliases at least as many: `a: a` is invisible there), and the
// parser reads no more tokens than the scanner counted.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{
		`{ __typename }`,
		`query Q($id: ID! = "x" @d) @o { a: machine(id: $id) @include(if: true) { id ...F ... on Machine { osPlatform } } }
		 fragment F on Machine { logonUsers { id } }`,
		`{ machine(id: {a: [1, "}", {b: $c}]}) { id } }`,
		"{ a #c\n : b }",
		aliasBomb(4), fieldBomb(4),
		`{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }`,
		`subscription { x } mutation M { y(a: 1) { z } }`,
		`}{`, `{{{`, `...`, `@`, `fragment`, `query (`, `{ a: }`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, query string) {
		testLimits.Check(query)
		want := astCounts(t, query)
		if want == nil {
			return
		}
		tokens, ops := measure(t, query)
		if _, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: query}, tokens); err != nil {
			t.Errorf("the parser needs more than the %d tokens the scanner counted: %v", tokens, err)
		}
		for name, w := range want {
			g := ops[name]
			if g.fields != w.fields || g.depth != w.depth || g.directives != w.directives || g.aliases < w.aliases {
				t.Errorf("operation %q: scanner %+v, AST %+v", name, g, w)
			}
		}
	})
}

func TestCountTokens(t *testing.T) {
	t.Parallel()
	tests := []struct {
		query string
		want  int
	}{
		{"", 0},
		{"{ __typename }", 3},
		{"# one\n# two\n{ a: b(c: [1, 2]) }", 15},
		{`{ "unterminated`, 1},
	}
	for _, tt := range tests {
		if got := CountTokens(tt.query); got != tt.want {
			t.Errorf("CountTokens(%q) = %d, want %d", tt.query, got, tt.want)
		}
	}
}
