package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"

	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/component"
)

// LoaderConfig configures the loader.
type LoaderConfig struct {
	// Lanes to consume (default web, server, backfill). "dlq" also loads
	// the collector's rejects from events.dlq into the dead_letters table.
	Lanes []string `koanf:"lanes"`
	// Group is the consumer group prefix; each lane's group is
	// <kafka.topic_prefix>Group.lane (default "tideline-loader").
	Group string `koanf:"group"`
	// BatchSize flushes a lane's batch when it holds this many records (default 50000).
	BatchSize int `koanf:"batch_size"`
	// FlushInterval flushes a non-empty batch this long after its first
	// record, bounding latency at low rates (default 200ms).
	FlushInterval time.Duration `koanf:"flush_interval"`
	// StreamRows sizes inserts by backlog: while a lane is more than
	// batch_size records behind, its insert stays open and takes batch
	// after batch until it holds this many records or stream_max_duration
	// passed, so the views' tables receive a few large parts instead of
	// many small ones to merge. Memory stays one block: records are sent
	// on the open insert 8 192 at a time as they are decoded. Offsets are committed once ClickHouse
	// acknowledged the whole insert; a failed one is consumed again from
	// the committed offsets. A lane that caught up inserts batch by batch
	// again. At most batch_size turns it off (default 1000000).
	StreamRows int `koanf:"stream_rows"`
	// StreamMaxDuration bounds how long a lane's insert stays open under
	// backlog, and so how long its records wait for their commit and the
	// lane's watermark (default 10s).
	StreamMaxDuration time.Duration `koanf:"stream_max_duration"`
	// WatermarkInterval is how often idle partitions' watermarks advance and
	// lag is measured (default 1s).
	WatermarkInterval time.Duration `koanf:"watermark_interval"`
	// WatermarkGrace is subtracted from "now" for a caught-up partition's
	// watermark, covering records the collector is still producing (default 2s).
	WatermarkGrace time.Duration `koanf:"watermark_grace"`
	// BackfillMaxLiveLag pauses the backfill lane while the live lanes'
	// consumer lag (records) is above it, so live traffic never waits behind
	// a backfill (default 20000).
	BackfillMaxLiveLag int64 `koanf:"backfill_max_live_lag"`
	// FetchMaxBytes bounds one fetch response (default 50 MiB).
	FetchMaxBytes int32 `koanf:"fetch_max_bytes"`
	// MaxRetryBackoff caps the backoff between failed inserts (default 10s).
	MaxRetryBackoff time.Duration `koanf:"max_retry_backoff"`
	// MetricsAddr serves /metrics and /healthz (default 127.0.0.1:9102; "" turns it off).
	MetricsAddr string `koanf:"metrics_addr"`
	// ShutdownTimeout bounds, on SIGTERM, the drain to the lanes' end
	// offsets (Drain) and then the final flush of each lane (default 30s).
	ShutdownTimeout time.Duration `koanf:"shutdown_timeout"`
	// SessionTimeout is how long a member that stopped heartbeating (killed,
	// host lost) keeps its partitions before the group hands them to the
	// others (default 45s, Kafka's; the broker bounds it, 6s at least).
	SessionTimeout time.Duration `koanf:"session_timeout"`
	// InstanceID makes this loader a static group member (KIP-345): a
	// restarted loader with the same id takes its partitions back at once,
	// without waiting for the session timeout or a rebalance. Give each
	// loader process its own stable id, e.g. the pod name (default "":
	// dynamic membership).
	InstanceID string `koanf:"instance_id"`
}

// DefaultLoaderConfig returns the defaults.
func DefaultLoaderConfig() LoaderConfig {
	return LoaderConfig{
		Lanes:              []string{"web", "server", "backfill", "dlq"},
		Group:              "tideline-loader",
		BatchSize:          50000,
		FlushInterval:      200 * time.Millisecond,
		StreamRows:         1_000_000,
		StreamMaxDuration:  10 * time.Second,
		WatermarkInterval:  time.Second,
		WatermarkGrace:     2 * time.Second,
		BackfillMaxLiveLag: 20000,
		FetchMaxBytes:      50 << 20,
		MaxRetryBackoff:    10 * time.Second,
		ShutdownTimeout:    30 * time.Second,
		SessionTimeout:     45 * time.Second,
		MetricsAddr:        "127.0.0.1:9102",
	}
}

