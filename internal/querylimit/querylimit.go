// Package querylimit refuses GraphQL documents too large to be worth parsing and validating.
//
// gqlgen parses a document into an AST and validates it before anything else looks at it, and
// both cost time and memory in proportion to the document: a 1 MiB POST holding 55,000 aliases
// of __typename took 13 s of CPU and 627 MB. Limits.Check reads the raw document once with
// gqlparser's lexer (the tokens gqlgen's parser would read, no AST) and stops at the first
// limit exceeded, so such a document is refused in well under a millisecond.
//
// What it counts, per operation and with fragment spreads expanded (a fragment spread three
// times counts three times, which is what validation and execution pay): fields, aliases,
// directives and selection depth; and the tokens of the whole document. A document it cannot
// make sense of is not refused here: the parser says what is wrong with it better, and stops at
// the first mistake.
package querylimit

import (
	"fmt"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/lexer"
)

// Limits bound one GraphQL document. A limit of zero or less is no limit.
type Limits struct {
	// Tokens bounds the lexical tokens of the whole document (names, punctuation, values and
	// comments), the count gqlgen's SetParserTokenLimit bounds.
	Tokens int
	// Aliases bounds the aliased fields of one operation (`a: machine(...)`).
	Aliases int
	// Depth bounds how deeply one operation's selections nest: a field of the operation's own
	// selection set is at depth 1, a field of its selection set at 2.
	Depth int
	// Fields bounds the fields one operation selects, __typename included.
	Fields int
	// Directives bounds the directives (@include, @skip, ...) one operation uses, those of its
	// variable definitions included.
	Directives int
}

// Limit names one of the Limits.
type Limit string

// The limits, as Exceeded names them.
const (
	Tokens     Limit = "tokens"
	Aliases    Limit = "aliases"
	Depth      Limit = "depth"
	Fields     Limit = "fields"
	Directives Limit = "directives"
)

// Exceeded is the limit a document exceeds.
type Exceeded struct {
	Limit Limit
	// Max is the limit.
	Max int
	// Count is what the document has. For Tokens it is Max+1: reading stops there, since
	// counting the rest would cost what the limit saves.
	Count int
	// Operation names the operation that exceeds it ("" for an anonymous operation, and for
	// Tokens, which counts the whole document).
	Operation string
}

// Error says which limit, the document's count and the limit.
func (e *Exceeded) Error() string {
	op := "the query"
	if e.Operation != "" {
		op = fmt.Sprintf("operation %s", e.Operation)
	}
	switch e.Limit {
	case Tokens:
		return fmt.Sprintf("the query has more than %d tokens, the limit", e.Max)
	case Depth:
		return fmt.Sprintf("%s nests selections %d deep, more than the limit of %d", op, e.Count, e.Max)
	}
	return fmt.Sprintf("%s has %d %s (fragments expanded), more than the limit of %d", op, e.Count, e.Limit, e.Max)
}

// Check reads query and returns the first limit it exceeds, or nil when it exceeds none or is
// not a document this package can count (a parse error the parser will report). It allocates
// little beyond one small record per operation and fragment, and reads no further than
// l.Tokens+1 tokens.
func (l Limits) Check(query string) *Exceeded {
	s := scanner{lex: newLexer(query), limits: l}
	if e := s.scan(); e != nil {
		return e
	}
	return s.check()
}

func newLexer(query string) lexer.Lexer { return lexer.New(&ast.Source{Input: query}) }

// definition is what the scanner learned of one operation or fragment, fragments not expanded.
type definition struct {
	name                       string
	fragment                   bool
	fields, aliases, directive int
	depth                      int // the deepest level a field is at
	spreads                    []spread
}

// spread is a fragment spread at a level: the fragment's own fields land at that level.
type spread struct {
	fragment string
	level    int
}

// scanner walks the tokens of an executable document with a stack of braces, not a grammar:
// it needs only to tell fields from aliases, arguments and directive names, and selection sets
// from object values. On malformed input its counts may be anything; the parser refuses that
// input anyway, no further than the tokens read here.
type scanner struct {
	lex    lexer.Lexer
	limits Limits
	tokens int

	peeked  bool
	peekTok lexer.Token
	peekOK  bool

	defs []definition
	cur  *definition // the definition being read, nil between definitions
	// frames are the levels of cur's open selection sets (braces inside parentheses are
	// object values, and not counted).
	frames []int
	parens int // open parentheses: arguments and variable definitions hold values, not selections
	// opensSelection says that a '{' now opens the selection set of the field just read
	// (its arguments and directives may come first).
	opensSelection bool
}

