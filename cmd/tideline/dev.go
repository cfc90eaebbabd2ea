package main

import (
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/config"
	"github.com/tideline-dev/tideline/internal/devenv"
)

func init() { subcommands = append(subcommands, newDevCmd) }

func newDevCmd(a *app) *cobra.Command {
	col := ingest.DefaultCollectorConfig()
	ld := ingest.DefaultLoaderConfig()
	dc := devenv.Config{Rate: 2000, Customers: 5000, Seed: 1, ClickHouseScript: "scripts/clickhouse.sh"}
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
			if err := a.load(cmd, config.Sections{"collector": &col, "loader": &ld},
				config.Flag{Name: "addr", Key: "collector.addr"}); err != nil {
				return err
			}
			dc.ClickHouse, dc.Kafka, dc.Collector, dc.Loader = a.ch, a.kafka, col, ld
			dc.Out = os.Stdout
			dc.Terminal = term.IsTerminal(int(os.Stdout.Fd()))
			return devenv.Run(cmd.Context(), dc, devComponents(a), a.log)
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
	return cmd
}

// devComponents wires the downstream components dev runs beside the loader.
func devComponents(a *app) devenv.Components {
	return nil
}
