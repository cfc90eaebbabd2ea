// Package devenv runs the whole pipeline on one machine for `tideline dev`:
// it starts (or reuses) the local ClickHouse through the repo's script,
// runs the embedded broker (or uses real Kafka), applies migrations, serves
// the collector, runs the loader and the downstream components, drives the
// demo workload through the HTTP API, and prints a live status line and a
// final summary.
package devenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/workload"
	tsql "github.com/tideline-dev/tideline/sql"
)

// Config is what `tideline dev` runs.
type Config struct {
	ClickHouse chdb.Config
	Kafka      broker.Config
	Collector  ingest.CollectorConfig
	Loader     ingest.LoaderConfig
	// Rate of the demo workload in events/s (0: as fast as the collector answers).
	Rate float64
	// NoWorkload runs the pipeline without the demo workload.
	NoWorkload bool
	// Events stops the workload after this many events (0: run until interrupted).
	Events int64
	// Duration stops everything after this long (0: until interrupted).
	Duration time.Duration
	// Customers in the demo workload.
	Customers int
	// Seed of the demo workload.
	Seed uint64
	// ClickHouseScript starts ClickHouse when it does not answer ("" never starts it).
	ClickHouseScript string
	// Out receives the status line and summary; Terminal rewrites one line.
	Out      io.Writer
	Terminal bool
}

// Component is a downstream part of the pipeline (evaluator, poller, ...)
// that dev runs beside the loader.
type Component struct {
	Name string
	// Run works until ctx is cancelled.
	Run func(ctx context.Context) error
	// Status is a short text for the status line (may be nil).
	Status func(ctx context.Context) string
	// Summary is printed at the end (may be nil).
	Summary func(ctx context.Context) string
}

// Components builds the downstream components once the database is ready.
type Components func(ctx context.Context, conn *chdb.Conn, seeds []string, reg prometheus.Registerer) ([]Component, error)

// Run runs the stack until ctx ends, cfg.Duration passes, or the workload
// finishes and the pipeline caught up.
func Run(ctx context.Context, cfg Config, extra Components, log *slog.Logger) error {
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	conn, err := ensureClickHouse(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := tsql.Up(ctx, conn, log); err != nil {
		return err
	}

	seeds, stopBroker, err := broker.Seeds(cfg.Kafka)
	if err != nil {
		return err
	}
	defer stopBroker()
	if cfg.Kafka.Mode == "kafka" {
		if err := broker.EnsureTopics(ctx, seeds, cfg.Kafka); err != nil {
			return err
		}
	}
	fmt.Fprintf(cfg.Out, "tideline dev: ClickHouse %s (database %s), Kafka %s %v, collector http://%s\n",
		cfg.ClickHouse.Addr, cfg.ClickHouse.Database, cfg.Kafka.Mode, seeds, cfg.Collector.Addr)

	reg := prometheus.NewRegistry()
	prod, err := kgo.NewClient(append(broker.ClientOpts(seeds, log), ingest.ProducerOpts(cfg.Collector)...)...)
	if err != nil {
		return fmt.Errorf("kafka producer: %w", err)
	}
	defer prod.Close()
	col, err := ingest.NewCollector(cfg.Collector, cfg.Kafka, prod, reg, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Collector.Addr)
	if err != nil {
		return fmt.Errorf("collector listener on %s (is another tideline running? pick another with --addr): %w", cfg.Collector.Addr, err)
	}
	serveCtx, stopServe := context.WithCancel(context.Background())
	defer stopServe()
	// The collector stops when Run returns.
	go func() { _ = col.Serve(serveCtx, ln) }()

	loader, err := ingest.NewLoader(cfg.Loader, cfg.Kafka, seeds, conn, reg, log)
	if err != nil {
		return err
	}
	var comps []Component
	if extra != nil {
		if comps, err = extra(ctx, conn, seeds, reg); err != nil {
			return err
		}
	}

	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	var wg sync.WaitGroup
	errc := make(chan error, len(comps)+2)
	start := func(name string, fn func(context.Context) error) {
		wg.Add(1)
		// Each component stops when runCtx is cancelled.
		go func() {
			defer wg.Done()
			if err := fn(runCtx); err != nil && runCtx.Err() == nil {
				errc <- fmt.Errorf("%s: %w", name, err)
				stopRun()
			}
		}()
	}
	start("loader", loader.Run)
	for _, c := range comps {
		start(c.Name, c.Run)
	}

	driver := &workload.Driver{
		Target: workload.Target{URL: "http://" + ln.Addr().String(), WebKey: keyOf(cfg.Collector, "web"), ServerKey: keyOf(cfg.Collector, "server")},
		Gen:    workload.New(workload.Config{Customers: cfg.Customers, Seed: cfg.Seed, MalformedRate: 0.005}),
		Rate:   cfg.Rate,
	}
	driveDone := make(chan struct{})
	if !cfg.NoWorkload {
		go func() {
			defer close(driveDone)
			if err := driver.Run(runCtx, cfg.Events); err != nil {
				log.Warn("demo workload", "err", err)
			}
		}()
	} else {
		close(driveDone)
	}

	st := &status{cfg: cfg, conn: conn, loader: loader, driver: driver, comps: comps, started: time.Now()}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case runErr = <-errc:
			break loop
		case <-tick.C:
			st.print(ctx)
			select {
			case <-driveDone:
				if cfg.Events > 0 && st.caughtUp() {
					break loop
				}
			default:
			}
		}
	}
	stopRun()
	wg.Wait()
	if cfg.Terminal {
		fmt.Fprintln(cfg.Out)
	}
	st.summary(context.Background())
	return runErr
}

