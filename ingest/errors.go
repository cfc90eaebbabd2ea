package ingest

import (
	"errors"
	"fmt"
)

// FieldError is a rejected event: what was wrong and in which field. It is
// what the collector answers with and what a dead letter records.
type FieldError struct {
	// Field names the offending JSON field, e.g. "timestamp" or "batch[3].messageId".
	Field string `json:"field,omitempty"`
	// Code is a stable machine-readable reason, e.g. "missing_field".
	Code string `json:"code"`
	// Message says what was wrong and how to fix it.
	Message string `json:"error"`
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

// Reason codes shared by the collector and the loader.
const (
	CodeMalformedJSON   = "malformed_json"
	CodeMissingField    = "missing_field"
	CodeInvalidField    = "invalid_field"
	CodeInvalidTime     = "invalid_timestamp"
	CodeTooLarge        = "too_large"
	CodeUnknownType     = "unknown_type"
	CodeTooDeep         = "too_deep"
	CodeInvalidEncoding = "invalid_utf8"
	// CodeOriginNotAllowed: a browser request from an origin its source does not list.
	CodeOriginNotAllowed = "origin_not_allowed"
	// CodeTypeNotAllowed: a call type its source's allowed_types does not list.
	CodeTypeNotAllowed = "type_not_allowed"
)

func fieldErr(field, code, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Code: code, Message: fmt.Sprintf(format, args...)}
}

// withPrefix renames the field of a FieldError, e.g. to "batch[2].userId".
func withPrefix(err error, prefix string) error {
	var fe *FieldError
	if errors.As(err, &fe) {
		c := *fe
		if c.Field == "" {
			c.Field = prefix
		} else {
			c.Field = prefix + "." + c.Field
		}
		return &c
	}
	return err
}

// ErrOverloaded means the collector refused work to protect itself; the
// client should retry after the advertised delay.
var ErrOverloaded = errors.New("collector overloaded")
