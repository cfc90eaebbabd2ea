package trigger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"sort"
	"sync"
	"time"

	"github.com/tideline-dev/tideline/internal/shares"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/component"
	"github.com/tideline-dev/tideline/materialize"
)

// Poller reads qualifications past its durable cursors, decides them,
// records the decisions in the send ledger and delivers the fires. See the
// package documentation for how the ledger stays unique.
type Poller struct {
	cfg     Config
	conn    *chdb.Conn
	bc      broker.Config
	seeds   []string
	log     *slog.Logger
	all     []*Campaign
	active  []*Campaign
	byID    map[string]*Campaign
	routes  map[string]*route
	rec     *Recorder
	ledger  *Ledger
	own     *shares.Ownership
	m       *metrics
	c       counters
	readers []*feedReader
	names   map[*feed][]string
	pending map[string]*waiting

	disp  *Dispatcher
	kafka *kgo.Client
	supp  *recentSuppressions
	// nextRelease is the earliest release time of a deferred fire the last
	// open scan saw (0: none): the next scan runs then, not a scan interval later.
	nextRelease uint64
	lastSave    time.Time
	lastScan    time.Time
}

// waiting is a qualification held until the watermark passes its due time.
type waiting struct {
	q    Qualification
	feed *feed
	pos  uint64
	due  uint64
}

// NewPoller prepares a poller for the campaigns (inactive ones are
// recorded in the campaigns table but not run). env's seed brokers are
// needed for sharding "group" and for campaigns delivering to a topic; its
// registry may be nil.
func NewPoller(cfg Config, campaigns []*Campaign, env component.Env) (*Poller, error) {
	conn, bc, seeds, log := env.Conn, env.Kafka, env.Seeds, env.Logger()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(campaigns) == 0 {
		return nil, fmt.Errorf("%w: give the poller at least one campaign", ErrNoCampaigns)
	}
	p := &Poller{
		cfg: cfg, conn: conn, bc: bc, seeds: seeds, log: log, all: campaigns,
		byID: map[string]*Campaign{}, names: map[*feed][]string{}, pending: map[string]*waiting{},
		ledger: NewLedger(conn), own: shares.New(cfg.Shards, "trigger shards"), m: newMetrics(env.Registry),
	}
	needKafka := cfg.Sharding == "group"
	for _, c := range campaigns {
		if !c.Active {
			continue
		}
		p.active = append(p.active, c)
		p.byID[c.ID] = c
		if c.Deliver.KafkaTopic != "" {
			needKafka = true
		}
	}
	if needKafka && len(seeds) == 0 {
		return nil, errors.New("the poller needs Kafka (sharding group, or a campaign with kafka_topic): configure kafka.brokers, or set trigger.sharding to none and remove kafka_topic")
	}
	routes, err := buildRoutes(p.active, cfg, os.Getenv)
	if err != nil {
		return nil, err
	}
	p.routes = routes
	p.rec = &Recorder{Ledger: p.ledger, Conn: conn, Attributes: NewAttributeSource(conn, log), Origin: OriginPoller}
	for _, f := range []*feed{transitionFeed, eventFeed} {
		names := p.feedNames(f)
		if len(names) == 0 {
			continue
		}
		p.names[f] = names
		p.readers = append(p.readers, &feedReader{f: f, read: map[string]uint64{}})
	}
	return p, nil
}

// feedNames lists the audience ids or event names the active campaigns read.
func (p *Poller) feedNames(f *feed) []string {
	set := map[string]bool{}
	for _, c := range p.active {
		switch {
		case f == transitionFeed && c.Trigger.Kind != TriggerEvent:
			set[c.Trigger.Audience] = true
		case f == eventFeed && c.Trigger.Kind == TriggerEvent:
			set[c.Trigger.Event.Name] = true
		}
	}
	return keys(set)
}

// Stats returns what the poller did since it started.
func (p *Poller) Stats() Stats { return p.c.stats() }

// Run polls until ctx ends, then saves its positions, lets in-flight
// deliveries finish (bounded by ShutdownTimeout) and leaves the group. A ctx
// that ends while the poller is still starting is a shutdown, not an error.
func (p *Poller) Run(ctx context.Context) error {
	err := p.run(ctx)
	if err != nil && ctx.Err() != nil {
		p.log.Info("trigger poller stopped while starting", "err", err)
		return nil
	}
	return err
}

