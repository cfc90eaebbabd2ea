package materialize

import (
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrInvalidDefinition is wrapped by every error about an audience file.
	ErrInvalidDefinition = errors.New("invalid audience definition")
	// ErrUnknownAudience is returned for an audience id that is not defined.
	ErrUnknownAudience = errors.New("unknown audience")
)

// DefinitionError is one problem in an audience file, with where it is.
type DefinitionError struct {
	File   string
	Line   int
	Column int
	// Field is the path of the offending field, e.g. "when.all[1].within".
	Field   string
	Message string
}

func (e *DefinitionError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Column)
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	return b.String()
}

func (e *DefinitionError) Unwrap() error { return ErrInvalidDefinition }

// DefinitionErrors lists every problem found in a set of audience files.
type DefinitionErrors []*DefinitionError

func (es DefinitionErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

func (es DefinitionErrors) Unwrap() error { return ErrInvalidDefinition }
