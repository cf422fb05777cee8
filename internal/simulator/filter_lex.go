package simulator

import (
	"fmt"
	"strings"
)

// tokenKind classifies a $filter token.
type tokenKind int

const (
	tokEOF     tokenKind = iota
	tokIdent             // a property name, keyword or function name
	tokString            // a single-quoted string; text is unescaped
	tokLiteral           // an unquoted number or date-time
	tokLParen
	tokRParen
	tokComma
	tokColon
	tokSlash
)

// token is one lexeme of a $filter, with its byte offset for error messages.
type token struct {
	kind tokenKind
	text string
	pos  int
}

// describe renders a token for an error message.
func (t token) describe() string {
	switch t.kind {
	case tokEOF:
		return "the end of the filter"
	case tokString:
		return "'" + strings.ReplaceAll(clip(t.text), "'", "''") + "'"
	}
	return "'" + clip(t.text) + "'"
}

// filterError is a $filter the simulator refuses, with where the problem is.
type filterError struct {
	pos int // byte offset in the filter
	msg string
}

func (e *filterError) Error() string {
	return fmt.Sprintf("Invalid $filter at position %d: %s", e.pos+1, e.msg)
}

func errAt(pos int, format string, args ...any) *filterError {
	return &filterError{pos: pos, msg: fmt.Sprintf(format, args...)}
}

var punctuation = map[byte]tokenKind{'(': tokLParen, ')': tokRParen, ',': tokComma, ':': tokColon, '/': tokSlash}

// lex splits a $filter into tokens. Strings are single-quoted, a quote inside one doubled,
// as OData writes them.
func lex(src string) ([]token, error) {
	var toks []token
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '\'':
			text, next, err := lexString(src, i)
			if err != nil {
				return nil, err
			}
			toks = append(toks, token{kind: tokString, text: text, pos: i})
			i = next
		case isIdentStart(c):
			j := i + 1
			for j < len(src) && isIdentPart(src[j]) {
				j++
			}
			toks = append(toks, token{kind: tokIdent, text: src[i:j], pos: i})
			i = j
		case isDigit(c) || (c == '-' && i+1 < len(src) && isDigit(src[i+1])):
			j := i + 1
			for j < len(src) && isLiteralPart(src[j]) {
				j++
			}
			toks = append(toks, token{kind: tokLiteral, text: src[i:j], pos: i})
			i = j
		default:
			kind, ok := punctuation[c]
			if !ok {
				return nil, errAt(i, "unexpected character %q", rune(src[i]))
			}
			toks = append(toks, token{kind: kind, text: src[i : i+1], pos: i})
			i++
		}
	}
	return append(toks, token{kind: tokEOF, pos: len(src)}), nil
}

// lexString reads the string starting at the quote at src[start].
func lexString(src string, start int) (string, int, error) {
	var b strings.Builder
	for i := start + 1; i < len(src); i++ {
		if src[i] != '\'' {
			b.WriteByte(src[i])
			continue
		}
		if i+1 < len(src) && src[i+1] == '\'' {
			b.WriteByte('\'')
			i++
			continue
		}
		return b.String(), i + 1, nil
	}
	return "", 0, errAt(start, "unterminated string: a quote inside a string is written as two quotes ('')")
}

func isIdentStart(c byte) bool { return c == '_' || (c|0x20 >= 'a' && c|0x20 <= 'z') }

func isIdentPart(c byte) bool { return isIdentStart(c) || isDigit(c) }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// isLiteralPart covers numbers and ISO-8601 date-times (2024-05-01T10:00:00.5Z, +01:00).
func isLiteralPart(c byte) bool {
	return isDigit(c) || isIdentStart(c) || c == ':' || c == '.' || c == '-' || c == '+'
}
