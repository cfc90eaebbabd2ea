package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/workload"
	tsql "github.com/tideline-dev/tideline/sql"
)

// DevConfig is what `tideline dev` runs.
type DevConfig struct {
	ClickHouse chdb.Config
	Kafka      broker.Config
	// Seeds, when set, are a running broker to use instead of the one
	// Kafka describes (tests pass theirs).
	Seeds     []string
	Collector ingest.CollectorConfig
	Loader    ingest.LoaderConfig
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
	// StatusAddr serves /status (JSON) and /metrics ("" turns it off).
	StatusAddr string
	// Out receives the status and the summary. With Terminal the status is
	// a block redrawn in place; without, one structured line per interval.
	Out      io.Writer
	Terminal bool
	// StatusInterval is how often the status is shown (default 1s).
	StatusInterval time.Duration
}

// Component is a downstream part of the pipeline (evaluator, poller, ...)
// that dev runs beside the loader.
type Component struct {
	Name string
	// Run works until ctx is cancelled.
	Run func(ctx context.Context) error
	// Status reports the component's figures for the status (may be nil).
	Status func(ctx context.Context) []Reading
	// Summary is printed at the end (may be nil).
	Summary func(ctx context.Context) string
}

// Reading is one figure of a component's status: Group is the row of the
// status block it belongs to ("audiences", "campaigns", "webhooks").
type Reading struct {
	Group string `json:"group"`
	Name  string `json:"name"`
	Value int64  `json:"value"`
}

// Components builds the downstream components once the database is ready.
type Components func(ctx context.Context, env Env) ([]Component, error)

