package materialize

import (
	"errors"

	"github.com/tideline-dev/tideline/definition"
)

var (
	// ErrInvalidDefinition is wrapped by every error about an audience file.
	ErrInvalidDefinition = definition.ErrInvalid
	// ErrUnknownAudience is returned for an audience id that is not defined.
	ErrUnknownAudience = errors.New("unknown audience")
)

// DefinitionError is one problem in an audience file, with where it is;
// campaigns report theirs with the same type.
type DefinitionError = definition.Error

// DefinitionErrors lists every problem found in a set of audience files.
type DefinitionErrors = definition.Errors