func keyOf(c ingest.CollectorConfig, lane string) string {
	for _, s := range c.Sources {
		if s.Lane == lane {
			return s.WriteKey
		}
	}
	return ""
}

// ensureClickHouse connects, starting the local server with the repo's
// script when it does not answer.
func ensureClickHouse(ctx context.Context, cfg Config, log *slog.Logger) (*chdb.Conn, error) {
	conn, err := chdb.Open(ctx, cfg.ClickHouse, true)
	if err == nil {
		return conn, nil
	}
	if cfg.ClickHouseScript == "" {
		return nil, err
	}
	if _, statErr := os.Stat(cfg.ClickHouseScript); statErr != nil {
		return nil, fmt.Errorf("%w (and %s is not here to start it: run from the repository root)", err, cfg.ClickHouseScript)
	}
	log.Info("ClickHouse is not answering; starting it", "script", cfg.ClickHouseScript)
	cmd := exec.CommandContext(ctx, "bash", cfg.ClickHouseScript, "start")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("start ClickHouse with %s: %w", cfg.ClickHouseScript, err)
	}
	return chdb.Open(ctx, cfg.ClickHouse, true)
}

type status struct {
	cfg      Config
	conn     *chdb.Conn
	loader   *ingest.Loader
	driver   *workload.Driver
	comps    []Component
	started  time.Time
	lastIns  int64
	lastTime time.Time
}

func (s *status) caughtUp() bool {
	var sent, accepted, loaded int64
	for _, c := range s.driver.Lanes() {
		sent += c.Sent.Load()
		accepted += c.Accepted.Load()
	}
	for lane, st := range s.loader.Stats() {
		if lane == "web" || lane == "server" {
			loaded += st.Inserted + st.DeadLettered
		}
	}
	return sent > 0 && loaded >= accepted
}

func (s *status) print(ctx context.Context) {
	stats := s.loader.Stats()
	var ins int64
	var parts []string
	for _, lane := range []string{"web", "server", "backfill"} {
		st, ok := stats[lane]
		if !ok {
			continue
		}
		ins += st.Inserted
		wm := "-"
		if st.WatermarkMs > 0 {
			wm = time.Since(time.UnixMilli(int64(st.WatermarkMs))).Truncate(100 * time.Millisecond).String()
		}
		parts = append(parts, fmt.Sprintf("%s ins=%d dlq=%d lag=%d wm-age=%s", lane, st.Inserted, st.DeadLettered, st.Lag, wm))
	}
	now := time.Now()
	rate := 0.0
	if !s.lastTime.IsZero() {
		rate = float64(ins-s.lastIns) / now.Sub(s.lastTime).Seconds()
	}
	s.lastIns, s.lastTime = ins, now
	line := fmt.Sprintf("%s  %6.0f ev/s  %s", now.Sub(s.started).Truncate(time.Second), rate, strings.Join(parts, "  "))
	for _, c := range s.comps {
		if c.Status != nil {
			sctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			if txt := c.Status(sctx); txt != "" {
				line += "  " + txt
			}
			cancel()
		}
	}
	if s.cfg.Terminal {
		fmt.Fprintf(s.cfg.Out, "\r\033[K%s", line)
	} else {
		fmt.Fprintln(s.cfg.Out, line)
	}
}

func (s *status) summary(ctx context.Context) {
	out := s.cfg.Out
	fmt.Fprintf(out, "\nsummary after %s\n", time.Since(s.started).Truncate(time.Second))
	fmt.Fprintf(out, "%-8s %10s %10s %10s %10s %10s\n", "lane", "sent", "accepted", "rejected", "inserted", "dead-lett.")
	stats := s.loader.Stats()
	lanes := s.driver.Lanes()
	names := []string{"web", "server"}
	for _, lane := range names {
		c := lanes[lane]
		st := stats[lane]
		fmt.Fprintf(out, "%-8s %10d %10d %10d %10d %10d\n", lane, c.Sent.Load(), c.Accepted.Load(), c.Rejected.Load(), st.Inserted, st.DeadLettered)
	}
	if st, ok := stats["dlq"]; ok {
		fmt.Fprintf(out, "%-8s %10s %10s %10s %10s %10d   (collector rejects kept in dead_letters)\n", "dlq", "", "", "", "", st.DeadLettered)
	}
	var counts []string
	if err := s.tableCounts(ctx, &counts); err == nil {
		fmt.Fprintf(out, "ClickHouse %s: %s\n", s.cfg.ClickHouse.Database, strings.Join(counts, ", "))
	}
	for _, c := range s.comps {
		if c.Summary != nil {
			fmt.Fprintln(out, c.Summary(ctx))
		}
	}
	fmt.Fprintf(out, "look:  scripts/clickhouse.sh client -d %s -q 'SELECT lane, count() FROM events_unique GROUP BY lane'\n", s.cfg.ClickHouse.Database)
}

func (s *status) tableCounts(ctx context.Context, out *[]string) error {
	qs := map[string]string{
		"events (unique)": "SELECT uniqExact(message_id) FROM events",
		"dead_letters":    "SELECT count() FROM dead_letters FINAL",
		"watermarks":      "SELECT count() FROM lane_watermarks",
	}
	keys := make([]string, 0, len(qs))
	for k := range qs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		var n uint64
		if err := s.conn.QueryRow(ctx, qs[k]).Scan(&n); err != nil {
			return errors.Join(err)
		}
		*out = append(*out, fmt.Sprintf("%s=%d", k, n))
	}
	return nil
}
