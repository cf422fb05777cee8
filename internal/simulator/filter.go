package simulator

import (
	"strconv"
	"strings"
	"time"
)

// The $filter language the simulator understands, a subset of OData v4:
//
//	filter     = or
//	or         = and { "or" and }
//	and        = primary { "and" primary }
//	primary    = "(" or ")" | startswith | any | comparison
//	comparison = property op value | property "in" "(" value { "," value } ")"
//	op         = "eq" | "ne" | "gt" | "ge" | "lt" | "le"
//	startswith = "startswith" "(" property "," string ")"
//	any        = "machineTags" "/" "any" "(" var ":" var "eq" string ")"
//	value      = string | number | date-time | "null"
//
// Keywords and property names are case-insensitive. The properties are those the upstream
// documents as filterable. String comparisons ignore case: the upstream matches names that way
// on GET by name, and its filters are assumed to do the same (unconfirmed). `in` is unconfirmed
// upstream and accepted here. `not`, other functions and arithmetic are refused with 400.

// filterExpr is a parsed $filter.
type filterExpr interface {
	match(m *Machine) bool
}

// maxFilterDepth bounds parenthesis nesting, so a hostile filter cannot recurse without end.
const maxFilterDepth = 100

// parseFilter parses a $filter; errors are *filterError and say what was wrong and where.
func parseFilter(src string) (filterExpr, error) {
	if strings.TrimSpace(src) == "" {
		return nil, errAt(0, "the filter is empty")
	}
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	e, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tokEOF {
		return nil, errAt(t.pos, "expected 'and', 'or' or the end of the filter, found %s", t.describe())
	}
	return e, nil
}

type parser struct {
	toks  []token
	i     int
	depth int
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tokEOF {
		p.i++
	}
	return t
}

func isKeyword(t token, kw string) bool { return t.kind == tokIdent && strings.EqualFold(t.text, kw) }

func (p *parser) expect(kind tokenKind, what string) (token, error) {
	t := p.next()
	if t.kind != kind {
		return t, errAt(t.pos, "expected %s, found %s", what, t.describe())
	}
	return t, nil
}

func (p *parser) parseOr() (filterExpr, error) {
	return p.parseChain("or", p.parseAnd, func(es []filterExpr) filterExpr { return orExpr(es) })
}

func (p *parser) parseAnd() (filterExpr, error) {
	return p.parseChain("and", p.parsePrimary, func(es []filterExpr) filterExpr { return andExpr(es) })
}

// parseChain reads operand { keyword operand } into one flat node, so hundreds of `or` terms
// cost a slice, not a deep tree.
func (p *parser) parseChain(keyword string, operand func() (filterExpr, error), join func([]filterExpr) filterExpr) (filterExpr, error) {
	first, err := operand()
	if err != nil {
		return nil, err
	}
	terms := []filterExpr{first}
	for isKeyword(p.peek(), keyword) {
		p.next()
		e, err := operand()
		if err != nil {
			return nil, err
		}
		terms = append(terms, e)
	}
	if len(terms) == 1 {
		return first, nil
	}
	return join(terms), nil
}

func (p *parser) parsePrimary() (filterExpr, error) {
	t := p.peek()
	switch {
	case t.kind == tokLParen:
		p.next()
		if p.depth++; p.depth > maxFilterDepth {
			return nil, errAt(t.pos, "parentheses are nested more than %d deep", maxFilterDepth)
		}
		e, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		if _, err := p.expect(tokRParen, "')'"); err != nil {
			return nil, err
		}
		p.depth--
		return e, nil
	case isKeyword(t, "not"):
		return nil, errAt(t.pos, "'not' is not supported; use 'ne' or invert the condition")
	case t.kind == tokIdent && p.toks[p.i+1].kind == tokLParen:
		if isKeyword(t, "startswith") {
			return p.parseStartsWith()
		}
		return nil, errAt(t.pos, "unsupported function %s; the only function is startswith(computerDnsName,'prefix')", t.describe())
	case t.kind == tokIdent:
		return p.parseComparison()
	case t.kind == tokEOF:
		return nil, errAt(t.pos, "expected a condition, found the end of the filter")
	}
	return nil, errAt(t.pos, "expected a condition such as id eq 'x', found %s", t.describe())
}