// Validate says what to fix in c.
func (c LoaderConfig) Validate() error {
	var errs []error
	if len(c.Lanes) == 0 {
		errs = append(errs, errors.New("loader.lanes is empty: give at least one of web, server, backfill, dlq"))
	}
	for _, l := range c.Lanes {
		if _, err := (broker.Config{}).Topic(l); err != nil {
			errs = append(errs, fmt.Errorf("loader.lanes: %w", err))
		}
	}
	if c.Group == "" {
		errs = append(errs, errors.New("loader.group is empty"))
	}
	if c.BatchSize < 1 {
		errs = append(errs, fmt.Errorf("loader.batch_size must be at least 1, got %d", c.BatchSize))
	}
	if c.FlushInterval <= 0 || c.WatermarkInterval <= 0 {
		errs = append(errs, errors.New("loader.flush_interval and loader.watermark_interval must be positive"))
	}
	if c.StreamRows > c.BatchSize && c.StreamMaxDuration <= 0 {
		errs = append(errs, fmt.Errorf("loader.stream_max_duration must be positive when loader.stream_rows (%d) is above loader.batch_size, got %s", c.StreamRows, c.StreamMaxDuration))
	}
	if c.SessionTimeout < time.Second {
		errs = append(errs, fmt.Errorf("loader.session_timeout must be at least 1s (brokers require 6s by default), got %s", c.SessionTimeout))
	}
	if c.FetchMaxBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("loader.fetch_max_bytes must be at least 1 MiB, got %d", c.FetchMaxBytes))
	}
	return errors.Join(errs...)
}

// LaneStats counts a lane's records since start.
type LaneStats struct {
	Consumed     int64
	Inserted     int64
	DeadLettered int64
	Lag          int64
	WatermarkMs  uint64
}

// Loader consumes the lanes into ClickHouse.
type Loader struct {
	cfg      LoaderConfig
	bc       broker.Config
	seeds    []string
	conn     *chdb.Conn
	log      *slog.Logger
	metrics  *loaderMetrics
	kprom    *kprom.Metrics
	producer *kgo.Client
	lanes    map[string]*lane
	liveLag  sync.Map // lane -> int64
}

// NewLoader prepares a loader; Run starts consuming.
func NewLoader(cfg LoaderConfig, env component.Env) (*Loader, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	reg := env.Registry
	l := &Loader{cfg: cfg, bc: env.Kafka, seeds: env.Seeds, conn: env.Conn, log: env.Logger(), metrics: newLoaderMetrics(reg), lanes: map[string]*lane{}}
	if reg != nil {
		// One kprom for all of the loader's clients, told apart by client id.
		l.kprom = kprom.NewMetrics("tideline_loader_kafka", kprom.Registerer(reg), kprom.WithClientLabel())
	}
	for _, name := range cfg.Lanes {
		l.lanes[name] = &lane{name: name, stats: &laneCounters{}}
	}
	return l, nil
}

// Stats returns per-lane counters.
func (l *Loader) Stats() map[string]LaneStats {
	out := map[string]LaneStats{}
	for name, ln := range l.lanes {
		out[name] = LaneStats{
			Consumed:     ln.stats.consumed.Load(),
			Inserted:     ln.stats.inserted.Load(),
			DeadLettered: ln.stats.deadLettered.Load(),
			Lag:          ln.stats.lag.Load(),
			WatermarkMs:  ln.stats.watermarkMs.Load(),
		}
	}
	return out
}

// Run consumes until ctx is cancelled, then flushes and commits what it
// holds and leaves the groups. It returns the first lane error.
func (l *Loader) Run(ctx context.Context) error {
	opts := append(broker.ClientOpts(l.seeds, l.log), kgo.ClientID("tideline-loader-dlq-producer"))
	if l.kprom != nil {
		opts = append(opts, kgo.WithHooks(l.kprom))
	}
	producer, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("kafka producer for dead letters: %w", err)
	}
	defer producer.Close()
	l.producer = producer

	// A lane that fails (a permanent ClickHouse error, its client closed)
	// stops the others, which drain and commit what they inserted: the
	// loader ends with the error instead of running with lanes missing.
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	errc := make(chan error, len(l.lanes))
	var wg sync.WaitGroup
	for _, ln := range l.lanes {
		wg.Add(1)
		// Each lane's goroutine stops when lctx is cancelled or its client fails.
		go func() {
			defer wg.Done()
			if err := l.runLane(lctx, ln); err != nil {
				errc <- fmt.Errorf("lane %s: %w", ln.name, err)
				stop()
			}
		}()
	}
	wg.Wait()
	close(errc)
	return <-errc
}