// next returns the next token that is not a comment; ok is false at the end, on a lexical
// error, and past the token limit (then exceeded is set).
func (s *scanner) next() (tok lexer.Token, ok bool, exceeded *Exceeded) {
	if s.peeked {
		s.peeked = false
		return s.peekTok, s.peekOK, nil
	}
	return s.read()
}

// read reads tokens up to one that is not a comment, counting each (the parser counts
// comments too).
func (s *scanner) read() (lexer.Token, bool, *Exceeded) {
	for {
		tok, err := s.lex.ReadToken()
		if err != nil || tok.Kind == lexer.EOF {
			return tok, false, nil
		}
		s.tokens++
		if s.limits.Tokens > 0 && s.tokens > s.limits.Tokens {
			return tok, false, &Exceeded{Limit: Tokens, Max: s.limits.Tokens, Count: s.tokens}
		}
		if tok.Kind != lexer.Comment {
			return tok, true, nil
		}
	}
}

// peek returns the next token without consuming it (an EOF token at the end or on an error).
func (s *scanner) peek() (lexer.Token, *Exceeded) {
	if !s.peeked {
		tok, ok, exceeded := s.read()
		if exceeded != nil {
			return tok, exceeded
		}
		s.peeked, s.peekTok, s.peekOK = true, tok, ok
	}
	if !s.peekOK {
		return lexer.Token{Kind: lexer.EOF}, nil
	}
	return s.peekTok, nil
}

// nextName consumes the next token if it is a name and returns it ("" otherwise).
func (s *scanner) nextName() (string, *Exceeded) {
	tok, exceeded := s.peek()
	if exceeded != nil || tok.Kind != lexer.Name {
		return "", exceeded
	}
	s.peeked = false
	return tok.Value, nil
}

// scan reads the whole document into s.defs, stopping early when a limit is already exceeded
// by a definition's own counts.
func (s *scanner) scan() *Exceeded {
	for {
		tok, ok, exceeded := s.next()
		if exceeded != nil || !ok {
			return exceeded
		}
		var e *Exceeded
		switch {
		case s.parens > 0:
			e = s.inParens(tok)
		case len(s.frames) == 0:
			e = s.topLevel(tok)
		default:
			e = s.inSelectionSet(tok)
		}
		if e != nil {
			return e
		}
	}
}

// inParens handles a token inside arguments or variable definitions: values, and the
// directives of variable definitions.
func (s *scanner) inParens(tok lexer.Token) *Exceeded {
	switch tok.Kind {
	case lexer.ParenL:
		s.parens++
	case lexer.ParenR:
		s.parens--
	case lexer.At:
		return s.directive()
	}
	return nil
}

// topLevel handles a token between definitions, or in a definition's header.
func (s *scanner) topLevel(tok lexer.Token) *Exceeded {
	switch tok.Kind {
	case lexer.Name:
		if s.cur != nil {
			return nil // a type condition's type name
		}
		switch tok.Value {
		case "query", "mutation", "subscription":
			s.begin(definition{})
			name, e := s.nextName()
			s.cur.name = name
			return e
		case "fragment":
			s.begin(definition{fragment: true})
			name, e := s.nextName()
			s.cur.name = name
			return e
		}
	case lexer.ParenL:
		s.parens++
	case lexer.At:
		return s.directive()
	case lexer.BraceL:
		if s.cur == nil { // the shorthand query { ... }
			s.begin(definition{})
		}
		s.frames = append(s.frames, 1)
	}
	return nil
}

// begin starts a definition.
func (s *scanner) begin(d definition) {
	s.defs = append(s.defs, d)
	s.cur = &s.defs[len(s.defs)-1]
}

// inSelectionSet handles a token inside a selection set.
func (s *scanner) inSelectionSet(tok lexer.Token) *Exceeded {
	level := s.frames[len(s.frames)-1]
	d := s.cur
	switch tok.Kind {
	case lexer.Name:
		next, e := s.peek()
		if e != nil {
			return e
		}
		if next.Kind == lexer.Colon {
			s.peeked = false
			if _, e := s.nextName(); e != nil {
				return e
			}
			d.aliases++
			if m := s.limits.Aliases; m > 0 && d.aliases > m {
				return &Exceeded{Limit: Aliases, Max: m, Count: d.aliases, Operation: d.name}
			}
		}
		d.fields++
		d.depth = max(d.depth, level)
		if m := s.limits.Fields; m > 0 && d.fields > m && !d.fragment {
			return &Exceeded{Limit: Fields, Max: m, Count: d.fields, Operation: d.name}
		}
		if m := s.limits.Depth; m > 0 && d.depth > m && !d.fragment {
			return &Exceeded{Limit: Depth, Max: m, Count: d.depth, Operation: d.name}
		}
		s.opensSelection = true
	case lexer.Spread:
		s.opensSelection = false
		next, e := s.peek()
		if e != nil || next.Kind != lexer.Name {
			return e // an inline fragment without a type condition: '{' or '@' follows
		}
		s.peeked = false
		if next.Value == "on" { // an inline fragment's type condition
			_, e := s.nextName()
			return e
		}
		d.spreads = append(d.spreads, spread{fragment: next.Value, level: level})
	case lexer.ParenL:
		s.parens++
	case lexer.At:
		return s.directive()
	case lexer.BraceL:
		if s.opensSelection {
			level++
		} // else an inline fragment's selections, at the level of the enclosing ones
		s.frames = append(s.frames, level)
		s.opensSelection = false
	case lexer.BraceR:
		s.frames = s.frames[:len(s.frames)-1]
		s.opensSelection = false
		if len(s.frames) == 0 {
			s.cur = nil
		}
	}
	return nil
}

