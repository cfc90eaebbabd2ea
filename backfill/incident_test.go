package backfill_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tideline-dev/tideline/backfill"
	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/testenv"
	"github.com/tideline-dev/tideline/trigger"
)

// incident replays the status page's incident on a test deployment: a steady
// mixed workload, the server lane's loader stopped for a simulated
// multi-hour stretch of event time while web continues, a batch the loader
// committed without inserting (lost before anything was derived from it),
// then the loader resumes and a share of server rows is deleted after the
// fact. It returns the window of the outage (Kafka record time) and the
// events missing from ClickHouse in it.
type incident struct {
	from, to        time.Time
	before, during  []produced
	after           []produced
	missingInWindow []produced
}

func replayIncident(t *testing.T, e *env) *incident {
	t.Helper()
	inc := &incident{}
	e.startLoader("live", "web", "backfill")
	e.startLoader("server", "server")
	inc.before = e.produce(1500)
	e.waitPositions(len(inc.before))

	// The outage: the server lane's loader stops; events keep arriving.
	// Real-time campaigns stop too: the poller is down.
	e.stopLoader("server")
	if e.derived != nil {
		e.stopPoller()
	}
	serverTopic := e.br.Config.MustTopic("server")
	ends := e.endOffsets(serverTopic)
	time.Sleep(5 * time.Millisecond)
	inc.from = time.Now()
	time.Sleep(5 * time.Millisecond)
	inc.during = e.produce(3000)
	// A batch the loader committed but never inserted: the first 15 records
	// of each server partition in the outage are lost before ClickHouse saw them.
	skip := map[int32]int64{}
	for p, o := range ends {
		skip[p] = o + 15
	}
	e.skipCommitted("server", skip)
	for _, p := range inc.during {
		if p.topic == serverTopic && p.offset < skip[p.partition] {
			inc.missingInWindow = append(inc.missingInWindow, p)
		}
	}
	var web int
	for _, p := range inc.before {
		if p.lane == "web" {
			web++
		}
	}
	for _, p := range inc.during {
		if p.lane == "web" {
			web++
		}
	}
	e.eventually("web lane keeps loading during the outage", func() (bool, string) {
		n := e.queryUint("SELECT uniqExact(kafka_partition, kafka_offset) FROM event_positions WHERE kafka_topic = ?", e.br.Config.MustTopic("web"))
		return n == uint64(web), ""
	})
	// Every server event of the outage waits at least this long.
	time.Sleep(2 * time.Second)
	inc.to = time.Now()
	time.Sleep(5 * time.Millisecond)

	e.startLoader("server", "server")
	e.waitPositions(len(e.events) - len(inc.missingInWindow))
	if e.derived != nil {
		// The poller comes back only once the backlog is loaded and
		// derived, without its positions, starting at the latest rows:
		// every qualification of the outage is missed.
		e.evaluatorCaughtUp()
		if err := trigger.ResetCursors(context.Background(), e.conn); err != nil {
			t.Fatal(err)
		}
		time.Sleep(e.pollerConfig("").Overlap + 100*time.Millisecond)
		e.startPoller("latest")
	}
	inc.after = e.produce(1000)
	e.waitPositions(len(e.events) - len(inc.missingInWindow))

	// Loss after the fact: every server row of the window at an offset ≡ 3
	// (mod 7) is deleted.
	e.deleteRows("kafka_topic = ? AND kafka_offset % 7 = 3 AND received_at_ms >= ? AND received_at_ms < ?", serverTopic, uint64(inc.from.UnixMilli()), uint64(inc.to.UnixMilli()))
	for _, p := range inc.during {
		if p.topic == serverTopic && p.offset%7 == 3 && p.offset >= skip[p.partition] {
			inc.missingInWindow = append(inc.missingInWindow, p)
		}
	}
	return inc
}

func (e *env) endOffsets(topic string) map[int32]int64 {
	e.t.Helper()
	cl, err := kgo.NewClient(broker.ClientOpts(e.br.Seeds, nil)...)
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	l, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), topic)
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[int32]int64{}
	for p, o := range l[topic] {
		out[p] = o.Offset
	}
	return out
}

func (e *env) planner() *backfill.Planner {
	p := &backfill.Planner{Cfg: e.cfg, Conn: e.conn, Kafka: e.br.Config, Source: &backfill.KafkaSource{Seeds: e.br.Seeds}, Log: testenv.Logger(e.t)}
	if e.derived != nil {
		p.State, p.Qualifier = e.replay(), e.qualifier()
	}
	return p
}

func (e *env) applier() *backfill.Applier {
	a := &backfill.Applier{Cfg: e.cfg, Conn: e.conn, Kafka: e.br.Config, Seeds: e.br.Seeds, Source: &backfill.KafkaSource{Seeds: e.br.Seeds}, Log: testenv.Logger(e.t), Yes: true}
	if e.derived != nil {
		a.State, a.Qualifier = e.replay(), e.qualifier()
	}
	return a
}

