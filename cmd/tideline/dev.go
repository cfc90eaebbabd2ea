package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/config"
	"github.com/tideline-dev/tideline/materialize"
	"github.com/tideline-dev/tideline/pipeline"
	"github.com/tideline-dev/tideline/trigger"
	"github.com/tideline-dev/tideline/trigger/receiver"
)

func init() { subcommands = append(subcommands, newDevCmd) }

func newDevCmd(a *app) *cobra.Command {
	col := ingest.DefaultCollectorConfig()
	ld := ingest.DefaultLoaderConfig()
	tc := trigger.DefaultConfig()
	mc := materialize.DefaultConfig()
	dc := pipeline.DevConfig{Rate: 2000, Customers: 5000, Seed: 1, ClickHouseScript: "scripts/clickhouse.sh"}
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run everything locally with a demo workload (the README's first command)",
		Long: `dev starts (or reuses) the local ClickHouse with scripts/clickhouse.sh, runs
the embedded Kafka broker (or real Kafka with --broker kafka), applies the
schema, and runs the collector, the loader and the downstream components
while a demo workload (web and server sources, identifies and tracks, a few
malformed events) flows through the HTTP API. A status line shows events/s,
lag and watermarks; Ctrl-C stops everything and prints a summary.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// The status line is the main output; logs below warn would bury it.
			if !cmd.Flags().Changed("log-level") {
				a.logLevel = "warn"
			}
			if err := a.load(cmd, config.Sections{"collector": &col, "loader": &ld, "trigger": &tc, "materialize": &mc},
				config.Flag{Name: "addr", Key: "collector.addr"}); err != nil {
				return err
			}
			dc.ClickHouse, dc.Kafka, dc.Collector, dc.Loader = a.ch, a.kafka, col, ld
			dc.Out = os.Stdout
			dc.Terminal = term.IsTerminal(int(os.Stdout.Fd()))
			sum, err := pipeline.RunDev(cmd.Context(), dc, devComponents(a, &tc, &mc), a.log)
			if err == nil && sum != nil && !sum.Complete() {
				// The summary said what is missing and where.
				return errSilent
			}
			return err
		},
	}
	f := cmd.Flags()
	f.String("addr", col.Addr, "listen address of the collector")
	f.Float64Var(&dc.Rate, "rate", dc.Rate, "demo workload events per second (0: as fast as the collector takes them)")
	f.BoolVar(&dc.NoWorkload, "no-workload", false, "run the pipeline without the demo workload (send your own events)")
	f.Int64Var(&dc.Events, "events", 0, "stop after this many events have been sent and loaded (0: run until Ctrl-C)")
	f.DurationVar(&dc.Duration, "duration", 0, "stop after this long (0: run until Ctrl-C)")
	f.IntVar(&dc.Customers, "customers", dc.Customers, "distinct customers in the demo workload")
	f.Uint64Var(&dc.Seed, "seed", dc.Seed, "seed of the demo workload")
	f.StringVar(&dc.StatusAddr, "status-addr", "127.0.0.1:9100", "serve the status as JSON at /status (and /metrics) here (empty: off)")
	return cmd
}

// devComponents wires the downstream components dev runs beside the
// loader: the audience evaluator (with the default audiences applied), and
// the trigger poller with a local webhook receiver that every campaign
// delivers to instead of its configured URL.
func devComponents(a *app, tc *trigger.Config, mc *materialize.Config) pipeline.Components {
	return func(ctx context.Context, env pipeline.Env) ([]pipeline.Component, error) {
		evaluator, err := devEvaluator(ctx, a, *mc, env.Conn, env.Registry)
		if err != nil {
			return nil, err
		}
		poller, recv, err := devPoller(ctx, *tc, env)
		if err != nil {
			return nil, err
		}
		return []pipeline.Component{evaluator, {
			Name: "trigger",
			Run:  poller.Run,
			Status: func(context.Context) []pipeline.Reading {
				st := poller.Stats()
				rc := recv.Counts()
				return []pipeline.Reading{
					{Group: "campaigns", Name: "fired", Value: int64(st.Fired)},
					{Group: "campaigns", Name: "late", Value: int64(st.Late)},
					{Group: "campaigns", Name: "skipped", Value: int64(st.Skipped)},
					{Group: "webhooks", Name: "delivered", Value: int64(st.Delivered)},
					{Group: "webhooks", Name: "failed", Value: int64(st.Failed)},
					{Group: "webhooks", Name: "received", Value: int64(rc.UniqueAccepted)},
				}
			},
			Summary: func(context.Context) string {
				st := poller.Stats()
				rc := recv.Counts()
				return fmt.Sprintf("campaigns: fired=%d late=%d skipped=%d %v delivered=%d failed=%d; local webhook receiver: %d verified deliveries (%d distinct ids), %d invalid",
					st.Fired, st.Late, st.Skipped, st.SkippedBy, st.Delivered, st.Failed, rc.Accepted, rc.UniqueAccepted, rc.Invalid)
			},
		}}, nil
	}
}

// devPoller starts a local receiver and a poller whose campaigns deliver
// to it, signed with a secret made for this run.
func devPoller(ctx context.Context, cfg trigger.Config, env pipeline.Env) (*trigger.Poller, *receiver.Receiver, error) {
	campaigns, err := trigger.LoadCampaigns(cfg.CampaignsDir)
	if err != nil {
		return nil, nil, err
	}
	secret := trigger.NewSecret()
	recv, err := receiver.NewReceiver(secret.String())
	if err != nil {
		return nil, nil, err
	}
	url, err := recv.Serve(ctx, "127.0.0.1:0")
	if err != nil {
		return nil, nil, fmt.Errorf("local webhook receiver: %w", err)
	}
	for _, c := range campaigns {
		if c.Deliver.Webhook == nil {
			continue
		}
		c.Deliver.Webhook.URL = url + "/hooks/" + c.ID
	}
	// The run's secret signs every webhook, whatever secret_env the
	// campaigns name: the poller takes it as configuration, not from the
	// process environment.
	cfg.SecretOverride = secret.String()
	// dev runs exactly one poller.
	cfg.Sharding = "none"
	cfg.MetricsAddr = ""
	p, err := pipeline.NewPoller(cfg, campaigns, env)
	if err != nil {
		return nil, nil, err
	}
	return p, recv, nil
}
