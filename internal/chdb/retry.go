package chdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
)

// ClickHouse server error codes tideline names (ErrorCodes.cpp).
const (
	CodeUnknownTable    int32 = 60
	CodeUnknownDatabase int32 = 81
)

// fix says, by ClickHouse error code, what an operator does about an error
// that sending the statement again cannot cure. Every code here is
// permanent; a code not listed is retried (overload, timeouts, a replica
// or ZooKeeper away, too many parts: the server recovers on its own).
var fix = map[int32]string{
	8:                   "a column is missing: run `tideline migrate` so the schema matches this build",
	10:                  "a column is missing: run `tideline migrate` so the schema matches this build",
	16:                  "a column is missing: run `tideline migrate` so the schema matches this build",
	47:                  "a column is missing: run `tideline migrate` so the schema matches this build",
	CodeUnknownTable:    "a tideline table is missing: run `tideline migrate`",
	CodeUnknownDatabase: "the database does not exist: run `tideline migrate` or fix clickhouse.database",
	20:                  "the table's columns differ from this build's: run `tideline migrate`",
	53:                  "a column's type differs from this build's: run `tideline migrate`, or drop a table created by an older version",
	70:                  "a column's type differs from this build's: run `tideline migrate`, or drop a table created by an older version",
	386:                 "a column's type differs from this build's: run `tideline migrate`, or drop a table created by an older version",
	43:                  "ClickHouse rejected an argument type: check the ClickHouse version (DESIGN.md) and report the statement",
	44:                  "ClickHouse rejected a column: check the ClickHouse version (DESIGN.md) and report the statement",
	46:                  "an unknown function: this ClickHouse is older or newer than tideline supports (DESIGN.md)",
	48:                  "a feature this ClickHouse does not implement: check the ClickHouse version (DESIGN.md)",
	50:                  "an unknown type: this ClickHouse is older or newer than tideline supports (DESIGN.md)",
	62:                  "a statement ClickHouse cannot parse: check the ClickHouse version (DESIGN.md) and report the statement",
	63:                  "an unknown aggregate function: this ClickHouse is older or newer than tideline supports (DESIGN.md)",
	115:                 "an unknown setting: this ClickHouse is older than tideline supports (DESIGN.md)",
	164:                 "the ClickHouse user is read-only: give clickhouse.user write access",
	192:                 "unknown ClickHouse user: fix clickhouse.user",
	193:                 "wrong ClickHouse password: fix clickhouse.password",
	194:                 "ClickHouse wants a password: set clickhouse.password",
	497:                 "the ClickHouse user lacks a grant: give clickhouse.user access to the database",
	516:                 "ClickHouse authentication failed: fix clickhouse.user and clickhouse.password",
}

// Code is the ClickHouse server error code inside err, 0 if there is none.
func Code(err error) int32 {
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		return ex.Code
	}
	return 0
}

// Retryable reports whether sending the same statement again may succeed:
// network failures and server errors of load or availability are
// retryable, and so is a statement's timeout; schema, syntax, type and
// permission errors are not, nor are values the driver could not convert.
// Every retry loop on ClickHouse asks here, so a missing column stops the
// loader with what to fix instead of looping with backoff.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		// A statement's own timeout (a slow merge, an overloaded server)
		// passes. Whether the caller itself is stopping is its own
		// context's to say, which every retry loop checks before asking.
		return true
	}
	if code := Code(err); code != 0 {
		_, permanent := fix[code]
		return !permanent
	}
	var conv *column.ColumnConverterError
	var unsupported *column.UnsupportedColumnTypeError
	var colErr *column.Error
	if errors.As(err, &conv) || errors.As(err, &unsupported) || errors.As(err, &colErr) || errors.Is(err, clickhouse.ErrBatchInvalid) {
		return false
	}
	var netErr net.Error
	if errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, clickhouse.ErrAcquireConnTimeout) || errors.Is(err, clickhouse.ErrConnectionClosed) {
		return true
	}
	// An error the driver did not classify (a broken connection it wrapped
	// as text, an unexpected packet): retrying is what kept tideline
	// running through every outage so far.
	return true
}

// Permanent returns err, prefixed with what to fix when err is a
// ClickHouse error that retrying cannot cure, so the message an operator
// sees names the remedy (`tideline migrate`, a setting to change).
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	if hint, ok := fix[Code(err)]; ok {
		return fmt.Errorf("%s: %w", hint, err)
	}
	return err
}