type laneCounters struct {
	consumed, inserted, deadLettered, lag atomic.Int64
	watermarkMs                           atomic.Uint64
}

type lane struct {
	name  string
	stats *laneCounters
}

type partState struct {
	next        int64 // next offset to consume
	hwm         int64
	watermarkMs uint64
	touched     bool
}

// laneRun is one lane's consume loop state; it is owned by one goroutine.
type laneRun struct {
	l       *Loader
	ln      *lane
	topic   string
	group   string
	client  *kgo.Client
	adm     *kadm.Client
	rows    EventRows
	dead    []DeadLetter
	dlqOut  []*kgo.Record
	pending int // records taken since the last commit
	first   time.Time
	parts   map[int32]*partState
	// from is each partition's first offset taken since the last commit,
	// where a failed open insert consumes again from.
	from map[int32]int64
	// behind: the lane's partitions held more than a batch beyond what
	// was taken, at the last poll.
	behind bool
	// ins is the lane's open insert while it is behind (nil otherwise),
	// holding the streamed records taken first.
	ins      driver.Batch
	insDone  context.CancelFunc
	streamed int
	backoff  time.Duration
	assigned sync.Map // partition -> bool, written from rebalance callbacks
	paused   bool
}

func (l *Loader) runLane(ctx context.Context, ln *lane) error {
	topic, err := l.bc.Topic(ln.name)
	if err != nil {
		return err
	}
	group := l.cfg.GroupOf(l.bc, ln.name)
	r := &laneRun{l: l, ln: ln, topic: topic, group: group, parts: map[int32]*partState{}, from: map[int32]int64{}}
	opts := append(broker.ClientOpts(l.seeds, l.log),
		kgo.ClientID("tideline-loader-"+ln.name),
		kgo.ConsumerGroup(r.group),
		kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(),
		// Rebalances wait until the batch in hand is inserted and committed,
		// so a partition never moves with records inserted but uncommitted
		// (which would be redelivered: harmless, but wasted work) or
		// polled but not inserted.
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchMaxBytes(l.cfg.FetchMaxBytes),
		kgo.FetchMaxWait(100*time.Millisecond),
		kgo.SessionTimeout(l.cfg.SessionTimeout),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			for _, p := range m[topic] {
				r.assigned.Store(p, true)
			}
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			for _, p := range m[topic] {
				r.assigned.Delete(p)
			}
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			for _, p := range m[topic] {
				r.assigned.Delete(p)
			}
		}),
	)
	if l.cfg.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(l.cfg.InstanceID))
	}
	if l.kprom != nil {
		opts = append(opts, kgo.WithHooks(l.kprom))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("kafka consumer: %w", err)
	}
	r.client = cl
	r.adm = kadm.NewClient(cl)
	defer l.closeBounded(cl, ln.name)
	// With BlockRebalanceOnPoll, Close leaves the group only once the last
	// poll is released; a lane returning with a batch in hand (shutdown,
	// failed flush) has not released it, and Close would wait forever.
	// Deferred after Close, so it runs first.
	defer cl.AllowRebalance()
	defer r.abortStream()
	l.log.Info("loader lane started", "lane", ln.name, "topic", topic, "group", r.group)

	tick := time.NewTicker(l.cfg.WatermarkInterval)
	defer tick.Stop()
	for {
		if ctx.Err() != nil {
			return r.shutdown()
		}
		select {
		case <-tick.C:
			r.idle(ctx)
		default:
		}
		wait := l.cfg.FlushInterval
		if r.pending > 0 && !r.streaming() {
			wait = time.Until(r.first.Add(l.cfg.FlushInterval))
		}
		if wait > 0 {
			pctx, cancel := context.WithTimeout(ctx, wait)
			fetches := cl.PollRecords(pctx, r.pollMax())
			cancel()
			if fetches.IsClientClosed() {
				return nil
			}
			fetches.EachError(func(t string, p int32, err error) {
				if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
					l.log.Warn("fetch error", "lane", ln.name, "topic", t, "partition", p, "err", err)
				}
			})
			r.take(fetches)
			// A poll that found nothing means the lane is not behind,
			// whatever the last high watermark said.
			r.behind = fetches.NumRecords() > 0 && r.lag() > int64(l.cfg.BatchSize)
		}
		var err error
		switch {
		case r.pending == 0:
		case r.streaming():
			if r.block() >= r.streamBlock() {
				err = r.stream(ctx)
			}
		case r.ins != nil || r.block() >= l.cfg.BatchSize || !time.Now().Before(r.first.Add(l.cfg.FlushInterval)):
			fctx, cancel := drainContext(ctx, l.cfg.ShutdownTimeout)
			err = r.flush(fctx)
			cancel()
		}
		if err != nil {
			if ctx.Err() != nil {
				// Stopped, and the batch could not be inserted and
				// committed within the shutdown timeout: the group
				// redelivers what was not committed.
				return nil
			}
			return err
		}
		if r.pending == 0 {
			cl.AllowRebalance()
		}
	}
}

