// Package chdb opens connections to ClickHouse the way every tideline
// component needs them: native protocol, a database that exists, and the
// server version detected once so newer-server features can be used when
// present without correctness depending on them.
package chdb
