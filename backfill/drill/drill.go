// Package drill reproduces the incident of the status page on a local,
// throw-away deployment so an operator can rehearse the recovery: a steady
// workload on both lanes, the server lane's loader stopped while events keep
// arriving (the audiences the web lane alone feeds keep qualifying and their
// campaigns keep firing; the others wait for the server lane; then the
// poller is lost too), a batch lost before ClickHouse saw it, the loader and
// a poller with reset positions brought back, and a share of the outage's
// rows deleted after the fact. It then keeps the pipeline running and prints
// the backfill commands to run against it.
package drill

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/workload"
	"github.com/tideline-dev/tideline/materialize"
	tsql "github.com/tideline-dev/tideline/sql"
	"github.com/tideline-dev/tideline/trigger"
	"github.com/tideline-dev/tideline/trigger/receiver"
)

// Config shapes a drill.
type Config struct {
	ClickHouse  chdb.Config
	Kafka       broker.Config
	Loader      ingest.LoaderConfig
	Materialize materialize.Config
	Trigger     trigger.Config
	// Events is the number of events produced (default 20000), over
	// Customers customers (default 2000), their event times spread over the
	// Hours before now (default 6h) while they arrive in seconds.
	Events, Customers int
	Hours             time.Duration
	// Outage is how long (wall clock) the server lane's loader stays
	// stopped after the outage's events were produced (default 10s): every
	// one of them is loaded at least this late.
	Outage time.Duration
	// Lost is the number of records per server partition the stopped
	// loader "committed without inserting" (default 25).
	Lost int
	// DeleteEvery deletes every n-th server row of the outage after the
	// fact (default 7; 0 deletes none).
	DeleteEvery int
	Seed        uint64
	Out         io.Writer
	Log         *slog.Logger
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{Events: 20000, Customers: 2000, Hours: 6 * time.Hour, Outage: 10 * time.Second, Lost: 25, DeleteEvery: 7, Seed: 7}
}

// The drill adds an audience the web lane alone feeds, and a campaign on
// it, to show what the stall does not stop. Its budget spans the workload's
// hours of event time, which the drill plays in seconds.
const (
	webOnlyAudience = `id: drill_browsers
name: Browsed twice in 6 hours (web lane only)
when: {performed: page_view, at_least: 2, within: 6h}
`
	webOnlyCampaign = `id: drill_browse_nudge
name: Still browsing? (drill)
trigger: {audience_entered: drill_browsers}
staleness: {budget: 24h, late: skip}
reeligible_after: 0
deliver:
  webhook: {url: http://127.0.0.1/, secret_env: DRILL_BROWSE_SECRET}
`
)

// Report is what the drill did.
type Report struct {
	// WebOnlyFires counts the fires of the web-only campaign decided while
	// the server lane was stalled; Held is, per audience the server lane
	// feeds, the time it was complete to when the poller was lost.
	WebOnlyFires int
	Held         map[string]time.Time
	// From and To bound the outage in Kafka record time.
	From, To time.Time
	// Produced counts the events; Lost and Deleted the server records that
	// never reached ClickHouse or were removed from it.
	Produced, Lost, Deleted int
	// Receiver counts the webhooks the local receiver got.
	Receiver *receiver.Receiver
}

type stack struct {
	cfg       Config
	conn      *chdb.Conn
	seeds     []string
	prod      *kgo.Client
	gen       *workload.Generator
	campaigns []*trigger.Campaign
	mu        sync.Mutex
	running   map[string]*bg
	loaders   map[string]*ingest.Loader
}

type bg struct {
	cancel context.CancelFunc
	done   chan error
}

func (s *stack) start(name string, fn func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	b := &bg{cancel: cancel, done: make(chan error, 1)}
	go func() { b.done <- fn(ctx) }()
	s.mu.Lock()
	s.running[name] = b
	s.mu.Unlock()
}

func (s *stack) stop(name string) error {
	s.mu.Lock()
	b := s.running[name]
	delete(s.running, name)
	s.mu.Unlock()
	if b == nil {
		return nil
	}
	b.cancel()
	return <-b.done
}