// block is the number of records taken and not yet sent to ClickHouse.
func (r *laneRun) block() int { return r.pending - r.streamed }

// streamBlock is how many records a lane whose insert stays open sends at
// a time: one block of the insert, so it holds a block of decoded rows,
// not a batch (two lanes holding 50 000 rows each and their garbage were
// most of a loader's memory).
func (r *laneRun) streamBlock() int { return min(insertBlockRows, r.l.cfg.BatchSize) }

// pollMax is how many records the next poll may take: no more than the
// batch has room for, and no more than a block, so a lane that turns out
// to be behind streams from its first poll on. A lane that inserts batch
// by batch fills its batch over several polls.
func (r *laneRun) pollMax() int { return min(r.l.cfg.BatchSize-r.block(), r.streamBlock()) }

// lag is how many records of the partitions this member owns were not
// taken yet, as of the last fetch.
func (r *laneRun) lag() int64 {
	var n int64
	for p, st := range r.parts {
		if _, mine := r.assigned.Load(p); mine && st.hwm > st.next {
			n += st.hwm - st.next
		}
	}
	return n
}

// streaming reports whether the lane keeps its insert open for more
// batches: it is behind, and it holds fewer than StreamRows records taken
// less than StreamMaxDuration ago. The dead-letter lane inserts no events.
func (r *laneRun) streaming() bool {
	c := r.l.cfg
	if !r.behind || c.StreamRows <= c.BatchSize || r.ln.name == "dlq" || r.pending >= c.StreamRows {
		return false
	}
	return r.pending == 0 || time.Since(r.first) < c.StreamMaxDuration
}

// stream sends the batch in hand on the lane's open insert, opening it
// first if needed, and keeps the records' offsets uncommitted until flush
// finishes the insert. A retryable failure drops the insert and consumes
// again from the committed offsets, after a backoff.
func (r *laneRun) stream(ctx context.Context) error {
	if r.ins == nil {
		sctx, done := drainContext(ctx, r.l.cfg.ShutdownTimeout)
		ins, err := openEvents(sctx, r.l.conn, "events")
		if err != nil {
			done()
			return r.streamFailed(ctx, err)
		}
		r.ins, r.insDone = ins, done
		r.l.log.Info("loader lane behind: streaming batches into one insert", "lane", r.ln.name, "lag", r.lag())
	}
	if err := r.rows.appendTo(r.ins, chdb.NowMs(), true); err != nil {
		return r.streamFailed(ctx, err)
	}
	r.rows.Reset()
	// Dead letters stay in hand until flush: they go in after the events.
	r.streamed = r.pending
	r.backoff = 0
	return nil
}

