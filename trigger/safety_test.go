package trigger

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
)

// TestQuietHoursDeferralSurvivesKill defers a fire to the end of the
// customer's quiet hours, SIGKILLs the `tideline trigger` process twice
// while the fire waits, and checks that the restarted poller releases it
// once, not before its release time, under its one webhook id; a customer
// in another time zone, outside their quiet hours at the same instant, is
// sent at once. The open-scan interval keeps its default (30s): the
// release comes from the scan the poller schedules at the release time.
func TestQuietHoursDeferralSurvivesKill(t *testing.T) {
	bin := buildTideline(t)
	conn := testenv.ClickHouse(t)
	h := newHook(t)
	dir := t.TempDir()
	// Quiet from an hour ago until 45 seconds from now in UTC: time for the
	// poller to start and take its shards over (which waits up to 30s for
	// ledger inserts running on the server, of any database on 18.16), and
	// to decide. Tokyo (UTC+9, no DST) is nine hours ahead: outside the
	// period whenever this runs.
	now := time.Now().UTC()
	until := now.Add(45 * time.Second).Truncate(time.Second)
	from := now.Add(-time.Hour)
	writeCampaign(t, dir, "night", fmt.Sprintf(`
id: night
trigger: {audience_entered: night_audience}
staleness: {budget: 1h, late: skip}
reeligible_after: 0
quiet_hours: {from: "%s", to: "%s", policy: defer}
deliver:
  webhook: {url: %s/night, secret_env: NIGHT_SECRET}`, from.Format("15:04:05"), until.Format("15:04:05"), h.URL))
	if err := os.WriteFile(filepath.Join(dir, PolicyFile), []byte("timezone: {attribute: timezone, default: UTC}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	setAttributes(t, conn, map[string]map[string]any{"tokyo": {"timezone": "Asia/Tokyo"}})
	env := append(append(os.Environ(), testenv.ClickHouseEnv(t, conn)...),
		"TIDELINE_TRIGGER_CAMPAIGNS_DIR="+dir,
		"TIDELINE_TRIGGER_SHARDING=none",
		"TIDELINE_TRIGGER_POLL_INTERVAL=20ms",
		"TIDELINE_TRIGGER_CURSOR_INTERVAL=200ms",
		"TIDELINE_TRIGGER_METRICS_ADDR=",
		"NIGHT_SECRET="+h.Secret.String(),
	)
	logs := filepath.Join(t.TempDir(), "poller")
	run := 0
	t.Cleanup(func() {
		if t.Failed() {
			for i := 1; i <= run; i++ {
				b, _ := os.ReadFile(fmt.Sprintf("%s-%02d.log", logs, i))
				t.Logf("poller %d log:\n%s", i, b)
			}
		}
	})
	start := func() *exec.Cmd {
		run++
		return startPollerProcess(t, bin, env, logs, run)
	}
	kill := func(cmd *exec.Cmd) {
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("kill: %v", err)
		}
		for cmd.ProcessState == nil {
			time.Sleep(10 * time.Millisecond)
		}
	}
	proc := start()
	t.Logf("poller started %s after the test began", time.Since(now).Round(time.Millisecond))
	t.Cleanup(func() {
		if proc.ProcessState == nil {
			kill(proc)
		}
	})
	testenv.Eventually(t, time.Minute, "the first poller took its shards over", func() (bool, string) {
		b, _ := os.ReadFile(fmt.Sprintf("%s-%02d.log", logs, run))
		return bytes.Contains(b, []byte("took over trigger shards")), "not yet"
	})
	at := uint64(now.Add(-10 * time.Second).UnixMilli())
	insertTransitions(t, conn, []transition{
		{audience: "night_audience", customer: "utc", episode: 1, eventMs: at},
		{audience: "night_audience", customer: "tokyo", episode: 1, eventMs: at},
	})
	utcKey, tokyoKey := ledgerKey("night", "utc", "1"), ledgerKey("night", "tokyo", "1")
	testenv.Eventually(t, time.Minute, "both decided, the Tokyo customer sent", func() (bool, string) {
		es := ledgerState(t, conn)
		u, k := es[utcKey], es[tokyoKey]
		return u != nil && k != nil && k.DeliveryState == StateDelivered, describe(es)
	})
	t.Logf("decided %s after the test began", time.Since(now).Round(time.Millisecond))
	if !time.Now().Before(until) {
		t.Fatalf("deciding took %s, past the quiet period: nothing here tests a deferral (is the server overloaded?)", time.Since(now))
	}
	if e := ledgerState(t, conn)[utcKey]; e.DeliveryState != StateDeferred {
		t.Errorf("the UTC customer's fire is %s during quiet hours, want deferred", e.DeliveryState)
	}
	if h.Accepted()[utcKey] {
		t.Fatal("the deferred fire was sent during quiet hours")
	}
	var release uint64
	{
		e := ledgerState(t, conn)[utcKey]
		if err := NewLedger(conn).Controls(context.Background(), []*Entry{e}); err != nil {
			t.Fatal(err)
		}
		release = e.ReleaseAtMs
		if want := uint64(until.UnixMilli()); release != want {
			t.Errorf("release at %d, want the end of the quiet period %d", release, want)
		}
	}
	// Two kills while the fire waits; the second poller is killed as soon
	// as it has started.
	kill(proc)
	proc = start()
	testenv.Eventually(t, time.Minute, "the second poller started", func() (bool, string) {
		b, _ := os.ReadFile(fmt.Sprintf("%s-%02d.log", logs, run))
		return bytes.Contains(b, []byte("trigger poller started")), "no start line yet"
	})
	kill(proc)
	proc = start()
	testenv.Eventually(t, time.Minute, "the deferred fire released and delivered", func() (bool, string) {
		e := ledgerState(t, conn)[utcKey]
		return e != nil && e.DeliveryState == StateDelivered, describe(ledgerState(t, conn))
	})
	ds := h.Deliveries()[utcKey]
	if len(ds) != 1 {
		t.Fatalf("the deferred fire reached the receiver %d times, want once", len(ds))
	}
	if got := uint64(ds[0].At.UnixMilli()); got < release {
		t.Errorf("sent at %d, before its release time %d", got, release)
	}
	if n := len(h.Deliveries()[tokyoKey]); n != 1 {
		t.Errorf("the Tokyo customer got %d webhooks, want 1", n)
	}
	if n := count(t, conn, "SELECT uniqExact(ledger_key) FROM send_ledger"); n != 2 {
		t.Errorf("%d ledger entries, want 2", n)
	}
}

// TestSuppressionDuringBacklog releases a backlog of late qualifications
// through a slow throttle and unsubscribes some customers while their
// fires wait in the queue: those fires are never delivered and the ledger
// says why; a customer who unsubscribed before the backlog was read is
// skipped at decision time.
func TestSuppressionDuringBacklog(t *testing.T) {
	conn := testenv.ClickHouse(t)
	h := newHook(t)
	t.Setenv("BACKLOG_SECRET", h.Secret.String())
	c := campaign(t, fmt.Sprintf(`
id: backlog
trigger: {audience_entered: backlogged}
staleness: {budget: 15m, late: fire_late}
reeligible_after: 0
deliver:
  webhook:
    url: %s/backlog
    secret_env: BACKLOG_SECRET
    throttle: {rate: 1, burst: 1}`, h.URL))
	now := time.Now()
	// u00 unsubscribed before anything was read.
	insertEvents(t, conn, []*ingest.Event{unsubscribe("unsub-u00b", "u00", now.Add(-4*time.Hour))})
	var trs []transition
	at := uint64(now.Add(-3 * time.Hour).UnixMilli())
	for i := range 20 {
		trs = append(trs, transition{audience: "backlogged", customer: fmt.Sprintf("u%02d", i), episode: 1, eventMs: at})
	}
	startPoller(t, testConfig(), []*Campaign{c}, conn, broker.Config{}, nil)
	insertTransitions(t, conn, trs)
	testenv.Eventually(t, 30*time.Second, "the backlog decided", func() (bool, string) {
		es := ledgerState(t, conn)
		return len(es) == 20, describe(es)
	})
	// The throttle sends one a second, in no particular order: unsubscribe
	// five customers whose fires are still waiting.
	acc := h.Accepted()
	var queued []string
	for _, e := range ledgerState(t, conn) {
		if e.Fires() && e.DeliveryState != StateDelivered && !acc[e.Key] && len(queued) < 5 {
			queued = append(queued, e.CustomerID)
		}
	}
	if len(queued) < 5 {
		t.Fatalf("only %d fires still queued after the backlog was decided: the throttle is not holding them", len(queued))
	}
	var unsubs []*ingest.Event
	for _, c := range queued {
		unsubs = append(unsubs, unsubscribe("unsub-"+c, c, now))
	}
	unsubAt := time.Now()
	insertEvents(t, conn, unsubs)
	testenv.Eventually(t, time.Minute, "every fire delivered or suppressed", func() (bool, string) {
		es := ledgerState(t, conn)
		done := 0
		for _, e := range es {
			if e.DeliveryState == StateDelivered || e.DeliveryState == StateSuppressed || e.DeliveryState == StateSkipped {
				done++
			}
		}
		return done == 20, describe(es)
	})
	es := byQualification(ledgerState(t, conn))
	acc = h.Accepted()
	if e := es["backlog/u00/1"]; e.Decision != string(Skip) || e.Reason != ReasonSuppressed {
		t.Errorf("u00 (unsubscribed before): %s/%s, want skip/suppressed", e.Decision, e.Reason)
	}
	// The poller reads new suppressions every second: a fire already on
	// its way in that second may still go out; none may after.
	visible := unsubAt.Add(2 * time.Second)
	suppressed := 0
	for i := 1; i < 20; i++ {
		c := fmt.Sprintf("u%02d", i)
		e := es["backlog/"+c+"/1"]
		switch {
		case !slices.Contains(queued, c) && (e.DeliveryState != StateDelivered || !acc[e.Key]):
			t.Errorf("%s: %s, received %v; want delivered", c, e.DeliveryState, acc[e.Key])
		case !slices.Contains(queued, c):
		case e.DeliveryState == StateSuppressed && !acc[e.Key]:
			suppressed++
			if e.LastError != "suppressed before sending: unsubscribe" {
				t.Errorf("%s: reason %q", c, e.LastError)
			}
		default:
			for _, d := range h.Deliveries()[e.Key] {
				if d.At.After(visible) {
					t.Errorf("%s (unsubscribed while queued): %s, delivered at %s, %s after the unsubscribe was loaded", c, e.DeliveryState, d.At.UTC(), d.At.Sub(unsubAt))
				}
			}
		}
	}
	if suppressed < 3 {
		t.Errorf("%d of the 5 queued customers who unsubscribed were suppressed, want at least 3 (at one send a second, at most two can leave in the second it takes to see the unsubscribe)", suppressed)
	}
}

func unsubscribe(id, customer string, at time.Time) *ingest.Event {
	return track(id, customer, "unsubscribe", at, nil)
}

// TestRecorderGlobalCapAndConsent records qualifications of two campaigns
// for the same customers through the Recorder: the global cap counts the
// other campaign's fire (read from the ledger, and within one batch), the
// consent attribute comes from the customer's profile, and the cap's window
// is kept in send_ledger_controls.
func TestRecorderGlobalCapAndConsent(t *testing.T) {
	conn := testenv.ClickHouse(t)
	ctx := context.Background()
	setAttributes(t, conn, map[string]map[string]any{"ada": {"email_opt_in": true}, "bob": {"email_opt_in": true}, "eve": {"email_opt_in": false}})
	policy := &Policy{Caps: []GlobalCap{{Max: 1, Per: 24 * time.Hour}}, File: "_policy.yaml"}
	mk := func(id string) *Campaign {
		c := campaign(t, fmt.Sprintf(`
id: %s
trigger: {audience_entered: %s_audience}
staleness: {budget: 1h}
reeligible_after: 0
consent: {attribute: email_opt_in, equals: true}
deliver: {kafka_topic: fires}`, id, id))
		c.Policy = policy
		return c
	}
	first, second := mk("first"), mk("second")
	cs := map[string]*Campaign{"first": first, "second": second}
	rec := &Recorder{Ledger: NewLedger(conn), Conn: conn, Attributes: NewAttributeSource(conn, testenv.Logger(t)), Origin: OriginPoller}
	now := chdb.NowMs()
	q := func(c, cust string, minutesAgo uint64) Qualification {
		return Qualification{CampaignID: c, CustomerID: cust, AudienceID: c + "_audience", Episode: "1", EventTimeMs: now - minutesAgo*60_000}
	}
	// ada: "first" is recorded in an earlier batch; bob: both in one batch.
	if _, err := rec.Record(ctx, cs, []Qualification{q("first", "ada", 5)}, 0); err != nil {
		t.Fatal(err)
	}
	res, err := rec.Record(ctx, cs, []Qualification{q("second", "ada", 1), q("first", "bob", 3), q("second", "bob", 2), q("first", "eve", 1)}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Decide <= 0 || res.Write <= 0 {
		t.Errorf("a recording that read facts and wrote %d entries took %s deciding and %s writing", len(res.New), res.Decide, res.Write)
	}
	got := map[string]string{}
	for _, n := range res.New {
		got[n.Q.CampaignID+"/"+n.Q.CustomerID] = string(n.Decision.Action) + ":" + n.Decision.Reason + ":" + n.Decision.Detail
	}
	want := map[string]string{
		"second/ada": "skip:capped_global:1 per 1d",
		"first/bob":  "fire:fresh:",
		"second/bob": "skip:capped_global:1 per 1d",
		"first/eve":  "skip:no_consent:email_opt_in = true required",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %q, want %q", k, got[k], w)
		}
	}
	e := &Entry{Key: ledgerKey("second", "ada", "1")}
	if err := NewLedger(conn).Controls(ctx, []*Entry{e}); err != nil {
		t.Fatal(err)
	}
	if e.Detail != "1 per 1d" {
		t.Errorf("recorded window %q, want \"1 per 1d\"", e.Detail)
	}
}
