// Package sql holds tideline's ClickHouse schema as numbered migrations
// (one idempotent statement per file, embedded with go:embed) and the small
// runner that applies them. ClickHouse has no transactional DDL, so each
// statement is written to be safe to run again (IF NOT EXISTS), and the runner
// records a version only after its statement succeeded.
//
// A migration library was not used: pressly/goose's ClickHouse dialect
// records versions with a parameterised INSERT that hangs against the
// ClickHouse 18.16 that Debian ships (see the README).
package sql