// steps records the progress a plan reports.
type steps struct {
	mu   sync.Mutex
	seen []string
}

type stepBar struct {
	s          *steps
	name       string
	total, got int64
}

func (s *steps) Phase(name, _ string, total int64) backfill.Bar {
	return &stepBar{s: s, name: name, total: total}
}
func (b *stepBar) Set(done int64) { b.got = done }
func (b *stepBar) Note(string)    {}
func (b *stepBar) Done() {
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	b.s.seen = append(b.s.seen, fmt.Sprintf("%s %d/%d", b.name, b.got, b.total))
}

func (e *env) plan(w backfill.Window) *backfill.Plan {
	e.t.Helper()
	pl := e.planner()
	rec := &steps{}
	pl.Progress = rec
	p, err := pl.Plan(context.Background(), backfill.PlanRequest{Window: w, Command: e.t.Name()})
	if err != nil {
		e.t.Fatal(err)
	}
	// A plan shows its steps as they end: every lane's offsets, the three
	// lateness queries, the missing events, then (with state and
	// campaigns) the replay and the campaigns.
	want := []string{fmt.Sprintf("offsets %d/%d", len(e.cfg.Lanes), len(e.cfg.Lanes)), "lateness 3/3"}
	if len(rec.seen) < 3 || rec.seen[0] != want[0] || rec.seen[1] != want[1] || !strings.HasPrefix(rec.seen[2], "missing ") ||
		e.derived != nil && (len(rec.seen) != 5 || !strings.HasPrefix(rec.seen[3], "replay") || !strings.HasPrefix(rec.seen[4], "campaigns")) {
		e.t.Errorf("plan progress steps %v, want %v, missing, and replay and campaigns with derived state", rec.seen, want)
	}
	return p
}

