package trigger

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/component"
	"github.com/tideline-dev/tideline/internal/testenv"
	"github.com/tideline-dev/tideline/materialize"
)

// stallAudiences: one fed by the web lane alone (page views), one whose
// negative part only the server lane can falsify (purchases).
const stallAudiences = `
id: active_browsers
when: {performed: page_view, at_least: 3, within: 10m}
---
id: carted_not_bought
when:
  all:
    - {performed: add_to_cart, within: 10m}
    - {not_performed: purchase, within: 10m}
`

// stallDuration is how long the server lane stays stalled;
// TIDELINE_TEST_STALL=3m makes it the several minutes of an incident.
func stallDuration(t *testing.T) time.Duration {
	if s := os.Getenv("TIDELINE_TEST_STALL"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("TIDELINE_TEST_STALL: %v", err)
		}
		return d
	}
	return 30 * time.Second
}

// TestLiveStall is the status page's evening in real time: web and server
// traffic at a steady rate, the server lane's loader stopped for a while
// and resumed. While it is stalled, the audience the web lane alone feeds
// keeps qualifying customers and its campaign keeps firing; nothing the
// stalled lane could falsify is decided early; afterwards the memberships
// and the dates of the transitions equal a replay of every event from
// scratch, and every ledger decision follows its staleness budget measured
// from the true qualification time.
func TestLiveStall(t *testing.T) {
	for _, br := range testenv.Brokers(t) {
		t.Run(br.Name, func(t *testing.T) { runLiveStall(t, br) })
	}
}

type stallRun struct {
	t     *testing.T
	br    testenv.Broker
	conn  *chdb.Conn
	group string
	mu    sync.Mutex
	sent  []*ingest.Event
	stops map[string]func()
}