// directive counts a directive after its '@' and consumes its name, which is not a field.
func (s *scanner) directive() *Exceeded {
	if _, e := s.nextName(); e != nil {
		return e
	}
	if s.cur == nil {
		return nil // not in a definition: malformed
	}
	s.cur.directive++
	if m := s.limits.Directives; m > 0 && s.cur.directive > m && !s.cur.fragment {
		return &Exceeded{Limit: Directives, Max: m, Count: s.cur.directive, Operation: s.cur.name}
	}
	return nil
}

// counts are what one definition selects, fragments expanded.
type counts struct {
	fields, aliases, directives, depth int
}

// check expands the fragments of every operation and compares the totals with the limits.
func (s *scanner) check() *Exceeded {
	x := newExpander(s.defs)
	for i := range s.defs {
		d := &s.defs[i]
		if d.fragment {
			continue
		}
		c := x.total(d)
		for _, l := range []struct {
			limit    Limit
			max, got int
		}{
			{Aliases, s.limits.Aliases, c.aliases},
			{Fields, s.limits.Fields, c.fields},
			{Depth, s.limits.Depth, c.depth},
			{Directives, s.limits.Directives, c.directives},
		} {
			if l.max > 0 && l.got > l.max {
				return &Exceeded{Limit: l.limit, Max: l.max, Count: l.got, Operation: d.name}
			}
		}
	}
	return nil
}

// expander totals definitions with their fragments expanded, each fragment once (memo). A
// fragment that spreads itself, directly or not, counts nothing the second time: validation
// refuses the cycle.
type expander struct {
	fragments map[string]*definition
	memo      map[string]counts
	visiting  map[string]bool
}

// newExpander knows the fragments among defs (the first of a name: validation refuses the
// others).
func newExpander(defs []definition) *expander {
	x := &expander{fragments: make(map[string]*definition), memo: make(map[string]counts), visiting: make(map[string]bool)}
	for i := range defs {
		if d := &defs[i]; d.fragment {
			if _, dup := x.fragments[d.name]; !dup {
				x.fragments[d.name] = d
			}
		}
	}
	return x
}

// total is d's counts with its fragment spreads expanded.
func (x *expander) total(d *definition) counts {
	c := counts{fields: d.fields, aliases: d.aliases, directives: d.directive, depth: d.depth}
	for _, sp := range d.spreads {
		f, ok := x.fragments[sp.fragment]
		if !ok || x.visiting[sp.fragment] {
			continue // unknown, or a cycle: validation refuses both
		}
		fc, done := x.memo[sp.fragment]
		if !done {
			x.visiting[sp.fragment] = true
			fc = x.total(f)
			delete(x.visiting, sp.fragment)
			x.memo[sp.fragment] = fc
		}
		c.fields = addSat(c.fields, fc.fields)
		c.aliases = addSat(c.aliases, fc.aliases)
		c.directives = addSat(c.directives, fc.directives)
		if fc.depth > 0 {
			c.depth = max(c.depth, addSat(sp.level-1, fc.depth))
		}
	}
	return c
}

// addSat adds without overflowing: fragments spread in fragments multiply, and 40 levels of
// doubling overflow an int32.
func addSat(a, b int) int {
	const top = 1 << 40
	return min(a+b, top)
}

// CountTokens counts the tokens of query as gqlgen's parser does (comments included), up to the
// first lexical error. It is a measure of what the parsed document costs to keep: its AST
// takes about 200 to 250 bytes per token.
func CountTokens(query string) int {
	s := scanner{lex: newLexer(query)}
	for {
		if _, ok, _ := s.read(); !ok {
			return s.tokens
		}
	}
}
