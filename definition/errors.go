package definition

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalid is wrapped by every Error.
var ErrInvalid = errors.New("invalid definition")

// Error is one problem in a definition file, with where it is.
type Error struct {
	// File is the definition's path.
	File string
	// Line and Column are 1-based; 0 when unknown.
	Line, Column int
	// Field is the path of the offending field, e.g. "staleness.budget" or
	// "when.all[1].within".
	Field string
	// Msg says what is wrong and what to write instead.
	Msg string
}

// Error writes "file:line:col: field: message", leaving out what is unknown.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ":%d", e.Column)
		}
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

func (e *Error) Unwrap() error { return ErrInvalid }

// Errors lists every problem found in a set of definition files, one a line.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the problems, so errors.As finds an *Error and errors.Is
// finds ErrInvalid.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}
