// Package reliability holds tideline's fault-injection and security suite.
// Each scenario is a Go test that drives the real binaries (`tideline
// ingest`, `tideline collect`, built by the test) against real servers on
// loopback, injects one kind of fault — a SIGKILLed loader, a restarted
// ClickHouse, a SIGKILLed Kafka broker, a rebalance storm, an overloaded
// collector, slow analyst queries — and then counts what was produced,
// what is present, what was duplicated and what was lost. Scenarios are
// bounded in time and count and stop by themselves.
//
// The short versions run with the rest of the suite (`go test
// ./reliability/`); `go test ./reliability/ -long -v` runs the long
// versions whose results RELIABILITY.md records. Scenarios that restart or
// kill a server start their own instance on separate ports and state
// directories through scripts/clickhouse.sh and scripts/kafka.sh, so the
// shared development servers are never touched.
package reliability