func TestIncidentReplay(t *testing.T) {
	for _, br := range testenv.Brokers(t) {
		t.Run(br.Name, func(t *testing.T) {
			simStart := time.Now().Add(-8 * time.Hour).Truncate(time.Minute)
			e := newEnv(t, br, simStart, 8*time.Hour/5500)
			e.withDerived()
			e.startEvaluator()
			e.startPoller("earliest")
			inc := replayIncident(t, e)
			ctx := context.Background()
			w := backfill.Window{From: inc.from, To: inc.to}
			serverTopic := br.Config.MustTopic("server")

			// Freeze evaluation so the plan and the oracle compare the same state.
			e.evaluatorCaughtUp()
			e.stopEvaluator()
			oracle := staleCustomers(readState(t, e.conn), e.control(e.asOf()))
			if len(oracle) == 0 {
				t.Fatal("the incident left no customer stale; the test proves nothing")
			}

			plan := e.plan(w)
			want := missingOracle(inc.missingInWindow)
			if got := plan.MissingRanges(); !reflect.DeepEqual(got, want) {
				t.Fatalf("plan's missing ranges:\n got %v\nwant %v", got, want)
			}
			var serverDuring, webDuring int64
			for _, p := range inc.during {
				if p.topic == serverTopic {
					serverDuring++
				} else {
					webDuring++
				}
			}
			lanes := map[string]backfill.LaneFinding{}
			for _, lf := range plan.LaneFindings {
				lanes[lf.Lane] = lf
			}
			missing := int64(len(inc.missingInWindow))
			if s := lanes["server"]; s.InWindow != serverDuring || s.Missing != missing || s.Loaded != serverDuring-missing || s.Backlog != 0 {
				t.Fatalf("server lane: %+v; want %d in window, %d missing", s, serverDuring, missing)
			}
			if wl := lanes["web"]; wl.InWindow != webDuring || wl.Missing != 0 {
				t.Fatalf("web lane: %+v; want %d in window, none missing", wl, webDuring)
			}
			// The stopped lane's events all waited at least the 2 s pause.
			if s := lanes["server"]; s.Late < s.Loaded || s.Lag.P50 < 2000 {
				t.Fatalf("server lane: %d of %d loaded events late, p50 %d ms; every one waited 2 s", s.Late, s.Loaded, s.Lag.P50)
			}
			custs := map[string]bool{}
			for _, p := range inc.missingInWindow {
				custs[p.ev.CustomerID()] = true
			}
			if plan.Stale.MissingCustomers != int64(len(custs)) {
				t.Fatalf("plan finds %d customers with missing events, want %d", plan.Stale.MissingCustomers, len(custs))
			}
			if got := plan.StaleCustomers(); !reflect.DeepEqual(got, oracle) {
				t.Fatalf("plan's stale customers:\n got %v\nwant %v", got, oracle)
			}
			if !plan.Qualifications.Checked || len(plan.Qualifications.Pending) == 0 {
				t.Fatalf("plan finds no unledgered qualification, but the poller missed the outage: %+v", plan.Qualifications.Campaigns)
			}

			res, err := e.applier().Apply(ctx, plan)
			if err != nil {
				t.Fatal(err)
			}
			if res.Reingested != missing || res.Restored != missing || res.Run.State != backfill.StateCompleted || res.StillDiffer != 0 {
				t.Fatalf("apply: %+v; want %d re-ingested and restored, state converged", res, missing)
			}
			if n := e.queryUint("SELECT uniqExact(kafka_topic, kafka_partition, kafka_offset) FROM event_positions WHERE lane = 'backfill'"); n != uint64(missing) {
				t.Fatalf("%d positions loaded through the backfill lane, want %d", n, missing)
			}
			after, oracleState := readState(t, e.conn), e.control(e.asOf())
			if left := staleCustomers(after, oracleState); len(left) != 0 {
				t.Fatalf("after apply, %d customers still differ from the oracle: %v\n%s", len(left), left, stateDiff(after, oracleState, 20))
			}
			entries := e.assertLedger(e.windowQualifications(inc.from, inc.to))
			var backfilled int
			for _, en := range entries {
				if en.Origin == trigger.OriginBackfill {
					backfilled++
				}
			}
			if backfilled == 0 || res.Decided["fire"]+res.Decided["fire_late"]+res.Decided["skip"] != int64(backfilled) {
				t.Fatalf("apply decided %v; the ledger holds %d backfill entries for the window", res.Decided, backfilled)
			}
			e.assertDelivered()

			// The same plan again changes nothing and says so.
			again, err := e.applier().Apply(ctx, plan)
			if err != nil || !again.Noop || again.Reingested != 0 {
				t.Fatalf("second apply: %+v, %v", again, err)
			}
			if p := e.plan(w); len(p.MissingRanges()) != 0 || len(p.StaleCustomers()) != 0 || len(p.Qualifications.Pending) != 0 {
				t.Fatalf("plan after apply finds work: missing %v, stale %v, pending %d", p.MissingRanges(), p.StaleCustomers(), len(p.Qualifications.Pending))
			}

			// Loss before the window: a plan of the window does not see it,
			// one reaching back finds exactly it.
			var before []produced
			for _, p := range inc.before {
				if p.topic == serverTopic && p.offset%7 == 3 {
					before = append(before, p)
				}
			}
			e.deleteRows("kafka_topic = ? AND kafka_offset % 7 = 3 AND received_at_ms < ?", serverTopic, uint64(inc.from.UnixMilli()))
			if p := e.plan(w); len(p.MissingRanges()) != 0 {
				t.Fatalf("window plan sees rows deleted before the window: %v", p.MissingRanges())
			}
			wide := e.plan(backfill.Window{From: simStart.Add(-time.Hour), To: inc.to})
			if got, want := wide.MissingRanges(), missingOracle(before); !reflect.DeepEqual(got, want) {
				t.Fatalf("wide plan:\n got %v\nwant %v", got, want)
			}
			if _, err := e.applier().Apply(ctx, wide); err != nil {
				t.Fatal(err)
			}
			e.assertAllEvents()

			runs, err := backfill.ListRuns(ctx, e.conn, backfill.KindApply, 10)
			if err != nil {
				t.Fatal(err)
			}
			states := map[string]int{}
			for _, r := range runs {
				states[r.State]++
			}
			if states[backfill.StateCompleted] != 2 || states[backfill.StateNoop] != 1 {
				t.Fatalf("backfill_runs: %v", states)
			}
		})
	}
}

// assertDelivered waits until every fire in the ledger is delivered and
// checks the receiver saw each exactly once, under its ledger key.
func (e *env) assertDelivered() {
	e.t.Helper()
	e.eventually("every fire delivered", func() (bool, string) {
		n := e.queryUint(`SELECT count() FROM (SELECT ledger_key, argMax(decision, updated_at_ms) AS d, argMax(delivery_state, updated_at_ms) AS s
			FROM send_ledger GROUP BY ledger_key) WHERE d IN ('fire', 'fire_late') AND s != 'delivered'`)
		return n == 0, fmt.Sprintf("%d open", n)
	})
	fires := map[string]bool{}
	rows, err := e.conn.Query(context.Background(), `SELECT ledger_key FROM send_ledger GROUP BY ledger_key HAVING argMax(decision, updated_at_ms) IN ('fire', 'fire_late')`)
	if err != nil {
		e.t.Fatal(err)
	}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			e.t.Fatal(err)
		}
		fires[k] = true
	}
	rows.Close()
	got := e.derived.hook.Deliveries()
	for k := range fires {
		if len(got[k]) != 1 {
			e.t.Fatalf("fire %s was delivered %d times", k, len(got[k]))
		}
	}
	for k := range got {
		if !fires[k] {
			e.t.Fatalf("webhook %s received with no fire in the ledger", k)
		}
	}
}