func (p *Poller) run(ctx context.Context) error {
	if err := ApplyCampaigns(ctx, p.conn, p.all); err != nil {
		return err
	}
	p.warnMissingAudiences(ctx)
	if err := p.startKafka(ctx); err != nil {
		return err
	}
	defer func() {
		if p.kafka != nil {
			p.kafka.Close()
		}
	}()
	p.own.OnRevoke = func(ctx context.Context, shards []int32) {
		if err := p.saveCursors(ctx, shards); err != nil {
			p.log.Warn("save positions of revoked shards", "err", err)
		}
		p.dropPending(shards)
	}
	switch p.cfg.Sharding {
	case "none":
		p.own.OwnAll()
	default:
		if err := p.own.Join(ctx, p.cfg.Config, p.seeds, p.bc, p.log); err != nil {
			return err
		}
	}
	defer p.own.Close()
	p.disp = newDispatcher(p.cfg, p.conn, p.routes, p.kafka, p.bc.TopicPrefix, p.m, &p.c, p.log)
	p.disp.owns = p.own.OwnsCustomer
	p.supp = &recentSuppressions{sinceMs: sub(chdb.NowMs(), ms(suppressionSlack)), m: map[string]*Suppression{}}
	p.disp.suppressed = p.supp.get
	if err := p.disp.loadDisabled(ctx); err != nil {
		return err
	}
	// Delivery workers get their own context: on shutdown they finish what
	// is in flight after polling stopped.
	dctx, stopWorkers := context.WithCancel(context.WithoutCancel(ctx))
	p.disp.start(dctx)
	p.log.Info("trigger poller started", "campaigns", len(p.active), "sharding", p.cfg.Sharding, "shards", p.cfg.Shards)

	var fatal error
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	// Dropping old feed partitions needs no shard, so it keeps its own
	// schedule outside the ownership lock: a rebalance never waits for it.
	// It stops with ctx, and run returns after it.
	if p.cfg.FeedRetention > 0 {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.keepFeedsPruned(ctx)
		}()
		defer wg.Wait()
	}

	failures := 0
	for ctx.Err() == nil {
		start := time.Now()
		more, err := p.cycle(ctx)
		p.m.pollSeconds.Observe(time.Since(start).Seconds())
		wait := p.cfg.PollInterval
		switch {
		case err != nil && ctx.Err() == nil && !chdb.Retryable(err):
			// A missing table or column fails every cycle the same way:
			// stop, after the same orderly shutdown as on SIGTERM.
			fatal = fmt.Errorf("trigger poller: %w", chdb.Permanent(err))
			stop()
		case err != nil && ctx.Err() == nil:
			failures++
			p.m.pollErrors.Inc()
			wait = min(p.cfg.PollInterval<<min(failures, 6), 5*time.Second)
			p.log.Warn("poll failed; retrying", "attempt", failures, "backoff", wait, "err", err)
		case err == nil:
			failures = 0
			if more {
				wait = 0
			}
		}
		if wait > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), p.cfg.ShutdownTimeout)
	defer cancel()
	p.own.Lock()
	if err := p.saveCursors(sctx, p.own.List()); err != nil {
		p.log.Warn("save positions at shutdown", "err", err)
	}
	p.own.Unlock()
	p.disp.drain(sctx)
	stopWorkers()
	p.disp.wait()
	s := p.Stats()
	p.log.Info("trigger poller stopped", "fired", s.Fired, "late", s.Late, "skipped", s.Skipped, "delivered", s.Delivered, "failed", s.Failed)
	return fatal
}

