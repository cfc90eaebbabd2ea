package pipeline

import (
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/component"
	"github.com/tideline-dev/tideline/materialize"
	"github.com/tideline-dev/tideline/trigger"
)

// Env is what the components of one pipeline share: the ClickHouse
// connection, the brokers, the metrics registry and the logger. Every
// domain constructor takes it as NewX(cfg, env).
type Env = component.Env

// NewCollector builds the HTTP collector, producing with producer.
func NewCollector(cfg ingest.CollectorConfig, env Env, producer *kgo.Client) (*ingest.Collector, error) {
	return ingest.NewCollector(cfg, env, producer)
}

// NewLoader builds the loader of every lane.
func NewLoader(cfg ingest.LoaderConfig, env Env) (*ingest.Loader, error) {
	return ingest.NewLoader(cfg, env)
}

// NewEvaluator builds the audience evaluator.
func NewEvaluator(cfg materialize.Config, env Env) (*materialize.Evaluator, error) {
	return materialize.NewEvaluator(cfg, env)
}

// NewPoller builds the trigger poller of campaigns. Webhook secrets come
// from cfg (SecretOverride) or the campaigns' secret_env, never from a
// variable the caller set in the process environment.
func NewPoller(cfg trigger.Config, campaigns []*trigger.Campaign, env Env) (*trigger.Poller, error) {
	return trigger.NewPoller(cfg, campaigns, env)
}
