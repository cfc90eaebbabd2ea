package backfill_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/backfill"
	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/component"
	"github.com/tideline-dev/tideline/internal/testenv"
	"github.com/tideline-dev/tideline/materialize"
	"github.com/tideline-dev/tideline/pipeline"
	"github.com/tideline-dev/tideline/trigger"
	"github.com/tideline-dev/tideline/trigger/receiver"
)

// derived is the downstream half of a test deployment: the repo's
// audiences applied, its campaigns delivering to a local receiver, and an
// evaluator and a poller that can be stopped and started.
type derived struct {
	mcfg      materialize.Config
	mplan     *materialize.Plan
	campaigns []*trigger.Campaign
	byID      map[string]*trigger.Campaign
	hook      *receiver.Receiver
	evaluator *background
	poller    *background
	replay    *backfill.Replay
	controlDB *chdb.Conn
}

type background struct {
	cancel context.CancelFunc
	done   chan error
}

func (b *background) stop(t *testing.T, what string) {
	if b == nil {
		return
	}
	b.cancel()
	if err := <-b.done; err != nil {
		t.Errorf("%s: %v", what, err)
	}
}

func run(fn func(ctx context.Context) error) *background {
	ctx, cancel := context.WithCancel(context.Background())
	b := &background{cancel: cancel, done: make(chan error, 1)}
	go func() { b.done <- fn(ctx) }()
	return b
}

// withDerived applies the repo's audiences and campaigns to e.
func (e *env) withDerived() *derived {
	t := e.t
	t.Helper()
	d := &derived{mcfg: materialize.DefaultConfig(), byID: map[string]*trigger.Campaign{}}
	d.mcfg.Interval = 100 * time.Millisecond
	d.mcfg.TouchOverlap = 3 * time.Second
	d.mcfg.TouchSettle = time.Second
	auds, err := materialize.LoadDefinitions("../materialize/audiences")
	if err != nil {
		t.Fatal(err)
	}
	d.mplan, err = materialize.Compile(auds, materialize.AttributeSettings{Declared: d.mcfg.Attributes, SetOnce: d.mcfg.SetOnce})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := materialize.Apply(context.Background(), e.conn, d.mplan, 0, testenv.Logger(t)); err != nil {
		t.Fatal(err)
	}
	secret := trigger.NewSecret()
	d.hook, err = receiver.NewReceiver(secret.String())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(d.hook)
	t.Cleanup(srv.Close)
	d.campaigns, err = trigger.DefaultCampaigns()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range d.campaigns {
		if c.Deliver.Webhook != nil {
			c.Deliver.Webhook.URL = srv.URL + "/hooks/" + c.ID
			t.Setenv(c.Deliver.Webhook.SecretEnv, secret.String())
		}
		d.byID[c.ID] = c
	}
	if err := trigger.ApplyCampaigns(context.Background(), e.conn, d.campaigns); err != nil {
		t.Fatal(err)
	}
	e.derived = d
	t.Cleanup(func() {
		d.evaluator.stop(t, "evaluator")
		d.poller.stop(t, "poller")
	})
	return d
}

func (e *env) startEvaluator() {
	e.t.Helper()
	ev, err := pipeline.NewEvaluator(e.derived.mcfg, e.env())
	if err != nil {
		e.t.Fatal(err)
	}
	e.derived.evaluator = run(ev.Run)
}

func (e *env) stopEvaluator() {
	e.derived.evaluator.stop(e.t, "evaluator")
	e.derived.evaluator = nil
}

func (e *env) pollerConfig(startFrom string) trigger.Config {
	c := trigger.DefaultConfig()
	c.PollInterval = 50 * time.Millisecond
	// Short, so a poller restarted "latest" after the outage misses what
	// was derived during it (it rewinds by the overlap).
	c.Overlap = time.Second
	c.CursorInterval = 200 * time.Millisecond
	c.Sharding = "none"
	c.StartFrom = startFrom
	c.OpenScanInterval = 500 * time.Millisecond
	c.BackoffBase = 50 * time.Millisecond
	c.MetricsAddr = ""
	c.ShutdownTimeout = 5 * time.Second
	return c
}

func (e *env) startPoller(startFrom string) {
	e.t.Helper()
	p, err := pipeline.NewPoller(e.pollerConfig(startFrom), e.derived.campaigns, e.env())
	if err != nil {
		e.t.Fatal(err)
	}
	e.derived.poller = run(p.Run)
}

