package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"regexp"
	"strings"
	"time"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/chdb"
	tsql "github.com/tideline-dev/tideline/sql"
)

// Limits on the automatic event count: at least enough for a meaningful
// window, at most what the embedded broker can hold in memory twice over
// (collector records and the peer's flat copies).
const (
	minAutoEvents = 200_000
	maxAutoEvents = 20_000_000
	// fallbackRate sizes the data when the ceiling was not measured.
	fallbackRate = 100_000
)

// nonFileChars are replaced in profile file names.
var nonFileChars = regexp.MustCompile(`[^a-z0-9]+`)

// run is one bench run's state.
type run struct {
	cfg   Config
	h     Harness
	id    string
	log   *slog.Logger
	seeds []string
	bc    broker.Config
	res   *Result
	dbs   []string
	// start is the event time of the first generated event.
	start time.Time
}

// Run performs the scenarios of cfg and returns their figures. It fails
// only when the environment is unusable (no ClickHouse, no broker); a
// scenario that fails records its error in the result and the run goes on.
func Run(ctx context.Context, cfg Config, h Harness) (*Result, error) {
	if err := errors.Join(cfg.Validate(), h.ClickHouse.Validate(), h.Kafka.Validate(), h.Loader.Validate(), h.Collector.Validate()); err != nil {
		return nil, err
	}
	if h.Exe == "" {
		return nil, errors.New("bench harness has no executable to start the loader and collector from")
	}
	if h.Log == nil {
		h.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	began := time.Now()
	r := &run{cfg: cfg, h: h, log: h.Log, id: fmt.Sprintf("%s_%04x", began.UTC().Format("20060102_150405"), rand.Uint32()&0xffff),
		res: &Result{Date: began.UTC(), Settings: cfg, Loader: h.Loader}}
	r.res.RunID = r.id
	r.start = began.Add(-time.Hour).Truncate(time.Second)

	boot := h.ClickHouse
	boot.Database = "default"
	bconn, err := chdb.Open(ctx, boot, false)
	if err != nil {
		return nil, err
	}
	defer bconn.Close()
	defer r.cleanup(bconn)

	r.bc = h.Kafka
	r.bc.TopicPrefix = h.Kafka.TopicPrefix + "bench." + r.id + "."
	stopBroker, err := r.startBroker(ctx)
	if err != nil {
		return nil, err
	}
	defer stopBroker()
	r.res.Machine = describeMachine(ctx, bconn, r.seeds, r.bc)
	r.step("machine: %s, %d cores, %d MB; ClickHouse %s; Kafka: %s; load average %.2f",
		r.res.Machine.CPU, r.res.Machine.Cores, r.res.Machine.MemoryMB, r.res.Machine.ClickHouse, r.res.Machine.Kafka, r.res.Machine.LoadBefore)
	attached, err := r.viewsAvailable(ctx)
	if err != nil {
		return nil, err
	}
	views := []bool{false}
	if attached {
		views = append(views, true)
	} else {
		r.note("views attached: not measured — neither the migrations nor the bench's installer define materialized views, so every scenario runs with the views detached")
	}
	var ceilingRate float64
	if cfg.runs(ScenarioCeiling) {
		ceilingRate = r.ceilings(ctx, views)
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if cfg.runs(ScenarioThroughput) || cfg.runs(ScenarioPeer) {
		if err := r.produce(ctx, ceilingRate); err != nil {
			return nil, err
		}
		if cfg.runs(ScenarioThroughput) {
			for _, v := range views {
				r.tideline(ctx, v)
			}
		}
		if cfg.runs(ScenarioPeer) {
			r.peer(ctx, attached)
		}
	}
	if cfg.runs(ScenarioLatency) && ctx.Err() == nil {
		r.latency(ctx, attached)
	}
	if cfg.runs(ScenarioBacklog) && ctx.Err() == nil {
		r.backlog(ctx, attached)
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	r.res.Machine.LoadAfter = loadAverage()
	r.res.Seconds = time.Since(began).Seconds()
	r.res.summarise()
	return r.res, nil
}

func (r *run) step(format string, args ...any) {
	if r.h.Progress != nil {
		fmt.Fprintf(r.h.Progress, "bench: "+format+"\n", args...)
	}
}

func (r *run) note(format string, args ...any) {
	r.res.Notes = append(r.res.Notes, fmt.Sprintf(format, args...))
}

func (r *run) startBroker(ctx context.Context) (func(), error) {
	if r.bc.Mode == "embedded" {
		// A port of its own, so the bench runs beside `tideline dev`.
		r.bc.EmbeddedPort = 0
		r.bc.EmbeddedDataDir = ""
		e, err := broker.StartEmbedded(r.bc)
		if err != nil {
			return nil, err
		}
		r.seeds = e.Addrs()
		if err := createPeerTopics(ctx, r.seeds, r.bc); err != nil {
			e.Close()
			return nil, err
		}
		return e.Close, nil
	}
	r.seeds = r.bc.Brokers
	if err := broker.EnsureTopics(ctx, r.seeds, r.bc); err != nil {
		return nil, err
	}
	if err := createPeerTopics(ctx, r.seeds, r.bc); err != nil {
		return nil, err
	}
	return func() {}, nil
}

// database creates a fresh, migrated database for one scenario, with the
// views installed when views is set.
func (r *run) database(ctx context.Context, name string, views bool) (*chdb.Conn, chdb.Config, error) {
	c := r.h.ClickHouse
	c.Database = "bench_" + r.id + "_" + name
	conn, err := chdb.Open(ctx, c, true)
	if err != nil {
		return nil, c, err
	}
	r.dbs = append(r.dbs, c.Database)
	if _, err := tsql.Up(ctx, conn, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		conn.Close()
		return nil, c, fmt.Errorf("migrate %s: %w", c.Database, err)
	}
	switch {
	case !views:
		if err := dropViews(ctx, conn); err != nil {
			conn.Close()
			return nil, c, err
		}
	case r.h.Views != nil:
		if err := r.h.Views(ctx, conn); err != nil {
			conn.Close()
			return nil, c, fmt.Errorf("install views in %s: %w", c.Database, err)
		}
		fallthrough
	default:
		if r.res.Views == nil {
			if r.res.Views, err = materializedViews(ctx, conn); err != nil {
				conn.Close()
				return nil, c, err
			}
		}
	}
	return conn, c, nil
}

// viewsAvailable reports whether "views attached" differs from "detached":
// the installer adds views, or the migrations create some.
func (r *run) viewsAvailable(ctx context.Context) (bool, error) {
	if r.h.Views != nil {
		return true, nil
	}
	c := r.h.ClickHouse
	c.Database = "bench_" + r.id + "_probe"
	conn, err := chdb.Open(ctx, c, true)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	r.dbs = append(r.dbs, c.Database)
	if _, err := tsql.Up(ctx, conn, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		return false, fmt.Errorf("migrate %s: %w", c.Database, err)
	}
	names, err := materializedViews(ctx, conn)
	if err != nil {
		return false, err
	}
	return len(names) > 0, nil
}

// materializedViews lists the materialized views of conn's database.
func materializedViews(ctx context.Context, conn *chdb.Conn) ([]string, error) {
	names, err := conn.Strings(ctx, "SELECT name FROM system.tables WHERE database = ? AND engine = 'MaterializedView' ORDER BY name", conn.Database)
	if err != nil {
		return nil, fmt.Errorf("list materialized views: %w", err)
	}
	return names, nil
}

// dropViews removes every materialized view the migrations created but the
// position record, so "views detached" measures inserts into events and
// their positions alone.
func dropViews(ctx context.Context, conn *chdb.Conn) error {
	names, err := materializedViews(ctx, conn)
	if err != nil {
		return err
	}
	for _, n := range names {
		// Positions are part of loading, so they stay when the views are detached.
		if n == ingest.PositionsView {
			continue
		}
		if !chdb.ValidIdentifier(n) {
			return fmt.Errorf("materialized view %q has a name the bench cannot quote", n)
		}
		if err := conn.Exec(ctx, "DROP TABLE "+n); err != nil {
			return fmt.Errorf("detach view %s: %w", n, err)
		}
	}
	return nil
}

func (r *run) cleanup(conn *chdb.Conn) {
	if r.cfg.Keep {
		if len(r.dbs) > 0 {
			r.step("kept databases: %s", strings.Join(r.dbs, ", "))
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, db := range r.dbs {
		// The peer's engine table first, so it stops consuming before its
		// database goes.
		_ = conn.Exec(ctx, "DROP TABLE IF EXISTS "+db+"."+peerView)
		_ = conn.Exec(ctx, "DROP TABLE IF EXISTS "+db+"."+peerKafkaTable)
		if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db); err != nil {
			r.log.Warn("drop bench database", "database", db, "err", err)
		}
	}
}

func viewsName(attached bool) string {
	if attached {
		return "attached"
	}
	return "detached"
}

// ceilings measures the ceiling for each views setting and returns the
// detached rate, which sizes the data of the throughput scenarios.
func (r *run) ceilings(ctx context.Context, views []bool) float64 {
	r.step("ceiling: building %d-row columnar batches", r.h.Loader.BatchSize)
	batches, err := ceilingBatches(ctx, r.cfg, r.start, r.h.Loader.BatchSize, r.bc)
	if err != nil {
		r.res.Throughput = append(r.res.Throughput, Throughput{Name: "ceiling: pre-built columnar inserts", Error: err.Error()})
		return 0
	}
	var detached float64
	for _, v := range views {
		t := Throughput{Name: "ceiling: pre-built columnar inserts", Views: viewsName(v)}
		conn, _, err := r.database(ctx, "ceiling_"+viewsName(v), v)
		if err == nil {
			r.step("ceiling (views %s): %d inserters for %s", viewsName(v), r.cfg.CeilingInserters, r.cfg.Duration)
			t, err = runCeiling(ctx, r.cfg, conn, batches)
			t.Views = viewsName(v)
			conn.Close()
		}
		if err != nil {
			t.Error = err.Error()
		} else if !v {
			detached = t.EventsPerSec
		}
		r.step("ceiling (views %s): %.0f events/s", viewsName(v), t.EventsPerSec)
		r.res.Throughput = append(r.res.Throughput, t)
	}
	if r.cfg.Cluster != "" && ctx.Err() == nil {
		r.clusterCeilings(ctx, batches)
	}
	return detached
}

// produce writes the throughput scenarios' data before any is measured.
func (r *run) produce(ctx context.Context, ceilingRate float64) error {
	n := r.cfg.Events
	if n == 0 {
		rate := ceilingRate
		if rate <= 0 {
			rate = fallbackRate
		}
		n = min(max(int64(rate*r.cfg.Duration.Seconds()), minAutoEvents), maxAutoEvents)
	}
	r.step("producing %d events to %s* (collector records and the peer's flat rows, %s)", n, r.bc.TopicPrefix, r.cfg.Compression)
	p, err := produce(ctx, r.cfg, r.seeds, r.bc, n, r.start, r.log)
	if err != nil {
		return fmt.Errorf("pre-produce: %w", err)
	}
	r.res.Produced = &p
	r.step("produced %d events in %.1fs (record %.0f B, flat %.0f B)", p.Events, p.Seconds, p.RecordBytes, p.FlatBytes)
	return nil
}

// deadline bounds a drain: long enough for a consumer at a quarter of the
// ceiling, short enough that a run always ends.
func (r *run) drainDeadline(start time.Time) time.Time {
	return start.Add(4*r.cfg.Duration + 30*time.Second)
}

func (r *run) loaderSpec(name, group string, ch chdb.Config, bc broker.Config, lanes []string) childSpec {
	lc := r.h.Loader
	lc.Group = group
	if lanes != nil {
		lc.Lanes = lanes
	}
	lc.MetricsAddr = ""
	spec := childSpec{Role: roleLoader, Name: name, ClickHouse: ch, Kafka: bc, Seeds: r.seeds, Loader: lc}
	r.profiles(&spec)
	return spec
}

// kafkaForChildren is the broker config children use: always "kafka" mode
// with the run's seeds, since the embedded broker lives in this process,
// and topics under prefix.
func (r *run) kafkaForChildren(prefix string) broker.Config {
	bc := r.bc
	bc.Mode = "kafka"
	bc.Brokers = r.seeds
	bc.TopicPrefix = prefix
	return bc
}

func (r *run) profiles(spec *childSpec) {
	file := strings.Trim(nonFileChars.ReplaceAllString(strings.ToLower(spec.Name), "-"), "-")
	if r.cfg.CPUProfile != "" {
		spec.CPUProfile = r.cfg.CPUProfile + "." + file + ".pprof"
	}
	if r.cfg.MemProfile != "" {
		spec.MemProfile = r.cfg.MemProfile + "." + file + ".pprof"
	}
	if r.cfg.ChildLog != "" {
		spec.LogFile = r.cfg.ChildLog + "." + file + ".log"
	}
}

func (r *run) memory(process, scenario string, kb int64) {
	r.res.Memory = append(r.res.Memory, ProcessMemory{Process: process, Scenario: scenario, PeakRSSMB: float64(kb) / 1024})
}

// tideline measures the loader draining the pre-produced data, with
// cfg.LoaderProcesses loaders of one consumer group sharing the partitions.
func (r *run) tideline(ctx context.Context, views bool) {
	t := Throughput{Name: "tideline loader", Views: viewsName(views)}
	n := r.cfg.LoaderProcesses
	if n > 1 {
		t.Name = fmt.Sprintf("tideline loader ×%d", n)
	}
	defer func() { r.res.Throughput = append(r.res.Throughput, t) }()
	conn, chc, err := r.database(ctx, "tideline_"+viewsName(views), views)
	if err != nil {
		t.Error = err.Error()
		return
	}
	defer conn.Close()
	name := "loader (throughput, views " + viewsName(views) + ")"
	group := "bench-" + r.id + "-" + viewsName(views)
	r.step("tideline (views %s): %d loader process(es) draining %d events", viewsName(views), n, r.res.Produced.Events)
	before, err := serverEvents(ctx, conn, localEvents)
	if err != nil {
		t.Error = err.Error()
		return
	}
	start := time.Now()
	var children []*child
	var errs []error
	for i := range n {
		childName := name
		if n > 1 {
			childName = fmt.Sprintf("%s %d", name, i+1)
		}
		c, err := startChild(ctx, r.h, r.loaderSpec(childName, group, chc, r.kafkaForChildren(r.bc.TopicPrefix), nil))
		if err != nil {
			errs = append(errs, err)
			break
		}
		children = append(children, c)
	}
	if len(errs) == 0 {
		alive := func() error {
			for _, c := range children {
				if err := c.alive(); err != nil {
					return err
				}
			}
			return nil
		}
		errs = append(errs, watchDrain(ctx, conn, &t, r.res.Produced.Events, start, r.drainDeadline(start), alive))
		t.Server = serverSince(ctx, conn, localEvents, before)
	}
	for _, c := range children {
		final, serr := c.stop()
		errs = append(errs, serr)
		t.PeakRSSMB = max(t.PeakRSSMB, float64(final.PeakRSSKB)/1024)
		t.ClientCPUSeconds += final.CPUSeconds
		r.memory("loader", "throughput, views "+viewsName(views), final.PeakRSSKB)
	}
	if err := errors.Join(errs...); err != nil {
		t.Error = err.Error()
	}
	r.step("tideline (views %s): %.0f events/s over %.1fs (drained: %v, peak RSS %.0f MB)", viewsName(views), t.EventsPerSec, t.Seconds, t.Drained, t.PeakRSSMB)
}

// peer measures ClickHouse's Kafka engine consuming the flat copies of the
// same events from the same broker into the same schema.
func (r *run) peer(ctx context.Context, views bool) {
	t := Throughput{Name: "peer: ClickHouse Kafka engine", Views: viewsName(views)}
	defer func() { r.res.Throughput = append(r.res.Throughput, t) }()
	conn, _, err := r.database(ctx, "peer_"+viewsName(views), views)
	if err != nil {
		t.Error = err.Error()
		return
	}
	defer conn.Close()
	group := "bench-" + r.id + "-peer"
	var topics []string
	for _, l := range liveLanes {
		topics = append(topics, peerTopic(r.bc, l))
	}
	table, err := peerTableSQL(r.seeds, topics, group, r.cfg.PeerConsumers)
	if err == nil {
		err = commitAtStart(ctx, r.seeds, r.bc, group, topics)
	}
	if err != nil {
		t.Error = err.Error()
		return
	}
	r.step("peer (views %s): Kafka engine consuming %d flat rows", viewsName(views), r.res.Produced.Events)
	before, err := serverEvents(ctx, conn, localEvents)
	if err != nil {
		t.Error = err.Error()
		return
	}
	start := time.Now()
	if err := conn.Exec(ctx, table); err != nil {
		t.Error = fmt.Errorf("%w: %w (on ClickHouse 18.16 an invalid <kafka> section in the server config fails every Kafka table: check it, then scripts/clickhouse.sh restart)", ErrNoPeer, err).Error()
		return
	}
	if err := conn.Exec(ctx, peerViewSQL); err != nil {
		t.Error = fmt.Errorf("%w: %w", ErrNoPeer, err).Error()
		return
	}
	if err := watchDrain(ctx, conn, &t, r.res.Produced.Events, start, r.drainDeadline(start), nil); err != nil {
		t.Error = err.Error()
	}
	// Only the merge time: 18.16 runs the engine's inserts on a background
	// thread whose CPU system.events does not account.
	t.Server = ServerCPU{MergeSeconds: serverSince(ctx, conn, localEvents, before).MergeSeconds}
	// Stop consuming now: the engine would otherwise compete with the
	// scenarios that follow.
	_ = conn.Exec(ctx, "DROP TABLE IF EXISTS "+peerView)
	_ = conn.Exec(ctx, "DROP TABLE IF EXISTS "+peerKafkaTable)
	r.step("peer (views %s): %.0f events/s over %.1fs (drained: %v)", viewsName(views), t.EventsPerSec, t.Seconds, t.Drained)
}
