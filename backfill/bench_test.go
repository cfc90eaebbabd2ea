package backfill_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tideline-dev/tideline/backfill"
	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/component"
	"github.com/tideline-dev/tideline/internal/testenv"
	"github.com/tideline-dev/tideline/materialize"
)

// benchEvents is the window size of the benchmarks: TIDELINE_BENCH_EVENTS
// (default 1 000 000).
func benchEvents(b *testing.B) int {
	n := 1_000_000
	if s := os.Getenv("TIDELINE_BENCH_EVENTS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil {
			b.Fatalf("TIDELINE_BENCH_EVENTS: %v", err)
		}
		n = v
	}
	return n
}

// benchBroker is Apache Kafka when TIDELINE_TEST_KAFKA is set (a window of
// millions of records is what a real broker holds), else the embedded one.
func benchBroker(b *testing.B) testenv.Broker {
	if os.Getenv(testenv.EnvKafka) != "" {
		return testenv.Kafka(b)
	}
	return testenv.Embedded(b)
}

// seeded is a window of n events in Kafka, loaded into ClickHouse but for
// every missingEvery-th record, which is left out.
type seeded struct {
	conn     *chdb.Conn
	br       testenv.Broker
	from, to time.Time
	missing  int
}

// seed produces n events to the web and server lanes and inserts their
// rows into ClickHouse directly (the loader's columnar insert, without the
// loader), with ingest times a few seconds after receipt, but two hours for
// the server lane's middle third. Unless keepViews, the derived-state views
// are dropped first: the benchmark then measures the comparison alone.
func seed(b *testing.B, n, missingEvery int, keepViews bool) *seeded {
	b.Helper()
	ctx := context.Background()
	s := &seeded{conn: testenv.ClickHouse(b), br: benchBroker(b)}
	if keepViews {
		plan, err := materialize.LoadPlan(materialize.DefaultConfig())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := materialize.Apply(ctx, s.conn, plan, 0, testenv.Logger(b)); err != nil {
			b.Fatal(err)
		}
	}
	rows, err := s.conn.Query(ctx, "SELECT name FROM system.tables WHERE database = ? AND engine = 'MaterializedView' AND ? = 0", s.conn.Database, keepViews)
	if err != nil {
		b.Fatal(err)
	}
	var views []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			b.Fatal(err)
		}
		views = append(views, v)
	}
	rows.Close()
	for _, v := range views {
		if err := s.conn.Exec(ctx, "DROP TABLE "+v); err != nil {
			b.Fatal(err)
		}
	}
	prod, err := kgo.NewClient(append(broker.ClientOpts(s.br.Seeds, nil),
		kgo.ProducerLinger(20*time.Millisecond), kgo.ProducerBatchMaxBytes(4<<20), kgo.MaxBufferedRecords(500_000))...)
	if err != nil {
		b.Fatal(err)
	}
	defer prod.Close()
	start := time.Now()
	s.from = time.Now()
	const chunk = 200_000
	base := time.Now().Add(-6 * time.Hour)
	for done := 0; done < n; done += chunk {
		m := min(chunk, n-done)
		recs := make([]*kgo.Record, m)
		evs := make([]*ingest.Event, m)
		lanes := make([]string, m)
		now := time.Now()
		for i := range recs {
			k := done + i
			lane := "web"
			if k%5 < 2 {
				lane = "server"
			}
			ev := &ingest.Event{MessageID: fmt.Sprintf("b-%d", k), Type: ingest.TypeTrack, UserID: fmt.Sprintf("user-%06d", k%100_000),
				Event: "purchase", Properties: json.RawMessage(`{"amount":12.5}`), Timestamp: base.Add(time.Duration(k) * time.Millisecond), ReceivedAt: now, Source: lane}
			v, _ := json.Marshal(ev)
			recs[i] = &kgo.Record{Topic: s.br.Config.MustTopic(lane), Key: []byte(ev.CustomerID()), Value: v, Timestamp: now}
			evs[i], lanes[i] = ev, lane
		}
		res := prod.ProduceSync(ctx, recs...)
		if err := res.FirstErr(); err != nil {
			b.Fatal(err)
		}
		// The server lane's middle third is loaded two hours late.
		var onTime, late ingest.EventRows
		for i, r := range recs {
			k := done + i
			if k%missingEvery == 0 {
				s.missing++
				continue
			}
			if lanes[i] == "server" && k >= n/3 && k < 2*n/3 {
				late.Add(evs[i], lanes[i], r.Topic, r.Partition, r.Offset)
			} else {
				onTime.Add(evs[i], lanes[i], r.Topic, r.Partition, r.Offset)
			}
		}
		for _, x := range []struct {
			rows  *ingest.EventRows
			delay time.Duration
		}{{&onTime, 3 * time.Second}, {&late, 2 * time.Hour}} {
			if x.rows.Len() == 0 {
				continue
			}
			if err := x.rows.Insert(ctx, s.conn, uint64(now.Add(x.delay).UnixMilli())); err != nil {
				b.Fatal(err)
			}
		}
	}
	time.Sleep(5 * time.Millisecond)
	s.to = time.Now()
	b.Logf("seeded %d events (%d left out) in %s on %s", n, s.missing, time.Since(start).Round(time.Second), s.br.Name)
	return s
}