// stopAll stops what runs in the order data flows: the loaders (each
// inserting and committing the batch in hand), then the evaluator, then the
// poller, so no downstream part stops while an upstream one still feeds it.
func (s *stack) stopAll() {
	s.drain()
	rank := map[string]int{"evaluator": 1, "poller": 2}
	s.mu.Lock()
	names := make([]string, 0, len(s.running))
	for n := range s.running {
		names = append(names, n)
	}
	s.mu.Unlock()
	sort.Slice(names, func(i, j int) bool { return rank[names[i]] < rank[names[j]] })
	for _, n := range names {
		if err := s.stop(n); err != nil {
			s.cfg.Log.Warn("stopping "+n, "err", err)
		}
	}
}

// Run prepares the deployment, replays the incident, calls ready with the
// report, and keeps the pipeline running until ctx ends.
func Run(ctx context.Context, cfg Config, ready func(*Report)) error {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	conn, err := chdb.Open(ctx, cfg.ClickHouse, true)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := tsql.Up(ctx, conn, cfg.Log); err != nil {
		return err
	}
	n, err := ingest.CountRows(ctx, conn)
	if err != nil {
		return fmt.Errorf("count events: %w", err)
	}
	if n > 0 {
		return fmt.Errorf("database %s already holds %d events: a drill needs its own database (--clickhouse-database, or drop it: DROP DATABASE %s)", cfg.ClickHouse.Database, n, cfg.ClickHouse.Database)
	}
	seeds, stopBroker, err := broker.Seeds(cfg.Kafka)
	if err != nil {
		return err
	}
	defer stopBroker()
	if err := broker.EnsureTopics(ctx, seeds, cfg.Kafka); err != nil {
		return err
	}
	prod, err := kgo.NewClient(append(broker.ClientOpts(seeds, cfg.Log), kgo.ProducerLinger(2*time.Millisecond))...)
	if err != nil {
		return fmt.Errorf("kafka producer: %w", err)
	}
	defer prod.Close()
	// A short overlap keeps the drill short: the poller that comes back
	// misses what became visible more than twice the overlap before.
	cfg.Trigger.Overlap = min(cfg.Trigger.Overlap, 2*time.Second)
	s := &stack{cfg: cfg, conn: conn, seeds: seeds, prod: prod, running: map[string]*bg{}, loaders: map[string]*ingest.Loader{},
		gen: workload.New(workload.Config{Customers: cfg.Customers, Seed: cfg.Seed, Start: time.Now().Add(-cfg.Hours), Step: cfg.Hours / time.Duration(max(cfg.Events, 1))})}
	defer s.stopAll()

	plan, err := drillPlan(cfg.Materialize)
	if err != nil {
		return err
	}
	if _, err := materialize.Apply(ctx, conn, plan, 0, cfg.Log); err != nil {
		return err
	}
	recv, err := s.campaignsToReceiver(ctx)
	if err != nil {
		return err
	}
	rep := &Report{Receiver: recv}

	s.startLoader("live", "web", "backfill", "dlq")
	s.startLoader("server", "server")
	if err := s.startEvaluator(); err != nil {
		return err
	}
	if err := s.startPoller("earliest"); err != nil {
		return err
	}
	say := func(format string, args ...any) { fmt.Fprintf(cfg.Out, "drill: "+format+"\n", args...) }

	before, during := cfg.Events*3/10, cfg.Events*5/10
	say("steady workload: %d events on the web and server lanes", before)
	if err := s.produce(ctx, before); err != nil {
		return err
	}
	if err := s.waitLoaded(ctx, before, 0); err != nil {
		return err
	}
	// Real time, before the incident: everything is derived and decided.
	if err := s.waitEvaluated(ctx); err != nil {
		return err
	}
	if err := s.waitPoller(ctx); err != nil {
		return err
	}

	say("outage: the server lane's loader stops; %d more events arrive", during)
	if err := s.stop("server"); err != nil {
		return err
	}
	firedBefore, err := s.fires(ctx, "drill_browse_nudge")
	if err != nil {
		return err
	}
	serverTopic := cfg.Kafka.MustTopic("server")
	ends, err := s.endOffsets(ctx, serverTopic)
	if err != nil {
		return err
	}
	time.Sleep(5 * time.Millisecond)
	rep.From = time.Now()
	if err := s.produce(ctx, during); err != nil {
		return err
	}
	// The loader "committed" a batch it never inserted.
	skip := map[int32]int64{}
	endsAfter, err := s.endOffsets(ctx, serverTopic)
	if err != nil {
		return err
	}
	for p, o := range ends {
		skip[p] = min(o+int64(cfg.Lost), endsAfter[p])
		rep.Lost += int(skip[p] - o)
	}
	if err := s.commit(ctx, "server", skip); err != nil {
		return err
	}
	// Only what the stalled lane feeds waits: the web lane's audience and
	// campaign carry on.
	if err := s.waitCommitted(ctx, "live"); err != nil {
		return err
	}
	if err := s.waitEvaluated(ctx); err != nil {
		return err
	}
	if err := s.waitPoller(ctx); err != nil {
		return err
	}
	if err := s.waitDecided(ctx, "drill_browsers", "drill_browse_nudge"); err != nil {
		return err
	}
	firedAfter, err := s.fires(ctx, "drill_browse_nudge")
	if err != nil {
		return err
	}
	rep.WebOnlyFires = firedAfter - firedBefore
	if rep.Held, err = s.held(ctx); err != nil {
		return err
	}
	say("while the server lane is stalled, the web-only campaign drill_browse_nudge fired %d times", rep.WebOnlyFires)
	for _, id := range slices.Sorted(maps.Keys(rep.Held)) {
		say("  %s waits for the server lane: complete to %s", id, rep.Held[id].UTC().Format(time.TimeOnly))
	}
	say("the campaign poller stops too")
	if err := s.stop("poller"); err != nil {
		return err
	}
	say("%d server records lost before ClickHouse saw them; waiting %s with the lane stopped", rep.Lost, cfg.Outage)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(cfg.Outage):
	}
	rep.To = time.Now()

	say("recovery: the loader resumes and works off its backlog")
	s.startLoader("server", "server")
	if err := s.waitLoaded(ctx, before+during, rep.Lost); err != nil {
		return err
	}
	if err := s.waitEvaluated(ctx); err != nil {
		return err
	}
	say("the poller comes back without its positions and starts at the latest rows")
	if err := trigger.ResetCursors(ctx, conn); err != nil {
		return err
	}
	// A poller looks back twice its overlap (its rewind, then its overlap
	// check): what became visible before that is missed.
	time.Sleep(2*s.cfg.Trigger.Overlap + 500*time.Millisecond)
	if err := s.startPoller("latest"); err != nil {
		return err
	}
	after := cfg.Events - before - during
	if err := s.produce(ctx, after); err != nil {
		return err
	}
	if err := s.waitLoaded(ctx, cfg.Events, rep.Lost); err != nil {
		return err
	}
	rep.Produced = cfg.Events
	if cfg.DeleteEvery > 0 {
		where := "kafka_topic = ? AND kafka_offset % ? = 0 AND received_at_ms >= ? AND received_at_ms < ?"
		args := []any{serverTopic, uint64(cfg.DeleteEvery), uint64(rep.From.UnixMilli()), uint64(rep.To.UnixMilli())}
		deleted, err := ingest.LoadedPositions(ctx, conn, where, args...)
		if err != nil {
			return fmt.Errorf("count rows to delete: %w", err)
		}
		if err := ingest.DeleteLoaded(ctx, conn, where, args...); err != nil {
			return err
		}
		rep.Deleted = int(deleted)
		say("after the fact, %d of the outage's server rows are deleted from ClickHouse", rep.Deleted)
	}
	if ready != nil {
		ready(rep)
	}
	<-ctx.Done()
	return nil
}

// drillPlan is the configured audiences and the drill's web-only one.
func drillPlan(c materialize.Config) (*materialize.Plan, error) {
	auds, err := materialize.LoadDefinitions(c.AudiencesDir)
	if err != nil {
		return nil, err
	}
	a, err := materialize.ParseAudience("(drill) drill_browsers", []byte(webOnlyAudience))
	if err != nil {
		return nil, err
	}
	plan, err := materialize.LoadPlan(c)
	if err != nil {
		return nil, err
	}
	var settings materialize.AttributeSettings
	for _, m := range plan.Attributes {
		settings.Declared = append(settings.Declared, m.Name)
		if m.SetOnce {
			settings.SetOnce = append(settings.SetOnce, m.Name)
		}
	}
	return materialize.Compile(append(auds, a), settings)
}