func (p *parser) parseStartsWith() (filterExpr, error) {
	p.next() // startswith
	p.next() // (
	f, err := p.parseProperty()
	if err != nil {
		return nil, err
	}
	if f.kind != kindString {
		return nil, errAt(p.toks[p.i-1].pos, "startswith needs a string property; %s is not one", f.name)
	}
	if _, err := p.expect(tokComma, "',' after the property in startswith"); err != nil {
		return nil, err
	}
	prefix, err := p.expect(tokString, "a quoted prefix in startswith")
	if err != nil {
		return nil, err
	}
	if _, err := p.expect(tokRParen, "')' closing startswith"); err != nil {
		return nil, err
	}
	return startsWithExpr{field: f, prefix: strings.ToLower(prefix.text)}, nil
}

// parseProperty reads a filterable property name.
func (p *parser) parseProperty() (*filterField, error) {
	t := p.next()
	if t.kind != tokIdent {
		return nil, errAt(t.pos, "expected a property name, found %s", t.describe())
	}
	f := lookupField(t.text)
	if f == nil {
		return nil, errAt(t.pos, "%s is not a filterable property; use one of %s", t.describe(), filterableNames())
	}
	return f, nil
}

func (p *parser) parseComparison() (filterExpr, error) {
	if isKeyword(p.peek(), "machineTags") && p.toks[p.i+1].kind == tokSlash {
		return p.parseAnyTag()
	}
	f, err := p.parseProperty()
	if err != nil {
		return nil, err
	}
	if f.kind == kindTags {
		return nil, errAt(p.toks[p.i-1].pos, "machineTags is a collection; write machineTags/any(t: t eq 'tag')")
	}
	opTok := p.next()
	op := strings.ToLower(opTok.text)
	if opTok.kind != tokIdent || !isComparison(op) && op != "in" {
		return nil, errAt(opTok.pos, "expected an operator (eq, ne, gt, ge, lt, le or in) after %s, found %s", f.name, opTok.describe())
	}
	if op == "in" {
		return p.parseIn(f)
	}
	v, err := p.parseValue(f)
	if err != nil {
		return nil, err
	}
	if v.null && op != "eq" && op != "ne" {
		return nil, errAt(opTok.pos, "null can only be compared with eq or ne")
	}
	return cmpExpr{field: f, op: op, value: v}, nil
}

func isComparison(op string) bool {
	switch op {
	case "eq", "ne", "gt", "ge", "lt", "le":
		return true
	}
	return false
}

func (p *parser) parseIn(f *filterField) (filterExpr, error) {
	if _, err := p.expect(tokLParen, "'(' after in"); err != nil {
		return nil, err
	}
	var values []filterValue
	for {
		v, err := p.parseValue(f)
		if err != nil {
			return nil, err
		}
		values = append(values, v)
		t := p.next()
		if t.kind == tokRParen {
			return inExpr{field: f, values: values}, nil
		}
		if t.kind != tokComma {
			return nil, errAt(t.pos, "expected ',' or ')' in the in list, found %s", t.describe())
		}
	}
}

// parseAnyTag reads machineTags/any(t: t eq 'tag'), the one lambda the upstream documents.
func (p *parser) parseAnyTag() (filterExpr, error) {
	p.next() // machineTags
	p.next() // /
	if t := p.next(); !isKeyword(t, "any") {
		return nil, errAt(t.pos, "expected any after machineTags/, found %s", t.describe())
	}
	if _, err := p.expect(tokLParen, "'(' after machineTags/any"); err != nil {
		return nil, err
	}
	v, err := p.expect(tokIdent, "a lambda variable, as in machineTags/any(t: t eq 'tag')")
	if err != nil {
		return nil, err
	}
	if _, err := p.expect(tokColon, "':' after the lambda variable"); err != nil {
		return nil, err
	}
	if t := p.next(); t.kind != tokIdent || t.text != v.text {
		return nil, errAt(t.pos, "expected the lambda variable %s, found %s", v.describe(), t.describe())
	}
	if t := p.next(); !isKeyword(t, "eq") {
		return nil, errAt(t.pos, "only eq is supported inside machineTags/any, found %s", t.describe())
	}
	tag, err := p.expect(tokString, "a quoted tag")
	if err != nil {
		return nil, err
	}
	if _, err := p.expect(tokRParen, "')' closing machineTags/any"); err != nil {
		return nil, err
	}
	return anyTagExpr{tag: tag.text}, nil
}