// BenchmarkPlan times a plan of a window of TIDELINE_BENCH_EVENTS events:
// the offsets-for-times and bucketed ClickHouse comparison, the exact
// missing ranges, the lateness distributions and the missing records'
// customers (no replay or campaigns: see the report for those).
func BenchmarkPlan(b *testing.B) {
	n := benchEvents(b)
	s := seed(b, n, 1000, false)
	cfg := backfill.DefaultConfig()
	p := &backfill.Planner{Cfg: cfg, Conn: s.conn, Kafka: s.br.Config, Source: &backfill.KafkaSource{Seeds: s.br.Seeds}, Log: testenv.Logger(b)}
	benchPlans(b, p, s, func(plan *backfill.Plan) {
		inWindow, _, missing, _, _, _ := plan.Totals()
		if inWindow != int64(n) || missing != int64(s.missing) {
			b.Fatalf("plan: %d in window, %d missing; want %d, %d", inWindow, missing, n, s.missing)
		}
	})
	b.ReportMetric(float64(n), "events")
}

// benchPlans plans s's window b.N times with p, reporting the seconds a
// plan takes and checking each plan with check.
func benchPlans(b *testing.B, p *backfill.Planner, s *seeded, check func(*backfill.Plan)) {
	b.Helper()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		plan, err := p.Plan(context.Background(), backfill.PlanRequest{Window: backfill.Window{From: s.from, To: s.to}})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "s/plan")
		check(plan)
	}
}

// BenchmarkPlanReplay is BenchmarkPlan with the derived-state replay: the
// repo's audiences maintained by their views while the window is seeded,
// and every customer of the window replayed in a scratch database.
func BenchmarkPlanReplay(b *testing.B) {
	n := benchEvents(b)
	s := seed(b, n, 1000, true)
	mcfg := materialize.DefaultConfig()
	// The live evaluator's position: the replay evaluates as of it.
	batch, err := s.conn.PrepareBatch(context.Background(), "INSERT INTO evaluator_state (evaluator, touch_cursor, as_of_ms, audiences_signature, updated_at_ms)")
	if err != nil {
		b.Fatal(err)
	}
	if err := batch.Append(mcfg.EvaluatorID, time.Now(), uint64(s.to.UnixMilli()), "", chdb.NowMs()); err != nil {
		b.Fatal(err)
	}
	if err := batch.Send(); err != nil {
		b.Fatal(err)
	}
	ch := testenv.ClickHouseConfig(b)
	replay := &backfill.Replay{Conn: s.conn, CH: ch, Materialize: mcfg, Timeout: time.Hour, Log: testenv.Logger(b)}
	defer replay.Close()
	cfg := backfill.DefaultConfig()
	if r := os.Getenv("TIDELINE_BENCH_REPLAY"); r != "" {
		cfg.Replay = r
	}
	p := &backfill.Planner{Cfg: cfg, Conn: s.conn, Kafka: s.br.Config, Source: &backfill.KafkaSource{Seeds: s.br.Seeds}, State: replay, Log: testenv.Logger(b)}
	benchPlans(b, p, s, func(plan *backfill.Plan) {
		b.ReportMetric(float64(plan.Stale.Derived.Checked), "customers")
	})
	b.ReportMetric(float64(n), "events")
}