func (p *Poller) startKafka(ctx context.Context) error {
	var topics []string
	seen := map[string]bool{}
	for _, c := range p.active {
		if t := c.Deliver.KafkaTopic; t != "" && !seen[t] {
			seen[t] = true
			topics = append(topics, p.bc.TopicPrefix+t)
		}
	}
	if len(topics) == 0 {
		return nil
	}
	opts := append(broker.ClientOpts(p.seeds, p.log),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(time.Millisecond),
		kgo.RecordDeliveryTimeout(p.cfg.WebhookTimeout),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("kafka producer for campaign fires: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := kadm.NewClient(cl).CreateTopics(cctx, p.bc.Partitions, p.bc.ReplicationFactor, nil, topics...)
	if err != nil {
		cl.Close()
		return fmt.Errorf("create fire topics %v (is the broker up?): %w", topics, err)
	}
	for _, r := range resp.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			cl.Close()
			return fmt.Errorf("create fire topic %s: %w", r.Topic, r.Err)
		}
	}
	p.kafka = cl
	return nil
}

// cycle is one poll: read each feed past its position, decide, record,
// hand the fires to the dispatcher. It holds the ownership lock throughout.
// It reports whether a feed had more rows than one batch.
func (p *Poller) cycle(ctx context.Context) (bool, error) {
	p.own.Lock()
	defer p.own.Unlock()
	owned := p.own.List()
	p.m.shards.Set(float64(len(owned)))
	if len(owned) == 0 {
		return false, nil
	}
	if gained := p.own.TakeGained(); len(gained) > 0 {
		if err := p.takeOver(ctx, gained); err != nil {
			p.own.Regain(gained)
			return false, err
		}
	}
	if err := p.supp.refresh(ctx, p.conn); err != nil {
		return false, err
	}
	start := time.Now()
	now := chdb.NowMs()
	shard, shardArgs := shardFilter(p.cfg.Shards, owned)
	type readerBatch struct {
		r *feedReader
		b *feedBatch
	}
	var (
		batches []readerBatch
		qs      []Qualification
		origin  = map[string]*waiting{}
		more    bool
	)
	for _, r := range p.readers {
		b, err := r.poll(ctx, p.conn, p.names[r.f], shard, shardArgs, p.cfg.BatchSize, p.cfg.Overlap, now)
		if err != nil {
			return false, err
		}
		batches = append(batches, readerBatch{r, b})
		more = more || b.full
		for _, row := range b.rows {
			for _, q := range Match(p.active, row.occurrence()) {
				qs = append(qs, q)
				origin[q.Key()] = &waiting{q: q, feed: r.f, pos: row.pos}
			}
		}
	}
	var wm uint64
	if p.needsWatermark() {
		var err error
		if wm, err = p.watermark(ctx); err != nil {
			return false, err
		}
		for k, w := range p.pending {
			if wm >= w.due {
				if _, again := origin[k]; !again {
					qs = append(qs, w.q)
					origin[k] = w
				}
			}
		}
	}
	read := time.Since(start)
	res, err := p.rec.Record(ctx, p.byID, qs, wm)
	if err != nil {
		return false, err
	}
	if len(qs) > 0 {
		defer func() {
			p.log.Debug("poll", "qualifications", len(qs), "new", len(res.New), "took_ms", time.Since(start).Milliseconds(),
				"read_ms", read.Milliseconds(), "decide_ms", res.Decide.Milliseconds(), "write_ms", res.Write.Milliseconds())
		}()
	}
	for _, rb := range batches {
		rb.r.commit(rb.b, p.cfg.Overlap)
	}
	for _, q := range res.Waiting {
		if _, held := p.pending[q.Key()]; !held {
			o := origin[q.Key()]
			p.pending[q.Key()] = &waiting{q: q, feed: o.feed, pos: o.pos, due: DueMs(p.byID[q.CampaignID], q)}
		}
	}
	for _, n := range res.New {
		delete(p.pending, n.Entry.Key)
		p.c.decided(n.Decision)
		p.m.decisions.WithLabelValues(n.Q.CampaignID, string(n.Decision.Action), n.Decision.Reason).Inc()
		if n.Entry.DeliveryState == StateDeferred && (p.nextRelease == 0 || n.Entry.ReleaseAtMs < p.nextRelease) {
			p.nextRelease = n.Entry.ReleaseAtMs
		}
		if n.Decision.Action.Fires() && n.Entry.DeliveryState == StatePending {
			// A full queue leaves the entry open in the ledger for the next
			// scan; a deferred one waits there for its release time.
			p.disp.enqueue(n.Entry, n.Body, nil, false)
		}
	}
	var reopen []*Entry
	for _, n := range res.Reused {
		delete(p.pending, n.Entry.Key)
		p.c.reused.Add(1)
		if n.Entry.Open() && !p.disp.tracking(n.Entry.Key) {
			reopen = append(reopen, n.Entry)
		}
	}
	if err := p.deliverOpen(ctx, reopen); err != nil {
		return more, err
	}
	p.c.wai.Store(int64(len(p.pending)))
	p.m.waiting.Set(float64(len(p.pending)))
	if time.Since(p.lastSave) >= p.cfg.CursorInterval {
		if err := p.saveCursors(ctx, owned); err != nil {
			p.log.Warn("save positions", "err", err)
		} else {
			p.lastSave = time.Now()
		}
	}
	for _, r := range p.readers {
		p.m.cursorAge.WithLabelValues(r.f.id).Set(float64(sub(chdb.NowMs(), p.effectivePos(r))) / 1000)
	}
	if time.Since(p.lastScan) >= p.cfg.OpenScanInterval || (p.nextRelease > 0 && chdb.NowMs() >= p.nextRelease) {
		if err := p.scanOpen(ctx, owned); err != nil {
			p.log.Warn("scan open deliveries", "err", err)
		} else {
			p.lastScan = time.Now()
			p.disp.forget(2 * p.cfg.OpenScanInterval)
		}
	}
	return more, nil
}