// streamFailed drops the lane's open insert and everything taken since
// the last commit, and rewinds the partitions to their first offset taken,
// the committed one, so the records are consumed and inserted again after
// a backoff. Rows of the dropped insert that ClickHouse already wrote are
// inserted twice, as after a crash, and collapse the same way. A permanent
// error stops the lane instead.
func (r *laneRun) streamFailed(ctx context.Context, err error) error {
	r.abortStream()
	r.l.metrics.insertErrors.WithLabelValues(r.ln.name, "stream events").Inc()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if !chdb.Retryable(err) {
		return fmt.Errorf("loader lane %s: stream events: %w", r.ln.name, chdb.Permanent(err))
	}
	at := map[int32]kgo.EpochOffset{}
	for p, off := range r.from {
		at[p] = kgo.EpochOffset{Epoch: -1, Offset: off}
		r.part(p).next = off
	}
	r.client.SetOffsets(map[string]map[int32]kgo.EpochOffset{r.topic: at})
	r.backoff = min(max(2*r.backoff, 100*time.Millisecond), r.l.cfg.MaxRetryBackoff)
	r.l.log.Warn("loader insert under backlog failed; consuming its records again", "lane", r.ln.name,
		"records", r.pending, "backoff", r.backoff, "err", err)
	r.dropBatch()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(r.backoff):
	}
	return nil
}

// abortStream drops the lane's open insert, if any; the server discards
// what it did not write yet.
func (r *laneRun) abortStream() {
	if r.ins == nil {
		return
	}
	_ = r.ins.Abort()
	r.insDone()
	r.ins, r.insDone, r.streamed = nil, nil, 0
}

// dropBatch forgets everything taken since the last commit.
func (r *laneRun) dropBatch() {
	r.rows.Reset()
	r.dead = r.dead[:0]
	r.dlqOut = r.dlqOut[:0]
	r.pending = 0
	clear(r.from)
}

// take decodes polled records into the batch.
func (r *laneRun) take(fetches kgo.Fetches) {
	now := chdb.NowMs()
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		ps := r.part(p.Partition)
		if p.HighWatermark > ps.hwm {
			ps.hwm = p.HighWatermark
		}
		for _, rec := range p.Records {
			if r.pending == 0 {
				r.first = time.Now()
			}
			r.pending++
			if _, ok := r.from[p.Partition]; !ok {
				r.from[p.Partition] = rec.Offset
			}
			ps.next = rec.Offset + 1
			ps.touched = true
			r.ln.stats.consumed.Add(1)
			r.l.metrics.consumed.WithLabelValues(r.ln.name).Inc()
			if r.ln.name == "dlq" {
				r.takeDLQ(rec, now)
				continue
			}
			pos := r.position(rec)
			ev, err := DecodeRecord(rec.Value)
			if err != nil {
				var fe *FieldError
				if !errors.As(err, &fe) {
					fe = &FieldError{Code: CodeMalformedJSON, Message: err.Error()}
				}
				dl := deadLetterOf(rec, r.ln.name, fe, now)
				dl.Topic, dl.Partition, dl.Offset = pos.Topic, pos.Partition, pos.Offset
				r.dead = append(r.dead, dl)
				r.dlqOut = append(r.dlqOut, deadLetterRecord(r.l.bc.MustTopic("dlq"), rec.Value, "loader:"+r.ln.name, fe))
				continue
			}
			r.rows.Add(ev, r.ln.name, pos.Topic, pos.Partition, pos.Offset)
			if ms := msOf(ev.ReceivedAt); ms > ps.watermarkMs {
				ps.watermarkMs = ms
			}
		}
	})
}

// position is where a record's row says it came from: its own position, or
// on the backfill lane the original position a backfill put in its headers.
func (r *laneRun) position(rec *kgo.Record) Origin {
	if r.ln.name == "backfill" {
		if o, ok := originOf(rec); ok {
			return o
		}
	}
	return Origin{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset}
}

// takeDLQ keeps the collector's rejects; the loader's own are already in
// dead_letters with their original Kafka position.
func (r *laneRun) takeDLQ(rec *kgo.Record, now uint64) {
	if !fromCollector(rec) {
		return
	}
	fe := &FieldError{Code: header(rec, HeaderCode), Message: header(rec, HeaderError), Field: header(rec, HeaderField)}
	dl := deadLetterOf(rec, header(rec, HeaderOrigin), fe, now)
	r.dead = append(r.dead, dl)
}

func (r *laneRun) part(p int32) *partState {
	ps := r.parts[p]
	if ps == nil {
		ps = &partState{}
		r.parts[p] = ps
	}
	return ps
}