// filterValue is a literal of a comparison, converted to its property's kind.
type filterValue struct {
	null bool
	s    string // lower-cased, for string properties
	n    int64
	t    time.Time
}

// parseValue reads a literal and converts it to f's kind. Numbers and date-times may also come
// quoted: rbacGroupId is documented as a string and sent as a number, so both are accepted.
func (p *parser) parseValue(f *filterField) (filterValue, error) {
	t := p.next()
	switch {
	case isKeyword(t, "null"):
		return filterValue{null: true}, nil
	case t.kind != tokString && t.kind != tokLiteral:
		return filterValue{}, errAt(t.pos, "expected a value for %s, found %s", f.name, t.describe())
	}
	switch f.kind {
	case kindString:
		if t.kind != tokString {
			return filterValue{}, errAt(t.pos, "%s is a string property; quote the value: '%s'", f.name, clip(t.text))
		}
		return filterValue{s: strings.ToLower(t.text)}, nil
	case kindInt:
		n, err := strconv.ParseInt(strings.TrimSpace(t.text), 10, 64)
		if err != nil {
			return filterValue{}, errAt(t.pos, "%s is a number; %s is not an integer", f.name, t.describe())
		}
		return filterValue{n: n}, nil
	default: // kindTime
		tm, ok := parseFilterTime(t.text)
		if !ok {
			return filterValue{}, errAt(t.pos, "%s is a date-time; %s is not one (write e.g. 2024-05-01T00:00:00Z)", f.name, t.describe())
		}
		return filterValue{t: tm}, nil
	}
}

var filterTimeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05.9999999", "2006-01-02Z", "2006-01-02"}

func parseFilterTime(s string) (time.Time, bool) {
	for _, layout := range filterTimeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

type orExpr []filterExpr

func (e orExpr) match(m *Machine) bool {
	for _, t := range e {
		if t.match(m) {
			return true
		}
	}
	return false
}

type andExpr []filterExpr

func (e andExpr) match(m *Machine) bool {
	for _, t := range e {
		if !t.match(m) {
			return false
		}
	}
	return true
}

type cmpExpr struct {
	field *filterField
	op    string
	value filterValue
}

// match follows OData's null rules: null eq null, null ne any value, and no order with null.
func (e cmpExpr) match(m *Machine) bool {
	c, present := e.field.compare(m, e.value)
	if e.value.null || !present {
		isNull := !present
		switch e.op {
		case "eq":
			return isNull == e.value.null
		case "ne":
			return isNull != e.value.null
		}
		return false
	}
	switch e.op {
	case "eq":
		return c == 0
	case "ne":
		return c != 0
	case "gt":
		return c > 0
	case "ge":
		return c >= 0
	case "lt":
		return c < 0
	default: // le
		return c <= 0
	}
}

type inExpr struct {
	field  *filterField
	values []filterValue
}

func (e inExpr) match(m *Machine) bool {
	for _, v := range e.values {
		if (cmpExpr{field: e.field, op: "eq", value: v}).match(m) {
			return true
		}
	}
	return false
}

type startsWithExpr struct {
	field  *filterField
	prefix string // lower-cased
}

func (e startsWithExpr) match(m *Machine) bool {
	v := e.field.str(m)
	return v != nil && strings.HasPrefix(strings.ToLower(*v), e.prefix)
}

type anyTagExpr struct{ tag string }

func (e anyTagExpr) match(m *Machine) bool { return m.hasTag(e.tag) }