func (e *env) stopPoller() {
	e.derived.poller.stop(e.t, "poller")
	e.derived.poller = nil
}

func (e *env) qualifier() *backfill.CampaignQualifier {
	return &backfill.CampaignQualifier{Conn: e.conn, Campaigns: e.derived.campaigns, Log: testenv.Logger(e.t), PollerStaleAfter: 3 * time.Second}
}

// replay is the test's one Replay, so its scratch database is made once.
func (e *env) replay() *backfill.Replay {
	if e.derived.replay == nil {
		e.derived.replay = &backfill.Replay{Conn: e.conn, CH: testenv.ClickHouseConfig(e.t), Materialize: e.derived.mcfg, Log: testenv.Logger(e.t)}
		e.t.Cleanup(e.derived.replay.Close)
	}
	return e.derived.replay
}

// evaluatorCaughtUp waits until the live evaluator has run a pass after
// every touch settled, so its memberships reflect every loaded event.
func (e *env) evaluatorCaughtUp() {
	e.t.Helper()
	settle := uint64(e.derived.mcfg.TouchSettle.Milliseconds())
	e.eventually("evaluator caught up", func() (bool, string) {
		last := e.queryUint("SELECT toUInt64(max(touched_at)) * 1000 FROM customer_touches")
		if last == 0 {
			return false, "no touches yet"
		}
		now := chdb.NowMs()
		if now < last+settle+1000 {
			return false, "touches settling"
		}
		pass := e.queryUint("SELECT max(updated_at_ms) FROM evaluator_state WHERE evaluator = ?", e.derived.mcfg.EvaluatorID)
		cursor := e.queryUint("SELECT toUInt64(argMax(touch_cursor, updated_at_ms)) * 1000 FROM evaluator_state WHERE evaluator = ?", e.derived.mcfg.EvaluatorID)
		wm := e.queryUint("SELECT min(watermark_ms) FROM lane_watermarks WHERE lane IN ('web', 'server')")
		return pass > last+settle+2000 && cursor >= last, fmt.Sprintf("last pass %d, last touch %d, cursor %d, as of %d, watermark %d", pass, last, cursor, e.asOf(), wm)
	})
}

// asOf is the live evaluator's evaluation time.
func (e *env) asOf() uint64 {
	return e.queryUint("SELECT argMax(as_of_ms, updated_at_ms) FROM evaluator_state WHERE evaluator = ?", e.derived.mcfg.EvaluatorID)
}

// customerState is what a database holds for its customers: attribute
// values and audience memberships.
type customerState struct {
	attrs   map[string]string // customer \x00 attribute -> value
	members map[string]bool   // customer \x00 audience
}