// flush inserts the batch, retrying with backoff until ClickHouse takes it,
// ctx ends or the error is permanent (chdb.Retryable), then commits the
// offsets. Offsets are never committed for a batch
// ClickHouse did not acknowledge.
func (r *laneRun) flush(ctx context.Context) error {
	start := time.Now()
	if r.ins != nil {
		// The lane's open insert: its records are no longer in hand, so
		// it cannot be retried, only consumed again.
		err := r.rows.appendTo(r.ins, chdb.NowMs(), false)
		if err == nil {
			err = r.ins.Send()
		}
		if err != nil {
			return r.streamFailed(ctx, err)
		}
		r.insDone()
		r.ins, r.insDone, r.streamed = nil, nil, 0
		r.backoff = 0
		r.rows.Reset()
		r.l.log.Info("loader lane's insert under backlog acknowledged", "lane", r.ln.name,
			"records", r.pending, "seconds", time.Since(r.first).Seconds())
	}
	ingest := chdb.NowMs()
	if err := r.retry(ctx, "insert events", func(ctx context.Context) error {
		if r.rows.Len() == 0 {
			return nil
		}
		return r.rows.Insert(ctx, r.l.conn, ingest)
	}); err != nil {
		return err
	}
	if err := r.retry(ctx, "insert dead letters", func(ctx context.Context) error {
		return InsertDeadLetters(ctx, r.l.conn, r.dead)
	}); err != nil {
		return err
	}
	if len(r.dlqOut) > 0 {
		if err := r.retry(ctx, "produce dead letters", func(ctx context.Context) error {
			return r.l.producer.ProduceSync(ctx, r.dlqOut...).FirstErr()
		}); err != nil {
			return err
		}
	}
	var lost error
	if err := r.retry(ctx, "commit offsets", func(ctx context.Context) error {
		err := r.client.CommitUncommittedOffsets(ctx)
		if membershipLost(err) {
			lost = err
			return nil
		}
		return err
	}); err != nil {
		return err
	}
	if lost != nil {
		// The group expelled this member (the broker restarted, or the
		// loader stalled past the session timeout) while it held an
		// inserted batch. No commit succeeds until it rejoins, and it
		// cannot rejoin while it holds the batch (BlockRebalanceOnPoll):
		// retrying would wait forever. The batch is in ClickHouse; giving
		// its offsets up lets the client rejoin, and the group redelivers
		// the records to the partitions' next owner, where the duplicate
		// rows collapse.
		r.l.log.Warn("loader lost its group membership before committing; the batch will be redelivered",
			"lane", r.ln.name, "records", r.pending, "err", lost)
		r.l.metrics.insertErrors.WithLabelValues(r.ln.name, "commit offsets: membership lost").Inc()
		r.dropBatch()
		return nil
	}
	// Every record taken is an event row or a dead letter.
	inserted, dead := r.pending-len(r.dead), len(r.dead)
	if r.ln.name == "dlq" {
		inserted, dead = 0, len(r.dead)
	}
	r.ln.stats.inserted.Add(int64(inserted))
	r.ln.stats.deadLettered.Add(int64(dead))
	r.l.metrics.inserted.WithLabelValues(r.ln.name).Add(float64(inserted))
	r.l.metrics.deadLettered.WithLabelValues(r.ln.name).Add(float64(dead))
	r.l.metrics.batchSeconds.WithLabelValues(r.ln.name).Observe(time.Since(start).Seconds())
	r.l.metrics.batchRows.WithLabelValues(r.ln.name).Observe(float64(r.pending))
	r.writeProgress(ctx, false)
	r.dropBatch()
	return nil
}

// drainContext is the context of a flush: a stop (ctx ending) does not cut
// an insert or its commit short, which would leave inserted records
// uncommitted, but it bounds the flush to grace from then on.
func drainContext(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	dctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(grace, cancel) })
	return dctx, func() {
		stop()
		cancel()
	}
}

// writeProgress records touched partitions' offsets and watermarks. It is
// best-effort: progress rows are advisory and rewritten on the next flush.
func (r *laneRun) writeProgress(ctx context.Context, all bool) {
	if r.ln.name == "dlq" {
		return
	}
	var ps []Progress
	var minWm uint64
	for p, st := range r.parts {
		if !st.touched && !all {
			continue
		}
		if _, ok := r.assigned.Load(p); !ok && all {
			continue
		}
		if _, inHand := r.from[p]; inHand && all {
			// Recorded by the flush that commits them: progress says
			// the partition's inserts so far were acknowledged
			// (InsertsFinished), which an open insert's are not.
			continue
		}
		st.touched = false
		ps = append(ps, Progress{Lane: r.ln.name, Topic: r.topic, Partition: p, CommittedOffset: st.next, HighWatermark: max(st.hwm, st.next), WatermarkMs: st.watermarkMs})
		if minWm == 0 || st.watermarkMs < minWm {
			minWm = st.watermarkMs
		}
	}
	if len(ps) == 0 {
		return
	}
	if err := InsertProgress(ctx, r.l.conn, ps, chdb.NowMs()); err != nil {
		// On shutdown the final flush records progress with its own context.
		if ctx.Err() == nil {
			r.l.log.Warn("record loader progress", "lane", r.ln.name, "err", err)
		}
		return
	}
	r.ln.stats.watermarkMs.Store(minWm)
}

