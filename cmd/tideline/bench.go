package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/tideline-dev/tideline/bench"
	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/config"
	"github.com/tideline-dev/tideline/materialize"
	"github.com/tideline-dev/tideline/trigger"
)

func init() {
	subcommands = append(subcommands, newBenchCmd)
	extraSections["bench"] = func() any { c := bench.DefaultConfig(); return &c }
}

func newBenchCmd(a *app) *cobra.Command {
	cfg := bench.DefaultConfig()
	ld := ingest.DefaultLoaderConfig()
	col := ingest.DefaultCollectorConfig()
	mat := materialize.DefaultConfig()
	trg := trigger.DefaultConfig()
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure throughput, latency, backlog drain and memory against the Kafka engine and the insert ceiling",
		Long: `bench runs, in one bounded run on this machine:
  ceiling     pre-built columnar batches inserted straight into events
  throughput  the loader draining pre-produced events, views detached and attached
  peer        ClickHouse's own Kafka engine consuming the same events
  latency     event time → row visible → audience transition → webhook,
              at a fixed rate through the collector
  backlog     the web lane's loader stopped for --backlog, then resumed:
              drain rate and the live server lane's latency meanwhile
and the peak RSS of every tideline process (the loader, collector,
evaluator and trigger poller run as child processes of this binary). It uses the local ClickHouse and an embedded
broker (or --broker kafka), prints a table (--json for JSON) and writes
bench/results/<date>-<host>.json. BENCHMARKS.md explains each figure.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.load(cmd, config.Sections{"bench": &cfg, "loader": &ld, "collector": &col, "materialize": &mat, "trigger": &trg},
				config.Flag{Name: "duration", Key: "bench.duration"}, config.Flag{Name: "events", Key: "bench.events"},
				config.Flag{Name: "customers", Key: "bench.customers"}, config.Flag{Name: "properties", Key: "bench.properties"},
				config.Flag{Name: "seed", Key: "bench.seed"}, config.Flag{Name: "rate", Key: "bench.rate"},
				config.Flag{Name: "backlog", Key: "bench.backlog"}, config.Flag{Name: "scenarios", Key: "bench.scenarios"},
				config.Flag{Name: "ceiling-inserters", Key: "bench.ceiling_inserters"}, config.Flag{Name: "peer-consumers", Key: "bench.peer_consumers"},
				config.Flag{Name: "loader-processes", Key: "bench.loader_processes"},
				config.Flag{Name: "compression", Key: "bench.compression"}, config.Flag{Name: "results-dir", Key: "bench.results_dir"},
				config.Flag{Name: "keep", Key: "bench.keep"}, config.Flag{Name: "cpuprofile", Key: "bench.cpuprofile"}, config.Flag{Name: "child-log", Key: "bench.child_log"},
				config.Flag{Name: "memprofile", Key: "bench.memprofile"},
				config.Flag{Name: "cluster", Key: "bench.cluster"}, config.Flag{Name: "cluster-name", Key: "bench.cluster_name"},
				config.Flag{Name: "batch-size", Key: "loader.batch_size"}, config.Flag{Name: "flush-interval", Key: "loader.flush_interval"}); err != nil {
				return err
			}
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("find the tideline binary to start children from: %w", err)
			}
			res, err := bench.Run(cmd.Context(), cfg, bench.Harness{
				ClickHouse: a.ch, Kafka: a.kafka, Loader: ld, Collector: col, Materialize: mat, Trigger: trg,
				Exe: exe, ExeArgs: []string{"bench", "child"},
				Views:    bench.AudienceViews(mat, a.log),
				Progress: os.Stderr, Log: a.log,
			})
			if err != nil {
				return err
			}
			if cfg.ResultsDir != "" {
				path, err := res.Save(cfg.ResultsDir)
				if err != nil {
					return err
				}
				fmt.Fprintf(os.Stderr, "bench: results written to %s\n", path)
			}
			if asJSON {
				return res.WriteJSON(os.Stdout)
			}
			return res.WriteTable(os.Stdout)
		},
	}
	f := cmd.Flags()
	f.Duration("duration", cfg.Duration, "sustain each throughput measurement (and the latency drive) this long")
	f.Int64("events", cfg.Events, "events to pre-produce (0: the ceiling's rate × --duration)")
	f.Int("customers", cfg.Customers, "distinct customers in the event mix")
	f.Int("properties", cfg.Properties, "generated properties added to every event")
	f.Uint64("seed", cfg.Seed, "seed of the event mix")
	f.Float64("rate", cfg.Rate, "events/s of the latency and backlog scenarios")
	f.Duration("backlog", cfg.Backlog, "how long the backlog accumulates")
	f.StringSlice("scenarios", cfg.Scenarios, "scenarios to run: ceiling, throughput, peer, latency, backlog")
	f.Int("ceiling-inserters", cfg.CeilingInserters, "concurrent inserts of the ceiling")
	f.Int("peer-consumers", cfg.PeerConsumers, "kafka_num_consumers of the Kafka-engine peer")
	f.Int("loader-processes", cfg.LoaderProcesses, "loader processes of one consumer group in the throughput scenario")
	f.String("compression", cfg.Compression, "codec of the pre-produced records: snappy, lz4, zstd, gzip, none")
	f.String("results-dir", cfg.ResultsDir, `directory of the results JSON ("" writes none)`)
	f.Bool("keep", cfg.Keep, "keep the run's databases")
	f.String("cpuprofile", cfg.CPUProfile, "write each child's CPU profile to <prefix>.<child>.pprof")
	f.String("child-log", cfg.ChildLog, "write each child's debug log (evaluation passes, polls) to <prefix>.<child>.log")
	f.String("memprofile", cfg.MemProfile, "write each child's allocation profile to <prefix>.<child>.pprof")
	f.String("cluster", cfg.Cluster, "also measure the ceiling on this ClickHouse cluster (comma-separated native addresses, e.g. $(scripts/cluster.sh addrs)), views attached")
	f.String("cluster-name", cfg.ClusterName, "the cluster's name in remote_servers")
	f.Int("batch-size", ld.BatchSize, "loader batch size")
	f.Duration("flush-interval", ld.FlushInterval, "loader flush interval")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON instead of a table")
	cmd.AddCommand(&cobra.Command{
		Use:    "child",
		Short:  "Run a loader or collector for the bench (reads its spec as JSON on stdin)",
		Hidden: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return bench.RunChild(cmd.Context(), os.Stdin, os.Stdout, os.Stderr)
		},
	})
	return cmd
}