func (p *Poller) needsWatermark() bool {
	for _, c := range p.active {
		if c.Trigger.Unless != nil {
			return true
		}
	}
	return false
}

// watermark is the lowest watermark of the configured lanes, 0 while one
// has none, holding every negative decision.
func (p *Poller) watermark(ctx context.Context) (uint64, error) {
	wm, _, err := materialize.Watermark(ctx, p.conn, p.cfg.WatermarkLanes)
	return wm, err
}

// takeOver prepares newly owned shards: wait for the ledger inserts a
// previous owner may still have running, rewind the readers to the
// shards' saved positions (less the overlap), and scan their open
// deliveries at once.
func (p *Poller) takeOver(ctx context.Context, gained []int32) error {
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := p.ledger.WaitForInserts(wctx)
	cancel()
	if err != nil && ctx.Err() == nil {
		p.log.Warn("waiting for a previous owner's ledger inserts", "err", err)
	}
	cursors, err := loadCursors(ctx, p.conn)
	if err != nil {
		return err
	}
	for _, r := range p.readers {
		start := uint64(0)
		first := true
		for _, s := range gained {
			pos, ok := cursors[r.f.id][s]
			if !ok {
				if p.cfg.StartFrom == "latest" {
					pos = chdb.NowMs()
				} else {
					pos = 0
				}
			}
			if first || pos < start {
				start, first = pos, false
			}
		}
		r.rewind(sub(start, ms(p.cfg.Overlap)))
		// Rows already read belong to the shards owned before; the next
		// overlap check compares against ClickHouse again.
		r.read = map[string]uint64{}
	}
	p.lastScan = time.Time{}
	p.log.Info("took over trigger shards", "shards", gained)
	return nil
}

// durable is the position of a reader that is safe to save: every row
// before it is recorded, except the ones still waiting.
func (p *Poller) durable(r *feedReader) uint64 {
	if r.next == nil {
		return 0
	}
	pos := r.pos()
	for _, w := range p.pending {
		if w.feed == r.f && w.pos < pos {
			pos = w.pos
		}
	}
	return pos
}

// effectivePos is how far a feed is decided, for the cursor age: the
// position of the last row read, or the time of the last poll when that poll
// reached the end of the feed, held back by qualifications still waiting.
func (p *Poller) effectivePos(r *feedReader) uint64 {
	pos := max(r.pos(), r.caughtUpMs)
	for _, w := range p.pending {
		if w.feed == r.f && w.pos < pos {
			pos = w.pos
		}
	}
	return pos
}