func readState(t *testing.T, conn *chdb.Conn) customerState {
	t.Helper()
	ctx := context.Background()
	st := customerState{attrs: map[string]string{}, members: map[string]bool{}}
	err := conn.Each(ctx, `SELECT customer_id, attribute, toString(argMaxMerge(last_value)), toString(argMinMerge(first_value))
		FROM customer_attributes GROUP BY customer_id, attribute`, nil, func(rows chdb.Rows) error {
		var c, a, last, first string
		if err := rows.Scan(&c, &a, &last, &first); err != nil {
			return err
		}
		// The tuples carry ingest times, which differ between databases:
		// compare value and null flag only.
		st.attrs[c+"\x00"+a] = valueOf(last) + "|" + valueOf(first)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = conn.Each(ctx, `SELECT audience_id, customer_id, argMax(member, updated_at_ms) FROM audience_membership GROUP BY audience_id, customer_id`, nil,
		func(rows chdb.Rows) error {
			var a, c string
			var m uint8
			if err := rows.Scan(&a, &c, &m); err != nil {
				return err
			}
			if m == 1 {
				st.members[c+"\x00"+a] = true
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// valueOf keeps the first two tuple elements of "('v',0,…)".
func valueOf(tuple string) string {
	depth, commas := 0, 0
	for i, r := range tuple {
		switch r {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 1 {
				if commas++; commas == 2 {
					return tuple[:i]
				}
			}
		case '\'':
			// skip quoted text
		}
	}
	return tuple
}

// control builds, in its own database, the state the audiences give for
// every event the test produced, evaluated as of asOf: the oracle the
// live state must converge to.
func (e *env) control(asOf uint64) customerState {
	t := e.t
	t.Helper()
	ctx := context.Background()
	conn := e.derived.controlDB
	if conn == nil {
		conn = testenv.ClickHouse(t)
		e.derived.controlDB = conn
	} else {
		tables, err := conn.Strings(ctx, "SELECT name FROM system.tables WHERE database = ? AND engine NOT IN ('View', 'MaterializedView', 'Distributed')", conn.Database)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range tables {
			switch name {
			case "schema_migrations", "audiences", "attribute_catalog", "signal_catalog", "campaigns":
				continue
			}
			if err := conn.Exec(ctx, "TRUNCATE TABLE "+name+conn.OnCluster()); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := materialize.Apply(ctx, conn, e.derived.mplan, 0, testenv.Logger(t)); err != nil {
		t.Fatal(err)
	}
	var rows ingest.EventRows
	for _, p := range e.events {
		rows.Add(p.ev, p.lane, p.topic, p.partition, p.offset)
	}
	if err := rows.Insert(ctx, conn, chdb.NowMs()); err != nil {
		t.Fatal(err)
	}
	var ps []ingest.Progress
	for i, lane := range e.derived.mcfg.Lanes {
		ps = append(ps, ingest.Progress{Lane: lane, Topic: "control." + lane, Partition: int32(i), WatermarkMs: asOf})
	}
	if err := ingest.InsertProgress(ctx, conn, ps, chdb.NowMs()); err != nil {
		t.Fatal(err)
	}
	cfg := e.derived.mcfg
	cfg.EvaluatorID = "control"
	ev, err := materialize.NewEvaluator(cfg, component.Env{Conn: conn, Log: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ev.EvaluateOnce(ctx); err != nil {
		t.Fatal(err)
	}
	return readState(t, conn)
}

// linkedMembers lists the memberships held by anonymous ids an identify
// linked to a user: none once the evaluator has caught up, since a linked
// id's history counts for its user and the id leaves every audience.
func linkedMembers(t *testing.T, conn *chdb.Conn) []string {
	t.Helper()
	out, err := conn.Strings(context.Background(), `SELECT concat(customer_id, ' in ', audience_id)
FROM
(
    SELECT audience_id, customer_id, argMax(member, updated_at_ms) AS m
    FROM audience_membership
    GROUP BY audience_id, customer_id
)
WHERE m = 1 AND customer_id IN (SELECT anonymous_customer_id FROM identity_links)
ORDER BY customer_id, audience_id`)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// eachDifference calls fn for every attribute value or membership in which
// got differs from want, with its key (customer \x00 attribute or
// audience) and what differs.
func eachDifference(got, want customerState, fn func(key, what string)) {
	for k, v := range want.attrs {
		if g, ok := got.attrs[k]; !ok {
			fn(k, fmt.Sprintf("attribute %q: %q, missing now", k, v))
		} else if g != v {
			fn(k, fmt.Sprintf("attribute %q: %q, now %q", k, v, g))
		}
	}
	for k, v := range got.attrs {
		if _, ok := want.attrs[k]; !ok {
			fn(k, fmt.Sprintf("attribute %q: absent, now %q", k, v))
		}
	}
	for k := range want.members {
		if !got.members[k] {
			fn(k, fmt.Sprintf("membership %q: member, not now", k))
		}
	}
	for k := range got.members {
		if !want.members[k] {
			fn(k, fmt.Sprintf("membership %q: not a member, now one", k))
		}
	}
}

// stateDiff describes, for up to n keys, how got differs from want: what a
// failure prints so the cause can be read from one run.
func stateDiff(got, want customerState, n int) string {
	var lines []string
	eachDifference(got, want, func(_, what string) { lines = append(lines, what) })
	sort.Strings(lines)
	if len(lines) > n {
		lines = append(lines[:n], fmt.Sprintf("… and %d more", len(lines)-n))
	}
	return strings.Join(lines, "\n")
}

// staleCustomers lists the customers whose state in got differs from want.
func staleCustomers(got, want customerState) []string {
	set := map[string]bool{}
	eachDifference(got, want, func(key, _ string) {
		customer, _, _ := strings.Cut(key, "\x00")
		set[customer] = true
	})
	out := make([]string, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// windowQualifications are the qualifications of the events received in
// [from, to), worked out from what the test produced for event campaigns
// and from the audience transitions those events caused for audience
// campaigns.
func (e *env) windowQualifications(from, to time.Time) map[string]trigger.Qualification {
	t := e.t
	t.Helper()
	inWindow := map[string]bool{}
	out := map[string]trigger.Qualification{}
	for _, p := range e.events {
		if p.ev.ReceivedAt.Before(from) || !p.ev.ReceivedAt.Before(to) {
			continue
		}
		inWindow[p.ev.MessageID] = true
		for _, c := range e.derived.campaigns {
			if c.Active && c.Trigger.Kind == trigger.TriggerEvent && c.Trigger.Event.Matches(p.ev.EventName(), trigger.Fields{Properties: string(p.ev.Properties), Context: string(p.ev.Context), ContextIP: p.ev.IP}) {
				q := trigger.Qualification{CampaignID: c.ID, CustomerID: p.ev.CustomerID(), Episode: p.ev.MessageID, MessageID: p.ev.MessageID, EventTimeMs: uint64(p.ev.Timestamp.UnixMilli())}
				out[q.Key()] = q
			}
		}
	}
	rows, err := e.conn.Query(context.Background(), `SELECT audience_id, customer_id, episode, kind, any(message_id), any(event_time_ms)
		FROM audience_transitions GROUP BY audience_id, customer_id, episode, kind`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var aud, cust, kind, msg string
		var episode uint32
		var evMs uint64
		if err := rows.Scan(&aud, &cust, &episode, &kind, &msg, &evMs); err != nil {
			t.Fatal(err)
		}
		if !inWindow[msg] {
			continue
		}
		for _, c := range e.derived.campaigns {
			if c.Active && c.Trigger.Audience == aud &&
				((c.Trigger.Kind == trigger.TriggerAudienceEntered && kind == "entered") || (c.Trigger.Kind == trigger.TriggerAudienceExited && kind == "exited")) {
				q := trigger.Qualification{CampaignID: c.ID, CustomerID: cust, AudienceID: aud, Episode: fmt.Sprint(episode), MessageID: msg, EventTimeMs: evMs}
				out[q.Key()] = q
			}
		}
	}
	return out
}

// assertLedger checks every qualification has one ledger entry whose
// decision follows its campaign's policy for the lag it was detected with.
func (e *env) assertLedger(qs map[string]trigger.Qualification) map[string]*trigger.Entry {
	t := e.t
	t.Helper()
	keys := make([]string, 0, len(qs))
	for k := range qs {
		keys = append(keys, k)
	}
	entries, err := trigger.NewLedger(e.conn).ByKeys(context.Background(), keys)
	if err != nil {
		t.Fatal(err)
	}
	wm := e.queryUint("SELECT min(watermark_ms) FROM lane_watermarks WHERE lane IN ('web', 'server')")
	for k, q := range qs {
		en := entries[k]
		if c := e.derived.byID[q.CampaignID]; en == nil && c.Trigger.Unless != nil && trigger.DueMs(c, q) > wm {
			continue // its unless window is still open: it waits
		}
		if en == nil {
			t.Fatalf("qualification %s/%s/%s has no ledger entry", q.CampaignID, q.CustomerID, q.Episode)
		}
		c := e.derived.byID[q.CampaignID]
		due := trigger.DueMs(c, trigger.Qualification{EventTimeMs: en.QualifiedEventTimeMs})
		lag := en.DetectedAtMs - min(en.DetectedAtMs, due)
		var want string
		switch {
		case en.Reason == trigger.ReasonCapped || en.Reason == trigger.ReasonNotReeligible || en.Reason == trigger.ReasonConverted:
			want = string(trigger.Skip)
		case lag <= uint64(c.Staleness.Budget.Milliseconds()):
			want = string(trigger.Fire)
		case c.Staleness.Late == trigger.LateFire:
			want = string(trigger.FireLate)
		default:
			want = string(trigger.Skip)
		}
		if en.Decision != want {
			t.Fatalf("%s/%s/%s: decided %s (%s) %d ms after its event; the policy (budget %s, then %s) says %s",
				q.CampaignID, q.CustomerID, q.Episode, en.Decision, en.Reason, lag, c.Staleness.Budget, c.Staleness.Late, want)
		}
	}
	n := e.queryUint("SELECT uniqExact(ledger_key) FROM send_ledger")
	m := e.queryUint("SELECT uniqExact(campaign_id, customer_id, episode) FROM send_ledger")
	if n != m {
		t.Fatalf("send_ledger has %d keys for %d qualifications", n, m)
	}
	return entries
}
