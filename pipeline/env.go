package pipeline

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/materialize"
	"github.com/tideline-dev/tideline/trigger"
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

// log is e.Log, or a logger that drops everything when none was given.
func (e Env) log() *slog.Logger {
	if e.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Log
}

// NewCollector builds the HTTP collector, producing with producer.
func NewCollector(cfg ingest.CollectorConfig, env Env, producer *kgo.Client) (*ingest.Collector, error) {
	return ingest.NewCollector(cfg, env.Kafka, producer, env.Registry, env.log())
}

// NewLoader builds the loader of every lane.
func NewLoader(cfg ingest.LoaderConfig, env Env) (*ingest.Loader, error) {
	return ingest.NewLoader(cfg, env.Kafka, env.Seeds, env.Conn, env.Registry, env.log())
}

// NewEvaluator builds the audience evaluator.
func NewEvaluator(cfg materialize.Config, env Env) (*materialize.Evaluator, error) {
	return materialize.NewEvaluator(env.Conn, cfg, env.Registry, env.log())
}

// NewPoller builds the trigger poller of campaigns. Webhook secrets come
// from cfg (SecretOverride) or the campaigns' secret_env, never from a
// variable the caller set in the process environment.
func NewPoller(cfg trigger.Config, campaigns []*trigger.Campaign, env Env) (*trigger.Poller, error) {
	return trigger.NewPoller(cfg, campaigns, env.Conn, env.Kafka, env.Seeds, env.Registry, env.log())
}