func (p *Poller) saveCursors(ctx context.Context, shards []int32) error {
	if len(shards) == 0 || len(p.readers) == 0 {
		return nil
	}
	batch, err := p.conn.PrepareBatch(ctx, qInsertCursors)
	if err != nil {
		return fmt.Errorf("prepare cursor insert: %w", err)
	}
	now := chdb.NowMs()
	n := 0
	for _, r := range p.readers {
		if r.next == nil {
			continue
		}
		pos := p.durable(r)
		for _, s := range shards {
			if err := batch.Append(r.f.id, uint32(s), pos, now); err != nil {
				_ = batch.Abort()
				return fmt.Errorf("append cursor: %w", err)
			}
			n++
		}
	}
	if n == 0 {
		_ = batch.Abort()
		return nil
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("save %d positions: %w", n, err)
	}
	return nil
}

// loadCursors reads every saved position, by feed and shard.
func loadCursors(ctx context.Context, conn *chdb.Conn) (map[string]map[int32]uint64, error) {
	cs, err := ReadCursors(ctx, conn)
	if err != nil {
		return nil, err
	}
	return CursorPositions(cs), nil
}

func (p *Poller) dropPending(shards []int32) {
	gone := map[int32]bool{}
	for _, s := range shards {
		gone[s] = true
	}
	for k, w := range p.pending {
		if gone[shares.Of(w.q.CustomerID, p.cfg.Shards)] {
			delete(p.pending, k)
		}
	}
}

// scanOpen hands the dispatcher every open fire of the owned shards it is
// not already delivering: after a restart or a takeover, after a queue
// overflow, and the entries the backfill recorded.
func (p *Poller) scanOpen(ctx context.Context, owned []int32) error {
	since := sub(chdb.NowMs(), ms(p.cfg.OpenScanWindow))
	p.nextRelease = 0
	var afterMs uint64
	var afterKey string
	for {
		entries, err := p.ledger.Open(ctx, since, p.cfg.Shards, owned, afterMs, afterKey, p.cfg.BatchSize)
		if err != nil {
			return err
		}
		var untracked, deferred []*Entry
		for _, e := range entries {
			if !p.disp.tracking(e.Key) && p.byID[e.CampaignID] != nil {
				untracked = append(untracked, e)
				if e.DeliveryState == StateDeferred {
					deferred = append(deferred, e)
				}
			}
		}
		if err := p.ledger.Controls(ctx, deferred); err != nil {
			return err
		}
		// A deferred fire is released once its quiet period has ended; the
		// ledger row its delivery writes ends its deferral, so whichever
		// poller owns the customer sends it once (under its one webhook id).
		// No more is offered than the queues take: the rest of a large
		// release waits in the ledger for the next scan.
		now := chdb.NowMs()
		room := map[string]int{}
		var due []*Entry
		for _, e := range untracked {
			if e.DeliveryState == StateDeferred && e.ReleaseAtMs > now {
				if p.nextRelease == 0 || e.ReleaseAtMs < p.nextRelease {
					p.nextRelease = e.ReleaseAtMs
				}
				continue
			}
			if _, ok := room[e.CampaignID]; !ok {
				room[e.CampaignID] = p.disp.room(e.CampaignID)
			}
			if room[e.CampaignID] > 0 {
				room[e.CampaignID]--
				due = append(due, e)
			}
		}
		if err := p.deliverOpen(ctx, due); err != nil {
			return err
		}
		if len(entries) < p.cfg.BatchSize {
			return nil
		}
		last := entries[len(entries)-1]
		afterMs, afterKey = last.DetectedAtMs, last.Key
	}
}

// deliverOpen loads the stored payloads of open entries and enqueues them.
// An entry whose payload is missing (written by a tool that stored none)
// gets one built now and stored, before it is sent.
func (p *Poller) deliverOpen(ctx context.Context, entries []*Entry) error {
	entries, err := p.suppressAtSend(ctx, entries)
	if err != nil || len(entries) == 0 {
		return err
	}
	ks := make([]string, len(entries))
	for i, e := range entries {
		ks[i] = e.Key
	}
	bodies, err := p.ledger.Payloads(ctx, ks)
	if err != nil {
		return err
	}
	var missing []*Entry
	for _, e := range entries {
		if _, ok := bodies[e.Key]; !ok {
			missing = append(missing, e)
		}
	}
	if len(missing) > 0 {
		built, err := p.rebuildPayloads(ctx, missing)
		if err != nil {
			return err
		}
		for k, b := range built {
			bodies[k] = b
		}
	}
	for _, e := range entries {
		if b, ok := bodies[e.Key]; ok {
			p.disp.enqueue(e, b, nil, false)
		}
	}
	return nil
}