// RunDev runs the stack until ctx ends, cfg.Duration passes, or the workload
// finishes and the pipeline caught up; then it stops in data-flow order
// (see stop) and prints the summary, which it also returns.
func RunDev(ctx context.Context, cfg DevConfig, extra Components, log *slog.Logger) (*Summary, error) {
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	if cfg.StatusInterval <= 0 {
		cfg.StatusInterval = time.Second
	}
	conn, err := ensureClickHouse(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if _, err := tsql.Up(ctx, conn, log); err != nil {
		return nil, err
	}

	seeds := cfg.Seeds
	if len(seeds) == 0 {
		var stopBroker func()
		if seeds, stopBroker, err = broker.Connect(ctx, cfg.Kafka, log); err != nil {
			return nil, err
		}
		defer stopBroker()
	}
	if cfg.Kafka.Mode == "kafka" {
		if err := broker.EnsureTopics(ctx, seeds, cfg.Kafka); err != nil {
			return nil, err
		}
	}

	reg := prometheus.NewRegistry()
	prod, err := kgo.NewClient(append(broker.ClientOpts(seeds, log), ingest.ProducerOpts(cfg.Collector)...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka producer: %w", err)
	}
	defer prod.Close()
	env := Env{Conn: conn, Kafka: cfg.Kafka, Seeds: seeds, Registry: reg, Log: log}
	col, err := NewCollector(cfg.Collector, env, prod)
	if err != nil {
		return nil, err
	}
	loader, err := NewLoader(cfg.Loader, env)
	if err != nil {
		return nil, err
	}
	// Records already waiting in the lanes (left by an earlier run on a
	// persistent broker) are loaded too; the summary accounts for them.
	before, err := backlogNow(ctx, loader)
	if err != nil {
		// Only the summary's accounting needs it; it then counts from zero.
		log.Warn("could not measure what waits in the lanes from an earlier run", "err", err)
	}
	ln, err := net.Listen("tcp", cfg.Collector.Addr)
	if err != nil {
		return nil, fmt.Errorf("collector listener on %s (is another tideline running? pick another with --addr): %w", cfg.Collector.Addr, err)
	}
	kafka := fmt.Sprintf("Kafka %v", seeds)
	if cfg.Kafka.Mode == "embedded" {
		data := "in memory"
		if cfg.Kafka.EmbeddedDataDir != "" {
			data = "log in " + cfg.Kafka.EmbeddedDataDir
		}
		kafka = fmt.Sprintf("embedded Kafka %v (%s)", seeds, data)
	}
	fmt.Fprintf(cfg.Out, "tideline dev: ClickHouse %s (database %s), %s, collector http://%s\n",
		cfg.ClickHouse.Addr, cfg.ClickHouse.Database, kafka, ln.Addr())

	var comps []Component
	if extra != nil {
		if comps, err = extra(ctx, env); err != nil {
			ln.Close()
			return nil, err
		}
	}

	// Each stage has its own context, cancelled by stop in data-flow order.
	serveCtx, stopServe := context.WithCancel(context.WithoutCancel(ctx))
	loadCtx, stopLoad := context.WithCancel(context.WithoutCancel(ctx))
	downCtx, stopDown := context.WithCancel(context.WithoutCancel(ctx))
	driveCtx, cutDrive := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServe()
	defer stopLoad()
	defer stopDown()
	defer cutDrive()

	errc := make(chan error, len(comps)+2)
	var serveDone, loadDone, downDone sync.WaitGroup
	start := func(wg *sync.WaitGroup, stageCtx context.Context, name string, fn func(context.Context) error) {
		wg.Add(1)
		// Each stage's goroutine stops when its context is cancelled by stop.
		go func() {
			defer wg.Done()
			if err := fn(stageCtx); err != nil && stageCtx.Err() == nil {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	start(&serveDone, serveCtx, "collector", func(ctx context.Context) error { return col.Serve(ctx, ln) })
	start(&loadDone, loadCtx, "loader", loader.Run)
	for _, c := range comps {
		start(&downDone, downCtx, c.Name, c.Run)
	}

	driver := &workload.Driver{
		Target: workload.Target{URL: "http://" + ln.Addr().String(), WebKey: keyOf(cfg.Collector, "web"), ServerKey: keyOf(cfg.Collector, "server")},
		Gen:    workload.New(workload.Config{Customers: cfg.Customers, Seed: cfg.Seed, MalformedRate: 0.005}),
		Rate:   cfg.Rate,
	}
	stopDrive := make(chan struct{})
	driveDone := make(chan struct{})
	if !cfg.NoWorkload {
		// The driver stops sending when stopDrive closes, and gives up
		// requests in flight when driveCtx is cancelled.
		go func() {
			defer close(driveDone)
			if err := driver.RunUntil(driveCtx, stopDrive, cfg.Events); err != nil {
				log.Warn("demo workload", "err", err)
			}
		}()
	} else {
		close(driveDone)
	}

	st := newStatus(cfg, conn, loader, driver, comps, reg)
	if cfg.StatusAddr != "" {
		if err := serveStatus(serveCtx, cfg.StatusAddr, st, reg, log); err != nil {
			return nil, err
		}
	}
	tick := time.NewTicker(cfg.StatusInterval)
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
			st.show(ctx)
			select {
			case <-driveDone:
				if cfg.Events > 0 && st.caughtUp() {
					break loop
				}
			default:
			}
		}
	}
	st.finish()
	fmt.Fprintf(cfg.Out, "stopping: no new events; loading everything accepted (at most %s; Ctrl-C again quits at once)\n", cfg.Loader.ShutdownTimeout)

	// The drain ends early if the loader itself has stopped (it failed).
	// This goroutine ends with the loader's, which stop ends at the latest.
	loaderGone := make(chan struct{})
	go func() {
		loadDone.Wait()
		close(loaderGone)
	}()
	sum := &Summary{Database: cfg.ClickHouse.Database, Before: before}
	sum.Left, sum.Drained, err = stop(cfg, stopper{
		drive:    func() { close(stopDrive) },
		drived:   driveDone,
		cutDrive: cutDrive,
		serve:    func() { stopServe(); serveDone.Wait() },
		flush:    func(ctx context.Context) error { return prod.Flush(ctx) },
		loader:   loader,
		gone:     loaderGone,
		load:     func() { stopLoad(); loadDone.Wait() },
		down:     func() { stopDown(); downDone.Wait() },
	}, log)
	runErr = errors.Join(runErr, err)
	sum.fill(st, loader, driver, reg)
	sum.Print(context.Background(), cfg.Out, conn, comps)
	return sum, runErr
}

// stopper holds the stages Run started, for stop.
type stopper struct {
	drive    func()
	drived   <-chan struct{}
	cutDrive func()
	serve    func()
	flush    func(context.Context) error
	loader   *ingest.Loader
	gone     <-chan struct{}
	load     func()
	down     func()
}

// stop ends the pipeline in data-flow order, so nothing accepted is lost:
//
//  1. stop accepting: the workload sends no new batch and the collector
//     stops listening, letting its in-flight requests (and their Kafka
//     produces) finish and be answered;
//  2. record the lanes' end offsets: everything accepted lies below them;
//  3. let the loader run until its groups committed up to them, bounded by
//     loader.shutdown_timeout (a commit follows ClickHouse's acknowledgement,
//     so a commit at the end means everything is inserted or dead-lettered);
//  4. stop the loader, then the downstream components.
//
// It returns what the loader had not committed when its time was up, and
// how many records it was behind by when the collector stopped.
func stop(cfg DevConfig, s stopper, log *slog.Logger) ([]ingest.Backlog, int64, error) {
	grace := cfg.Loader.ShutdownTimeout
	if grace <= 0 {
		grace = 30 * time.Second
	}
	s.drive()
	select {
	case <-s.drived:
	case <-time.After(cfg.Collector.ProduceTimeout + 5*time.Second):
		// A request the collector still holds after its produce timeout
		// is answered with an error anyway.
		s.cutDrive()
		<-s.drived
	}
	s.serve()
	fctx, cancel := context.WithTimeout(context.Background(), cfg.Collector.ProduceTimeout)
	err := s.flush(fctx)
	cancel()
	if err != nil {
		log.Warn("flush the collector's producer", "err", err)
	}
	left, behind, err := s.loader.Drain(context.Background(), grace, s.gone)
	s.load()
	s.down()
	if len(left) > 0 {
		log.Warn("the loader did not load everything accepted within loader.shutdown_timeout", "timeout", grace, "left", ingest.DescribeBacklog(left))
	}
	return left, behind, err
}

// backlogNow counts what the loader's groups have not committed yet.
func backlogNow(ctx context.Context, l *ingest.Loader) (map[string]int64, error) {
	ends, err := l.Ends(ctx)
	if err != nil {
		return nil, err
	}
	behind, err := l.Behind(ctx, ends)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, b := range behind {
		out[b.Lane] += b.Records()
	}
	return out, nil
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
func ensureClickHouse(ctx context.Context, cfg DevConfig, log *slog.Logger) (*chdb.Conn, error) {
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

// serveStatus serves /status and /metrics until ctx ends.
func serveStatus(ctx context.Context, addr string, st *status, reg *prometheus.Registry, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("status listener on %s (pick another with --status-addr, or \"\" for none): %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/status", st.serveHTTP)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	// The server goroutine ends when ctx ends and Close returns.
	go func() { _ = srv.Serve(ln) }()
	context.AfterFunc(ctx, func() { _ = srv.Close() })
	log.Info("status served", "url", "http://"+ln.Addr().String()+"/status")
	return nil
}
