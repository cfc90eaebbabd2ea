// Package component holds what every long-running component (collector,
// loader, evaluator, poller) is built from besides its own configuration:
// the ClickHouse connection, the Kafka brokers, the metrics registry and
// the logger. Each domain constructor has the one shape NewX(cfg, env), and
// pipeline assembles them; the value lives in a ground package so that the
// domain packages can take it without importing the assembly above them.
package component

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/chdb"
)

// Env is what the components of one pipeline share. It is a value passed
// to every constructor, never read from globals or the process
// environment, so two pipelines (a test's, a drill's) run side by side in
// one process.
type Env struct {
	// Conn is the ClickHouse database the components read and write.
	Conn *chdb.Conn
	// Kafka names the topics and groups; Seeds are the brokers to reach.
	Kafka broker.Config
	Seeds []string
	// Registry receives the components' metrics; nil leaves them
	// unregistered (tests, the drill).
	Registry prometheus.Registerer
	// Log is where components log.
	Log *slog.Logger
}

// Logger is e.Log, or a logger that drops everything when none was given.
func (e Env) Logger() *slog.Logger {
	if e.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Log
}
