package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/component"
	"github.com/tideline-dev/tideline/internal/config"
	"github.com/tideline-dev/tideline/internal/telemetry"
)

func init() { subcommands = append(subcommands, newCollectCmd) }

func newCollectCmd(a *app) *cobra.Command {
	cfg := ingest.DefaultCollectorConfig()
	cmd := &cobra.Command{
		Use:   "collect",
		Short: "Serve the HTTP tracking API and produce events to Kafka",
		Long: `collect serves a Segment-compatible tracking API:
  POST /v1/track, /v1/identify, /v1/page, /v1/batch
authenticated by write keys (HTTP Basic, key as user name). Each event is
validated, its timestamp corrected with sentAt, and written to its source's
lane topic; the request is answered 2xx only after Kafka acknowledged it.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.load(cmd, config.Sections{"collector": &cfg},
				config.Flag{Name: "addr", Key: "collector.addr"}, config.Flag{Name: "metrics-addr", Key: "collector.metrics_addr"}); err != nil {
				return err
			}
			seeds, stop, err := broker.Connect(cmd.Context(), a.kafka, a.log)
			if err != nil {
				return err
			}
			defer stop()
			reg := telemetry.NewRegistry()
			col, client, err := newCollector(cfg, a, seeds, reg)
			if err != nil {
				return err
			}
			defer client.Close()
			if err := telemetry.ServeTLS(cmd.Context(), cfg.MetricsAddr, cfg.TLSCert, cfg.TLSKey, reg, client.Ping, a.log); err != nil {
				return err
			}
			err = serveCollector(cmd.Context(), cfg, col, a)
			// On SIGTERM the collector stopped accepting and answered its
			// requests in flight; what its producer still buffers goes out
			// before the client closes.
			fctx, cancel := context.WithTimeout(context.WithoutCancel(cmd.Context()), cfg.ProduceTimeout)
			defer cancel()
			if ferr := client.Flush(fctx); ferr != nil {
				err = errors.Join(err, fmt.Errorf("flush the collector's producer: %w", ferr))
			}
			return err
		},
	}
	cmd.Flags().String("addr", cfg.Addr, "listen address of the tracking API")
	cmd.Flags().String("metrics-addr", cfg.MetricsAddr, "listen address of /metrics and /healthz (empty: off)")
	return cmd
}

// newCollector builds the collector's producer (acks=all, idempotent — the
// franz-go defaults, kept explicit) and the collector.
func newCollector(cfg ingest.CollectorConfig, a *app, seeds []string, reg *prometheus.Registry) (*ingest.Collector, *kgo.Client, error) {
	opts := append(broker.ClientOpts(seeds, a.log), ingest.ProducerOpts(cfg)...)
	opts = append(opts, kgo.WithHooks(kprom.NewMetrics("tideline_collector_kafka", kprom.Registerer(reg))))
	client, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("kafka producer: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if a.kafka.Mode == "kafka" {
		if err := broker.EnsureTopics(ctx, seeds, a.kafka); err != nil {
			client.Close()
			return nil, nil, err
		}
	}
	col, err := ingest.NewCollector(cfg, component.Env{Kafka: a.kafka, Registry: reg, Log: a.log}, client)
	if err != nil {
		client.Close()
		return nil, nil, err
	}
	return col, client, nil
}

// serveCollector listens on the configured address and serves until ctx ends.
func serveCollector(ctx context.Context, cfg ingest.CollectorConfig, col *ingest.Collector, a *app) error {
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("collector listener on %s (pick another with --addr): %w", cfg.Addr, err)
	}
	a.log.Info("collector listening", "addr", ln.Addr().String(), "tls", cfg.TLSCert != "")
	return col.Serve(ctx, ln)
}