func runLiveStall(t *testing.T, br testenv.Broker) {
	conn := testenv.ClickHouse(t)
	ctx := context.Background()
	var auds []*materialize.Audience
	for i, doc := range splitDocs(stallAudiences) {
		a, err := materialize.ParseAudience(fmt.Sprintf("stall%d.yaml", i), []byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		auds = append(auds, a)
	}
	plan, err := materialize.Compile(auds, materialize.AttributeSettings{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := materialize.Apply(ctx, conn, plan, 0, testenv.Logger(t)); err != nil {
		t.Fatal(err)
	}
	h := newHook(t)
	t.Setenv("STALL_SECRET", h.Secret.String())
	campaigns := []*Campaign{
		campaign(t, fmt.Sprintf(`
id: browse_nudge
trigger: {audience_entered: active_browsers}
staleness: {budget: 15s, late: skip}
reeligible_after: 0
deliver:
  webhook: {url: %s/browse, secret_env: STALL_SECRET}`, h.URL)),
		campaign(t, fmt.Sprintf(`
id: cart_nudge
trigger: {audience_entered: carted_not_bought}
staleness: {budget: 15s, late: skip}
reeligible_after: 0
deliver:
  webhook: {url: %s/cart, secret_env: STALL_SECRET}`, h.URL)),
	}
	if err := ApplyCampaigns(ctx, conn, campaigns); err != nil {
		t.Fatal(err)
	}

	r := &stallRun{t: t, br: br, conn: conn, group: "loader-" + testenv.Name(t), stops: map[string]func(){}}
	r.startLoader("web")
	r.startLoader("server")
	mc := materialize.DefaultConfig()
	mc.TouchSettle = time.Second
	ev, err := materialize.NewEvaluator(mc, component.Env{Conn: conn, Log: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	r.background("evaluator", ev.Run)
	startPoller(t, testConfig(), campaigns, conn, br.Config, br.Seeds)

	// Steady traffic: page views and carts on the web lane, purchases (a
	// third of carts are bought two seconds later) on the server lane.
	prod, err := kgo.NewClient(broker.ClientOpts(br.Seeds, testenv.Logger(t))...)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	trafficCtx, stopTraffic := context.WithCancel(ctx)
	trafficDone := make(chan struct{})
	go func() {
		defer close(trafficDone)
		r.traffic(trafficCtx, prod)
	}()

	time.Sleep(10 * time.Second)
	stallFrom := time.Now()
	r.stop("server")
	stall := stallDuration(t)
	time.Sleep(stall)
	stallTo := time.Now()
	r.startLoader("server")
	time.Sleep(10 * time.Second)
	stopTraffic()
	<-trafficDone
	end := time.Now()

	// Everything loaded, evaluated and decided.
	r.mu.Lock()
	sent := slices.Clone(r.sent)
	r.mu.Unlock()
	testenv.Eventually(t, 2*time.Minute, "every event loaded", func() (bool, string) {
		n := count(t, conn, "SELECT uniqExact(message_id) FROM events")
		return n == uint64(len(sent)), fmt.Sprintf("%d of %d", n, len(sent))
	})
	testenv.Eventually(t, time.Minute, "the evaluator past the end", func() (bool, string) {
		n := count(t, conn, "SELECT min(complete_ms) FROM audience_completeness FINAL")
		return n > uint64(end.Add(5*time.Second).UnixMilli()), fmt.Sprintf("complete to %d", n)
	})
	time.Sleep(3 * time.Second)

	trs := latestTransitions(t, conn)
	all := allTransitions(t, conn)

	// 1. The web-only audience and its campaign kept going.
	var before, during []float64
	for _, tr := range all {
		if tr.audience != "active_browsers" || tr.kind != "entered" {
			continue
		}
		lat := float64(tr.derivedMs) - float64(tr.eventMs)
		switch at := time.UnixMilli(int64(tr.eventMs)); {
		case at.Before(stallFrom):
			before = append(before, lat)
		case at.Before(stallTo):
			during = append(during, lat)
		}
	}
	if len(before) == 0 || len(during) == 0 {
		t.Fatalf("active_browsers entries: %d before the stall, %d during it; want some of both", len(before), len(during))
	}
	ledger := ledgerState(t, conn)
	fired := 0
	for _, e := range ledger {
		q := time.UnixMilli(int64(e.QualifiedEventTimeMs))
		if e.CampaignID == "browse_nudge" && e.Fires() && q.After(stallFrom) && q.Before(stallTo) {
			fired++
		}
	}
	if fired == 0 {
		t.Errorf("browse_nudge fired nothing for qualifications during the stall")
	}
	t.Logf("%s: %s stall; active_browsers entry latency (derived - qualified): before p50 %s p99 %s (%d), during p50 %s p99 %s (%d); browse_nudge fired %d during the stall",
		br.Name, stall, ms2d(pct(before, 50)), ms2d(pct(before, 99)), len(before), ms2d(pct(during, 50)), ms2d(pct(during, 99)), len(during), fired)

	// 2. Nothing decided early: every entry into carted_not_bought holds on
	// the complete data at the moment it is dated.
	checked := 0
	for _, tr := range all {
		if tr.audience != "carted_not_bought" || tr.kind != "entered" {
			continue
		}
		checked++
		if !cartedNotBought(sent, tr.customer, tr.eventMs) {
			t.Errorf("%s entered carted_not_bought at %s, but the complete data says it had bought (or had no cart) then", tr.customer, time.UnixMilli(int64(tr.eventMs)).UTC())
		}
	}
	if checked == 0 {
		t.Error("no carted_not_bought entry to check: the test proves nothing")
	}
	// And it waited: no entry qualified during the stall was derived before
	// the server lane came back, since a purchase still queued there could
	// refute it.
	for _, tr := range all {
		if tr.audience == "carted_not_bought" && tr.kind == "entered" && tr.eventMs > uint64(stallFrom.UnixMilli()) && tr.derivedMs < uint64(stallTo.UnixMilli()) {
			t.Errorf("%s entered carted_not_bought at %s, derived at %s while the server lane was stalled", tr.customer,
				time.UnixMilli(int64(tr.eventMs)).UTC(), time.UnixMilli(int64(tr.derivedMs)).UTC())
		}
	}

	// 3. The same as a replay from scratch.
	replay := testenv.ClickHouse(t)
	if _, err := materialize.Apply(ctx, replay, plan, 0, testenv.Logger(t)); err != nil {
		t.Fatal(err)
	}
	var rows ingest.EventRows
	for i, e := range sent {
		lane := "web"
		if e.Type == ingest.TypeTrack && e.Event == "purchase" {
			lane = "server"
		}
		rows.Add(e, lane, "events."+lane, 0, int64(i))
	}
	if err := rows.Insert(ctx, replay, chdb.NowMs()); err != nil {
		t.Fatal(err)
	}
	if err := ingest.InsertProgress(ctx, replay, []ingest.Progress{
		{Lane: "web", Topic: "events.web", WatermarkMs: uint64(end.Add(5 * time.Second).UnixMilli())},
		{Lane: "server", Topic: "events.server", WatermarkMs: uint64(end.Add(5 * time.Second).UnixMilli())},
	}, chdb.NowMs()); err != nil {
		t.Fatal(err)
	}
	rev, err := materialize.NewEvaluator(mc, component.Env{Conn: replay, Log: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rev.EvaluateOnce(ctx); err != nil {
		t.Fatal(err)
	}
	want := latestTransitions(t, replay)
	// The replay saw only the final state: compare the customers it has
	// transitions for (members, or exits of members it never saw) with the
	// live run's latest transitions of the same kind.
	mismatch := 0
	for k, w := range want {
		g, ok := trs[k]
		if !ok || g.kind != w.kind || g.eventMs != w.eventMs || g.message != w.message {
			mismatch++
			if mismatch <= 10 {
				t.Errorf("%v: live %+v, replay %+v", k, g, w)
			}
		}
	}
	for k, g := range trs {
		if _, ok := want[k]; !ok && g.kind == "entered" {
			mismatch++
			if mismatch <= 10 {
				t.Errorf("%v: a member in the live run (%+v), not in the replay", k, g)
			}
		}
	}
	if mismatch > 0 {
		t.Errorf("%d of %d latest transitions differ from the replay", mismatch, len(want))
	}

	// 4. Every decision follows the budget from the true qualification time.
	for _, e := range ledger {
		due := e.QualifiedEventTimeMs + 15_000
		fresh := e.DetectedAtMs <= due
		if fresh != (e.Decision == string(Fire)) {
			t.Errorf("ledger %s/%s: %s (%s), qualified %d, detected %d: against a 15s budget", e.CampaignID, e.CustomerID, e.Decision, e.Reason, e.QualifiedEventTimeMs, e.DetectedAtMs)
		}
	}
	t.Logf("%s: %d events, %d transitions, %d ledger entries, replay equal on %d latest transitions", br.Name, len(sent), len(all), len(ledger), len(want))
}

// traffic produces until ctx ends: about 60 web and 15 server events a
// second over 150 customers, stamped now.
func (r *stallRun) traffic(ctx context.Context, prod *kgo.Client) {
	rng := rand.New(rand.NewPCG(7, 7))
	type later struct {
		at time.Time
		ev *ingest.Event
	}
	var queue []later
	seq := 0
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now().UTC()
		var evs []*ingest.Event
		for range 3 {
			seq++
			c := fmt.Sprintf("c%03d", rng.IntN(150))
			ev := &ingest.Event{MessageID: fmt.Sprintf("m%06d", seq), Type: ingest.TypeTrack, UserID: c, Event: "page_view", Timestamp: now, ReceivedAt: now}
			if rng.IntN(6) == 0 {
				ev.Event = "add_to_cart"
				if rng.IntN(3) == 0 {
					seq++
					queue = append(queue, later{now.Add(2 * time.Second), &ingest.Event{MessageID: fmt.Sprintf("m%06d", seq), Type: ingest.TypeTrack, UserID: c, Event: "purchase"}})
				}
			}
			evs = append(evs, ev)
		}
		for len(queue) > 0 && !queue[0].at.After(now) {
			ev := queue[0].ev
			ev.Timestamp, ev.ReceivedAt = now, now
			evs = append(evs, ev)
			queue = queue[1:]
		}
		var recs []*kgo.Record
		for _, ev := range evs {
			ev.Properties = json.RawMessage(`{}`)
			lane := "web"
			if ev.Event == "purchase" {
				lane = "server"
			}
			v, err := json.Marshal(ev)
			if err != nil {
				r.t.Error(err)
				return
			}
			recs = append(recs, &kgo.Record{Topic: r.br.Config.MustTopic(lane), Key: []byte(ev.UserID), Value: v, Timestamp: now})
		}
		if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			if ctx.Err() == nil {
				r.t.Errorf("produce: %v", err)
			}
			return
		}
		r.mu.Lock()
		r.sent = append(r.sent, evs...)
		r.mu.Unlock()
	}
}

func (r *stallRun) startLoader(lane string) {
	lc := ingest.DefaultLoaderConfig()
	lc.FlushInterval = 50 * time.Millisecond
	lc.WatermarkInterval = 200 * time.Millisecond
	lc.Group = r.group
	lc.Lanes = []string{lane}
	if lane == "server" {
		// The grace covers records stamped as received but still being
		// produced (loader.watermark_grace): on a busy test machine a
		// produce can take longer than the 2 s default, and a purchase
		// then arrives behind a watermark that already passed it. The
		// server lane carries what can refute carted_not_bought.
		lc.WatermarkGrace = 10 * time.Second
	}
	l, err := ingest.NewLoader(lc, component.Env{Conn: r.conn, Kafka: r.br.Config, Seeds: r.br.Seeds, Log: testenv.Logger(r.t)})
	if err != nil {
		r.t.Fatal(err)
	}
	r.background(lane, l.Run)
}

// background runs fn until stop(name) or the end of the test.
func (r *stallRun) background(name string, fn func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				r.t.Errorf("%s: %v", name, err)
			}
		})
	}
	r.stops[name] = stop
	r.t.Cleanup(stop)
}

func (r *stallRun) stop(name string) { r.stops[name]() }

// cartedNotBought evaluates carted_not_bought on every event sent: an
// add_to_cart and no purchase in (at - 10m, at].
func cartedNotBought(sent []*ingest.Event, customer string, at uint64) bool {
	const window = uint64(10 * time.Minute / time.Millisecond)
	carted, bought := false, false
	for _, e := range sent {
		t := uint64(e.Timestamp.UnixMilli())
		if e.UserID != customer || t > at || t+window <= at {
			continue
		}
		carted = carted || e.Event == "add_to_cart"
		bought = bought || e.Event == "purchase"
	}
	return carted && !bought
}

type stallTransition struct {
	audience, customer, kind, message string
	episode                           uint32
	eventMs, derivedMs                uint64
}

func allTransitions(t *testing.T, conn *chdb.Conn) []stallTransition {
	t.Helper()
	rows, err := conn.Query(context.Background(), `SELECT audience_id, customer_id, kind, message_id, episode, event_time_ms, derived_at_ms
FROM audience_transitions FINAL ORDER BY audience_id, customer_id, episode, kind`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []stallTransition
	for rows.Next() {
		var r stallTransition
		if err := rows.Scan(&r.audience, &r.customer, &r.kind, &r.message, &r.episode, &r.eventMs, &r.derivedMs); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// latestTransitions is the latest transition per (audience, customer).
func latestTransitions(t *testing.T, conn *chdb.Conn) map[[2]string]stallTransition {
	out := map[[2]string]stallTransition{}
	for _, r := range allTransitions(t, conn) {
		k := [2]string{r.audience, r.customer}
		if have, ok := out[k]; !ok || r.episode > have.episode || r.episode == have.episode && r.kind == "exited" {
			out[k] = r
		}
	}
	return out
}

func pct(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	return s[min(len(s)-1, int(float64(len(s))*p/100))]
}

func ms2d(ms float64) time.Duration {
	return (time.Duration(ms) * time.Millisecond).Round(time.Millisecond)
}

// splitDocs splits a multi-document YAML text.
func splitDocs(s string) []string {
	var out []string
	for _, d := range strings.Split(s, "\n---\n") {
		if strings.TrimSpace(d) != "" {
			out = append(out, d)
		}
	}
	return out
}
