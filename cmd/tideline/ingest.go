package main

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/component"
	"github.com/tideline-dev/tideline/internal/config"
	"github.com/tideline-dev/tideline/internal/telemetry"
)

func init() { subcommands = append(subcommands, newIngestCmd) }

func newIngestCmd(a *app) *cobra.Command {
	cfg := ingest.DefaultLoaderConfig()
	cmd := &cobra.Command{
		Use:   "ingest",
		Short: "Load the Kafka lanes into ClickHouse (at-least-once)",
		Long: `ingest runs one consumer group per lane (events.web, events.server,
events.backfill, and events.dlq for the collector's rejects), inserts columnar
batches into ClickHouse and commits offsets only after ClickHouse acknowledged
them. SIGTERM drains: the loader reads the lanes' end offsets and keeps loading
until its groups committed up to them (at most loader.shutdown_timeout), then
inserts and commits the batch in hand and says what is left, per lane and
partition, before it exits.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.load(cmd, config.Sections{"loader": &cfg},
				config.Flag{Name: "lanes", Key: "loader.lanes"}, config.Flag{Name: "batch-size", Key: "loader.batch_size"},
				config.Flag{Name: "flush-interval", Key: "loader.flush_interval"}, config.Flag{Name: "metrics-addr", Key: "loader.metrics_addr"}); err != nil {
				return err
			}
			ctx := cmd.Context()
			seeds, stop, err := broker.Connect(cmd.Context(), a.kafka, a.log)
			if err != nil {
				return err
			}
			defer stop()
			if a.kafka.Mode == "kafka" {
				if err := broker.EnsureTopics(ctx, seeds, a.kafka); err != nil {
					return err
				}
			}
			conn, err := chdb.Open(ctx, a.ch, false)
			if err != nil {
				return err
			}
			defer conn.Close()
			reg := telemetry.NewRegistry()
			l, err := ingest.NewLoader(cfg, component.Env{Conn: conn, Kafka: a.kafka, Seeds: seeds, Registry: reg, Log: a.log})
			if err != nil {
				return err
			}
			if err := telemetry.Serve(ctx, cfg.MetricsAddr, reg, func(ctx context.Context) error { return conn.Ping(ctx) }, a.log); err != nil {
				return err
			}
			runErr := l.RunDraining(ctx)
			reportLeft(l, a)
			return runErr
		},
	}
	cmd.Flags().StringSlice("lanes", cfg.Lanes, "lanes to load: web, server, backfill, dlq")
	cmd.Flags().Int("batch-size", cfg.BatchSize, "flush a lane's batch at this many records")
	cmd.Flags().Duration("flush-interval", cfg.FlushInterval, "flush a non-empty batch at least this often")
	cmd.Flags().String("metrics-addr", cfg.MetricsAddr, "listen address of /metrics and /healthz (empty: off)")
	return cmd
}

// reportLeft says, after the loader stopped, what it leaves in Kafka and
// where: the next loader of the same groups starts there.
func reportLeft(l *ingest.Loader, a *app) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := l.Ends(ctx)
	if err != nil {
		a.log.Warn("could not read what is left to load", "err", err)
		return
	}
	left, err := l.Behind(ctx, ends)
	if err != nil {
		a.log.Warn("could not read what is left to load", "err", err)
		return
	}
	if len(left) == 0 {
		a.log.Info("loader stopped with every record in the lanes loaded")
		return
	}
	var n int64
	for _, b := range left {
		n += b.Records()
	}
	where := "they stay in Kafka; the next `tideline ingest` loads them"
	if a.kafka.Mode == "embedded" && a.kafka.EmbeddedDataDir == "" {
		where = "they are in the embedded broker's memory: they survive only while the process serving it runs"
	}
	a.log.Warn("loader stopped with records not loaded yet; "+where, "records", n, "left", ingest.DescribeBacklog(left))
}