// commitInserted commits offsets of records that are already in
// ClickHouse but whose commit was given up (a flush that met a rebalance):
// the client keeps consuming past them, so without this they would stay
// uncommitted until the next batch of the lane, or for ever if none comes.
// It is only called with no batch in hand, when everything polled is inserted.
func (r *laneRun) commitInserted(ctx context.Context) {
	if err := r.client.CommitUncommittedOffsets(ctx); err != nil && ctx.Err() == nil && !membershipLost(err) {
		r.l.log.Warn("commit of inserted records", "lane", r.ln.name, "err", err)
	}
}

// idle measures lag and advances the watermark of caught-up partitions this
// member owns: with nothing left to consume, everything received before now
// (less the grace for in-flight produces) is loaded.
func (r *laneRun) idle(ctx context.Context) {
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if r.pending == 0 {
		r.commitInserted(lctx)
	}
	lags, err := r.adm.Lag(lctx, r.group)
	if err != nil {
		return
	}
	gl, ok := lags[r.group]
	if !ok || gl.Error() != nil {
		return
	}
	now := time.Now().Add(-r.l.cfg.WatermarkGrace)
	var total int64
	for p, ml := range gl.Lag[r.topic] {
		lag := ml.Lag
		if lag < 0 {
			lag = 0
		}
		total += lag
		r.l.metrics.lag.WithLabelValues(r.ln.name, strconv.Itoa(int(p))).Set(float64(lag))
		if _, mine := r.assigned.Load(p); !mine {
			continue
		}
		st := r.part(p)
		if ml.End.Offset > st.hwm {
			st.hwm = ml.End.Offset
		}
		if ml.Commit.At > st.next {
			st.next = ml.Commit.At
		}
		if lag == 0 && r.pending == 0 {
			if ms := uint64(now.UnixMilli()); ms > st.watermarkMs {
				st.watermarkMs = ms
			}
		}
	}
	r.ln.stats.lag.Store(total)
	r.l.liveLag.Store(r.ln.name, total)
	r.writeProgress(ctx, true)
	if wm := r.ln.stats.watermarkMs.Load(); wm > 0 {
		r.l.metrics.watermarkAge.WithLabelValues(r.ln.name).Set(time.Since(time.UnixMilli(int64(wm))).Seconds())
	}
	if r.ln.name == "backfill" {
		r.yieldToLive()
	}
}

// yieldToLive pauses the backfill lane while live lanes are behind.
func (r *laneRun) yieldToLive() {
	var live int64
	for _, name := range []string{"web", "server"} {
		if v, ok := r.l.liveLag.Load(name); ok {
			live += v.(int64)
		}
	}
	switch {
	case live > r.l.cfg.BackfillMaxLiveLag && !r.paused:
		r.client.PauseFetchTopics(r.topic)
		r.paused = true
		r.l.log.Info("backfill lane paused: live lanes are behind", "live_lag", live)
	case live <= r.l.cfg.BackfillMaxLiveLag && r.paused:
		r.client.ResumeFetchTopics(r.topic)
		r.paused = false
		r.l.log.Info("backfill lane resumed", "live_lag", live)
	}
	paused := 0.0
	if r.paused {
		paused = 1
	}
	r.l.metrics.backfillPaused.Set(paused)
}