// produceOnly writes n server-lane events to Kafka without loading them.
func produceOnly(b *testing.B, br testenv.Broker, n int, tag string) {
	b.Helper()
	ctx := context.Background()
	prod, err := kgo.NewClient(append(broker.ClientOpts(br.Seeds, nil),
		kgo.ProducerLinger(20*time.Millisecond), kgo.ProducerBatchMaxBytes(4<<20), kgo.MaxBufferedRecords(500_000))...)
	if err != nil {
		b.Fatal(err)
	}
	defer prod.Close()
	const chunk = 200_000
	base := time.Now().Add(-6 * time.Hour)
	for done := 0; done < n; done += chunk {
		m := min(chunk, n-done)
		recs := make([]*kgo.Record, m)
		now := time.Now()
		for i := range recs {
			k := done + i
			ev := &ingest.Event{MessageID: fmt.Sprintf("%s-%d", tag, k), Type: ingest.TypeTrack, UserID: fmt.Sprintf("user-%06d", k%100_000),
				Event: "purchase", Properties: json.RawMessage(`{"amount":12.5,"sku":"A-1","currency":"USD"}`), Timestamp: base.Add(time.Duration(k) * time.Millisecond), ReceivedAt: now, Source: "server"}
			v, _ := json.Marshal(ev)
			recs[i] = &kgo.Record{Topic: br.Config.MustTopic("server"), Key: []byte(ev.CustomerID()), Value: v, Timestamp: now}
		}
		if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReingest compares apply's re-ingest rate with the live
// loader's: the loader first drains a backlog of TIDELINE_BENCH_REINGEST
// server events (default 1 000 000); then as many again are produced and
// skipped by the loader's group (a lost batch), and apply restores them
// through the backfill lane, with the same loader configuration loading it.
func BenchmarkReingest(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("TIDELINE_BENCH_REINGEST"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil {
			b.Fatal(err)
		}
		n = v
	}
	ctx := context.Background()
	conn, br := testenv.ClickHouse(b), benchBroker(b)
	cfg := backfill.DefaultConfig()
	cfg.PollInterval = 100 * time.Millisecond
	count := func() uint64 {
		var c uint64
		if err := conn.QueryRow(ctx, "SELECT uniqExact(kafka_topic, kafka_partition, kafka_offset) FROM event_positions").Scan(&c); err != nil {
			b.Fatal(err)
		}
		return c
	}
	startLoader := func() (stop func()) {
		lc := ingest.DefaultLoaderConfig()
		lc.Lanes, lc.MetricsAddr = []string{"web", "server", "backfill"}, ""
		l, err := ingest.NewLoader(lc, component.Env{Conn: conn, Kafka: br.Config, Seeds: br.Seeds, Log: testenv.Logger(b)})
		if err != nil {
			b.Fatal(err)
		}
		lctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- l.Run(lctx) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				b.Error(err)
			}
		}
	}

	// The live loader draining a backlog, timed from its first insert (so
	// joining the consumer group does not count) to its last.
	produceOnly(b, br, n, "live")
	stop := startLoader()
	var first uint64
	for first = count(); first == 0; first = count() {
		time.Sleep(20 * time.Millisecond)
	}
	start := time.Now()
	for count() < uint64(n) {
		time.Sleep(20 * time.Millisecond)
	}
	live := time.Since(start)
	liveRate := float64(uint64(n)-first) / live.Seconds()
	stop()

	// A lost batch of as many records: the group skips them.
	from := time.Now()
	time.Sleep(5 * time.Millisecond)
	produceOnly(b, br, n, "lost")
	time.Sleep(5 * time.Millisecond)
	to := time.Now()
	topic := br.Config.MustTopic("server")
	cl, err := kgo.NewClient(broker.ClientOpts(br.Seeds, nil)...)
	if err != nil {
		b.Fatal(err)
	}
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		b.Fatal(err)
	}
	offs := kadm.Offsets{}
	for p, o := range ends[topic] {
		offs.Add(kadm.Offset{Topic: topic, Partition: p, At: o.Offset, LeaderEpoch: -1})
	}
	if _, err := adm.CommitOffsets(ctx, br.Config.TopicPrefix+cfg.LoaderGroup+".server", offs); err != nil {
		b.Fatal(err)
	}
	cl.Close()
	stop = startLoader()
	defer stop()
	plan, err := (&backfill.Planner{Cfg: cfg, Conn: conn, Kafka: br.Config, Source: &backfill.KafkaSource{Seeds: br.Seeds}}).
		Plan(ctx, backfill.PlanRequest{Window: backfill.Window{From: from, To: to}})
	if err != nil {
		b.Fatal(err)
	}
	if _, _, missing, _, _, _ := plan.Totals(); missing != int64(n) {
		b.Fatalf("plan finds %d missing, want %d", missing, n)
	}
	b.ResetTimer()
	start = time.Now()
	res, err := (&backfill.Applier{Cfg: cfg, Conn: conn, Kafka: br.Config, Seeds: br.Seeds, Source: &backfill.KafkaSource{Seeds: br.Seeds}, Yes: true}).Apply(ctx, plan)
	if err != nil {
		b.Fatal(err)
	}
	took := time.Since(start)
	if res.Restored != int64(n) {
		b.Fatalf("apply restored %d of %d", res.Restored, n)
	}
	applyRate := float64(n) / took.Seconds()
	b.ReportMetric(liveRate, "live-events/s")
	b.ReportMetric(applyRate, "apply-events/s")
	b.ReportMetric(applyRate/liveRate, "apply/live")
	b.Logf("%d events on %s: the live loader drained %d of them in %s after its first insert; apply re-ingested, loaded and verified all in %s", n, br.Name, uint64(n)-first, live.Round(time.Millisecond), took.Round(time.Millisecond))
}
