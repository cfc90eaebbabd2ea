package backfill_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tideline-dev/tideline/backfill"
	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
	"github.com/tideline-dev/tideline/internal/workload"
	"github.com/tideline-dev/tideline/pipeline"
)

// produced is one event the test wrote to Kafka, where it landed.
type produced struct {
	ev        *ingest.Event
	lane      string
	topic     string
	partition int32
	offset    int64
}

func (p produced) key() backfillPos { return backfillPos{p.topic, p.partition, p.offset} }

type backfillPos struct {
	topic     string
	partition int32
	offset    int64
}

// env is a test deployment: a database, a broker, a producer standing in
// for the collector, and loaders that can be stopped per lane.
type env struct {
	t       *testing.T
	conn    *chdb.Conn
	br      testenv.Broker
	prod    *kgo.Client
	gen     *workload.Generator
	events  []produced
	loaders map[string]*runningLoader
	cfg     backfill.Config
	derived *derived
}

type runningLoader struct {
	cancel context.CancelFunc
	done   chan error
}

func newEnv(t *testing.T, br testenv.Broker, simStart time.Time, step time.Duration) *env {
	t.Helper()
	conn := testenv.ClickHouse(t)
	prod, err := kgo.NewClient(append(broker.ClientOpts(br.Seeds, nil), kgo.ProducerLinger(time.Millisecond))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	cfg := backfill.DefaultConfig()
	cfg.PollInterval = 100 * time.Millisecond
	cfg.CheckpointInterval = 100 * time.Millisecond
	cfg.Heartbeat = 500 * time.Millisecond
	cfg.StaleAfter = 5 * time.Second
	cfg.LoadTimeout = 2 * time.Minute
	cfg.LateAfter = time.Second
	// Small buckets exercise the partial-bucket path on small windows.
	cfg.BucketSize = 1024
	e := &env{t: t, conn: conn, br: br, prod: prod, loaders: map[string]*runningLoader{}, cfg: cfg,
		gen: workload.New(workload.Config{Customers: 300, Seed: 42, Start: simStart, Step: step})}
	t.Cleanup(func() {
		for name := range e.loaders {
			e.stopLoader(name)
		}
	})
	return e
}

// env is what the harness's components share, as pipeline assembles them.
func (e *env) env() pipeline.Env {
	return pipeline.Env{Conn: e.conn, Kafka: e.br.Config, Seeds: e.br.Seeds, Log: testenv.Logger(e.t)}
}

// startLoader runs a loader for lanes under name.
func (e *env) startLoader(name string, lanes ...string) {
	e.t.Helper()
	cfg := ingest.DefaultLoaderConfig()
	cfg.Lanes = lanes
	cfg.MetricsAddr = ""
	cfg.FlushInterval = 50 * time.Millisecond
	cfg.WatermarkInterval = 200 * time.Millisecond
	l, err := pipeline.NewLoader(cfg, e.env())
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rl := &runningLoader{cancel: cancel, done: make(chan error, 1)}
	go func() { rl.done <- l.Run(ctx) }()
	e.loaders[name] = rl
}

func (e *env) stopLoader(name string) {
	rl := e.loaders[name]
	if rl == nil {
		return
	}
	rl.cancel()
	if err := <-rl.done; err != nil {
		e.t.Errorf("loader %s: %v", name, err)
	}
	delete(e.loaders, name)
}

// produce writes n generated events the way the collector does: normalised,
// keyed by customer, stamped with the time they were received (now), while
// their event times follow the generator's simulated clock.
func (e *env) produce(n int) []produced {
	e.t.Helper()
	var recs []*kgo.Record
	var out []produced
	for i := 0; i < n; i++ {
		m := e.gen.Next()
		raw, _ := json.Marshal(m.Body)
		ev, err := ingest.ParseMessage(raw, "", time.Time{}, time.Now(), m.Lane)
		if err != nil {
			e.t.Fatalf("generated event rejected: %v", err)
		}
		v, _ := json.Marshal(ev)
		topic := e.br.Config.MustTopic(m.Lane)
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(ev.CustomerID()), Value: v, Timestamp: ev.ReceivedAt})
		out = append(out, produced{ev: ev, lane: m.Lane, topic: topic})
	}
	e.produceAll(recs, out)
	e.events = append(e.events, out...)
	return out
}

// produceAll produces recs and sets out[i]'s partition and offset to
// those recs[i] got.
func (e *env) produceAll(recs []*kgo.Record, out []produced) {
	e.t.Helper()
	res := e.prod.ProduceSync(context.Background(), recs...)
	if err := res.FirstErr(); err != nil {
		e.t.Fatal(err)
	}
	// Results arrive in completion order, not in the order given.
	idx := map[*kgo.Record]int{}
	for i, r := range recs {
		idx[r] = i
	}
	for _, r := range res {
		i := idx[r.Record]
		out[i].partition, out[i].offset = r.Record.Partition, r.Record.Offset
	}
}