func (r *laneRun) retry(ctx context.Context, what string, fn func(context.Context) error) error {
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.l.metrics.insertErrors.WithLabelValues(r.ln.name, what).Inc()
		if !chdb.Retryable(err) {
			// The same batch would fail the same way forever (a missing
			// column, a type the table does not have): stop, saying what
			// to fix. The offsets stay uncommitted, so nothing is lost.
			return fmt.Errorf("loader lane %s: %s: %w", r.ln.name, what, chdb.Permanent(err))
		}
		r.l.log.Warn("loader retrying", "lane", r.ln.name, "op", what, "attempt", attempt, "backoff", backoff, "err", err)
		jitter := time.Duration(rand.Int64N(int64(backoff) / 2))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff + jitter):
		}
		backoff = min(backoff*2, r.l.cfg.MaxRetryBackoff)
	}
}

// closeBounded closes a lane's client, waiting at most ShutdownTimeout.
// Close leaves the group, and the leave waits for a JoinGroup in flight,
// which the coordinator holds until every member rejoined or its rebalance
// timeout passed (a minute): during a rebalance storm a SIGTERMed loader
// hung there. Offsets are committed by then, so giving up the leave only
// means the partitions move after the session timeout, as after a kill.
func (l *Loader) closeBounded(cl *kgo.Client, lane string) {
	done := make(chan struct{})
	// This goroutine ends when Close returns; if that is after the
	// timeout, the process is exiting and it ends with it.
	go func() {
		cl.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(l.cfg.ShutdownTimeout):
		l.log.Warn("leaving the consumer group timed out; exiting without it (the partitions move after the session timeout)",
			"lane", lane, "timeout", l.cfg.ShutdownTimeout)
	}
}

// membershipLost reports whether a commit failed because this member is no
// longer part of the group's current generation, which only a rejoin cures.
func membershipLost(err error) bool {
	return errors.Is(err, kerr.UnknownMemberID) || errors.Is(err, kerr.IllegalGeneration) ||
		errors.Is(err, kerr.FencedInstanceID) || errors.Is(err, kerr.RebalanceInProgress)
}

// shutdown flushes and commits what the lane holds, bounded by ShutdownTimeout.
func (r *laneRun) shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), r.l.cfg.ShutdownTimeout)
	defer cancel()
	if r.pending == 0 {
		r.commitInserted(ctx)
		return nil
	}
	if err := r.flush(ctx); err != nil {
		return fmt.Errorf("final flush of %d records (they will be redelivered): %w", r.pending, err)
	}
	r.l.log.Info("loader lane drained", "lane", r.ln.name)
	return nil
}

type loaderMetrics struct {
	consumed, inserted, deadLettered *prometheus.CounterVec
	insertErrors                     *prometheus.CounterVec
	batchSeconds, batchRows          *prometheus.HistogramVec
	lag, watermarkAge                *prometheus.GaugeVec
	backfillPaused                   prometheus.Gauge
}

func newLoaderMetrics(reg prometheus.Registerer) *loaderMetrics {
	m := &loaderMetrics{
		consumed:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tideline_loader_records_consumed_total", Help: "Kafka records consumed, by lane."}, []string{"lane"}),
		inserted:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tideline_loader_rows_inserted_total", Help: "Event rows ClickHouse acknowledged, by lane."}, []string{"lane"}),
		deadLettered:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tideline_loader_dead_letters_total", Help: "Records sent to the dead-letter table, by lane."}, []string{"lane"}),
		insertErrors:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tideline_loader_errors_total", Help: "Failed flush steps (retried unless permanent), by lane and step."}, []string{"lane", "op"}),
		batchSeconds:   prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "tideline_loader_batch_duration_seconds", Help: "Time to insert and commit one batch.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 15)}, []string{"lane"}),
		batchRows:      prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "tideline_loader_batch_records", Help: "Records per flushed batch.", Buckets: prometheus.ExponentialBuckets(1, 4, 10)}, []string{"lane"}),
		lag:            prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "tideline_loader_consumer_lag_records", Help: "Records not yet committed, by lane and partition."}, []string{"lane", "partition"}),
		watermarkAge:   prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "tideline_loader_watermark_age_seconds", Help: "How far the lane's event-time watermark is behind now."}, []string{"lane"}),
		backfillPaused: prometheus.NewGauge(prometheus.GaugeOpts{Name: "tideline_loader_backfill_paused", Help: "1 while the backfill lane yields to live lanes."}),
	}
	if reg != nil {
		reg.MustRegister(m.consumed, m.inserted, m.deadLettered, m.insertErrors, m.batchSeconds, m.batchRows, m.lag, m.watermarkAge, m.backfillPaused)
	}
	return m
}