func (p *Poller) rebuildPayloads(ctx context.Context, entries []*Entry) (map[string][]byte, error) {
	ids := map[string]bool{}
	for _, e := range entries {
		ids[e.CustomerID] = true
	}
	attrs, err := p.rec.Attributes.Attributes(ctx, keys(ids))
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	var ps []Payload
	for _, e := range entries {
		c := p.byID[e.CampaignID]
		if c == nil {
			continue
		}
		q := Qualification{CampaignID: e.CampaignID, CustomerID: e.CustomerID, AudienceID: e.AudienceID, Episode: e.Episode,
			Lane: e.Lane, EventTimeMs: e.QualifiedEventTimeMs, IngestTimeMs: e.QualifiedIngestTimeMs, DerivedAtMs: e.DerivedAtMs}
		if c.Trigger.Kind == TriggerEvent {
			q.MessageID, q.Event = e.Episode, c.Trigger.Event.Name
		}
		d := Decision{Action: Action(e.Decision), Reason: e.Reason, LagMs: sub(e.DetectedAtMs, DueMs(c, q))}
		b, err := buildBody(c, q, e, d, attrs[e.CustomerID])
		if err != nil {
			return nil, err
		}
		out[e.Key] = b
		ps = append(ps, Payload{Key: e.Key, CampaignID: e.CampaignID, Body: b})
	}
	if err := p.ledger.InsertPayloads(ctx, ps, chdb.NowMs()); err != nil {
		return nil, err
	}
	return out, nil
}

var partitionRe = regexp.MustCompile(`^[0-9]{8}$`)

// pruneEvery is how often old feed partitions are dropped.
const pruneEvery = time.Hour

// keepFeedsPruned prunes the feeds now and every pruneEvery until ctx is done.
func (p *Poller) keepFeedsPruned(ctx context.Context) {
	t := time.NewTicker(pruneEvery)
	defer t.Stop()
	for {
		if err := p.pruneFeeds(ctx); err != nil && ctx.Err() == nil {
			p.log.Warn("drop old feed partitions", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pruneFeeds drops daily feed partitions older than the retention and than
// every saved position (of all pollers).
func (p *Poller) pruneFeeds(ctx context.Context) error {
	cursors, err := loadCursors(ctx, p.conn)
	if err != nil {
		return err
	}
	low := chdb.NowMs()
	for _, byShard := range cursors {
		for _, pos := range byShard {
			low = min(low, pos)
		}
	}
	cut := time.UnixMilli(int64(sub(low, ms(p.cfg.FeedRetention)))).UTC().Format("20060102")
	for _, table := range []string{transitionFeed.table, eventFeed.table} {
		parts, err := p.conn.Strings(ctx, qFeedPartitions, table)
		if err != nil {
			return fmt.Errorf("list partitions of %s: %w", table, err)
		}
		sort.Strings(parts)
		for _, part := range parts {
			// A partition id is a day written by ClickHouse itself; it
			// is checked to be exactly eight digits before use.
			if !partitionRe.MatchString(part) || part >= cut {
				continue
			}
			if err := p.conn.AlterStorage(ctx, table, "DROP PARTITION "+part); err != nil {
				return fmt.Errorf("drop partition %s of %s: %w", part, table, err)
			}
			p.log.Info("dropped old feed partition", "table", table, "partition", part)
		}
	}
	return nil
}

func (p *Poller) warnMissingAudiences(ctx context.Context) {
	var want []string
	for _, c := range p.active {
		if c.Trigger.Kind != TriggerEvent {
			want = append(want, c.Trigger.Audience)
		}
	}
	if len(want) == 0 {
		return
	}
	applied, err := materialize.ListApplied(ctx, p.conn)
	if err != nil {
		return
	}
	have := map[string]bool{}
	for _, a := range applied {
		have[a.ID] = true
	}
	for _, id := range want {
		if !have[id] {
			p.log.Warn("a campaign names an audience that is not applied (yet): it fires once the audience exists", "audience", id)
		}
	}
}