func (e *env) queryUint(q string, args ...any) uint64 {
	e.t.Helper()
	var n uint64
	if err := e.conn.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
	return n
}

// eventually is testenv.Eventually with the harness's generous deadline.
func (e *env) eventually(what string, cond func() (bool, string)) {
	e.t.Helper()
	testenv.Eventually(e.t, 2*time.Minute, what, cond)
}

// waitPositions waits until ClickHouse holds n distinct positions.
func (e *env) waitPositions(n int) {
	e.t.Helper()
	e.eventually(fmt.Sprintf("%d positions loaded", n), func() (bool, string) {
		got := e.queryUint("SELECT uniqExact(kafka_topic, kafka_partition, kafka_offset) FROM event_positions")
		return got == uint64(n), fmt.Sprintf("%d", got)
	})
}

// skipCommitted simulates a loader that committed records it never
// inserted: the lane's group jumps ahead to offset in each partition.
func (e *env) skipCommitted(lane string, to map[int32]int64) {
	e.t.Helper()
	cl, err := kgo.NewClient(broker.ClientOpts(e.br.Seeds, nil)...)
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	topic := e.br.Config.MustTopic(lane)
	offs := kadm.Offsets{}
	for p, o := range to {
		offs.Add(kadm.Offset{Topic: topic, Partition: p, At: o, LeaderEpoch: -1})
	}
	group := e.br.Config.TopicPrefix + e.cfg.LoaderGroup + "." + lane
	resp, err := adm.CommitOffsets(context.Background(), group, offs)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		e.t.Fatalf("move group %s: %v", group, err)
	}
}

// deleteRows loses rows from ClickHouse: it deletes them from events and
// their positions from event_positions (mutations on 18.16) and waits.
func (e *env) deleteRows(where string, args ...any) {
	e.t.Helper()
	if err := ingest.DeleteLoaded(context.Background(), e.conn, where, args...); err != nil {
		e.t.Fatal(err)
	}
}

// row is an events row without the columns that record how it was loaded.
type row struct {
	MessageID, Type, CustomerID, UserID, AnonymousID, Event, Properties, Traits string
	EventTimeMs, SentAtMs, ReceivedAtMs                                         uint64
	Source, Topic                                                               string
	Partition                                                                   int32
	Offset                                                                      int64
}

// expectedRows is what the loader should have written for the events.
func expectedRows(evs []produced) []row {
	var b ingest.EventRows
	for _, p := range evs {
		b.Add(p.ev, p.lane, p.topic, p.partition, p.offset)
	}
	out := make([]row, b.Len())
	for i := range out {
		out[i] = row{b.MessageID[i], b.Type[i], b.CustomerID[i], b.UserID[i], b.AnonymousID[i], b.Event[i], b.Properties[i], b.Traits[i],
			b.EventTimeMs[i], b.SentAtMs[i], b.ReceivedAtMs[i], b.Source[i], b.Topic[i], b.Partition[i], b.Offset[i]}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].MessageID < out[j].MessageID })
	return out
}

// tableRows reads events, one row per message.
func (e *env) tableRows() []row {
	e.t.Helper()
	rows, err := e.conn.Query(context.Background(), `SELECT message_id, type, customer_id, user_id, anonymous_id, event, properties, traits,
		event_time_ms, sent_at_ms, received_at_ms, source, kafka_topic, kafka_partition, kafka_offset FROM events FINAL ORDER BY message_id`)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.MessageID, &r.Type, &r.CustomerID, &r.UserID, &r.AnonymousID, &r.Event, &r.Properties, &r.Traits,
			&r.EventTimeMs, &r.SentAtMs, &r.ReceivedAtMs, &r.Source, &r.Topic, &r.Partition, &r.Offset); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// assertAllEvents checks that ClickHouse holds every produced event once,
// with the values produced.
func (e *env) assertAllEvents() {
	e.t.Helper()
	want := expectedRows(e.events)
	got := e.tableRows()
	if len(got) != len(want) {
		e.t.Fatalf("events table has %d messages, %d were produced", len(got), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			e.t.Fatalf("message %s differs:\n got %+v\nwant %+v", want[i].MessageID, got[i], want[i])
		}
	}
}

// missingOracle groups positions by topic and partition into ranges.
func missingOracle(ps []produced) map[string]map[int32]backfill.Ranges {
	offs := map[string]map[int32][]int64{}
	for _, p := range ps {
		if offs[p.topic] == nil {
			offs[p.topic] = map[int32][]int64{}
		}
		offs[p.topic][p.partition] = append(offs[p.topic][p.partition], p.offset)
	}
	out := map[string]map[int32]backfill.Ranges{}
	for t, m := range offs {
		out[t] = map[int32]backfill.Ranges{}
		for p, o := range m {
			out[t][p] = backfill.RangesOf(o)
		}
	}
	return out
}
