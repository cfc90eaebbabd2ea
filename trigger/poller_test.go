package trigger

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
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

// pipeline is the real collector and loader on a broker and a database.
type pipeline struct {
	url string
}

func startPipeline(t *testing.T, br testenv.Broker, conn *chdb.Conn) *pipeline {
	t.Helper()
	log := testenv.Logger(t)
	prod, err := kgo.NewClient(broker.ClientOpts(br.Seeds, log)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	col, err := ingest.NewCollector(ingest.DefaultCollectorConfig(), component.Env{Kafka: br.Config, Log: log}, prod)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(col.Handler())
	t.Cleanup(srv.Close)
	lc := ingest.DefaultLoaderConfig()
	lc.FlushInterval = 50 * time.Millisecond
	lc.WatermarkInterval = 200 * time.Millisecond
	lc.Group = "loader-" + testenv.Name(t)
	l, err := ingest.NewLoader(lc, component.Env{Conn: conn, Kafka: br.Config, Seeds: br.Seeds, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("loader: %v", err)
		}
	})
	return &pipeline{url: srv.URL}
}

func (p *pipeline) post(t *testing.T, path string, body any) {
	t.Helper()
	b, _ := json.Marshal(body)
	if code := testenv.Post(t, p.url+path, "web-demo-key", b).StatusCode; code != http.StatusOK {
		t.Fatalf("POST %s: %d", path, code)
	}
}

// TestCampaignsEndToEnd runs audience- and event-triggered campaigns on
// real ClickHouse and each broker: transitions inserted as the evaluator
// writes them, events sent through the real collector and loader. Every
// qualification must get one ledger entry with the policy's decision, every
// fire must reach the receiver (which checks the signature with its own
// code) and, for the campaign that says so, the fires topic keyed by the
// webhook id.
func TestCampaignsEndToEnd(t *testing.T) {
	for _, br := range testenv.Brokers(t) {
		t.Run(br.Name, func(t *testing.T) {
			conn := testenv.ClickHouse(t)
			h := newHook(t)
			t.Setenv("E2E_SECRET", h.Secret.String())
			welcome := campaign(t, fmt.Sprintf(`
id: welcome
trigger: {audience_entered: gold}
staleness: {budget: 15m, late: skip}
reeligible_after: 30d
deliver:
  webhook: {url: %s/welcome, secret_env: E2E_SECRET}
  kafka_topic: campaign.fires`, h.URL))
			silver := campaign(t, fmt.Sprintf(`
id: silver
trigger: {audience_entered: silver}
staleness: {budget: 15m, late: fire_late}
reeligible_after: 30d
deliver:
  webhook: {url: %s/silver, secret_env: E2E_SECRET}`, h.URL))
			thanks := campaign(t, fmt.Sprintf(`
id: thanks
trigger:
  event: {name: purchase, where: {amount: {gt: 100}}}
staleness: {budget: 1h, late: fire_late}
reeligible_after: 0
frequency_cap: {max: 2, per: 1d}
deliver:
  webhook: {url: %s/thanks, secret_env: E2E_SECRET}`, h.URL))

			pipe := startPipeline(t, br, conn)
			cfg := testConfig()
			cfg.Sharding, cfg.Shards, cfg.SessionTimeout = "group", 4, 6*time.Second
			cfg.Group = "trigger-" + testenv.Name(t)
			cfg.InstanceID = "e2e"
			startPoller(t, cfg, []*Campaign{welcome, silver, thanks}, conn, br.Config, br.Seeds)

			now := time.Now()
			ms := func(d time.Duration) uint64 { return uint64(now.Add(-d).UnixMilli()) }
			pipe.post(t, "/v1/identify", map[string]any{"messageId": "id-u5", "userId": "u5", "traits": map[string]any{"plan": "gold", "name": "Ada"},
				"timestamp": now.Add(-time.Hour).Format(time.RFC3339Nano)})
			insertTransitions(t, conn, []transition{
				{audience: "gold", customer: "u1", episode: 1, eventMs: ms(time.Minute), message: "m-u1-1"},
				{audience: "gold", customer: "u1", episode: 1, kind: "exited", eventMs: ms(50 * time.Second)},
				{audience: "gold", customer: "u1", episode: 2, eventMs: ms(30 * time.Second), message: "m-u1-2"},
				{audience: "gold", customer: "u2", episode: 1, eventMs: ms(time.Hour), message: "m-u2-1"},
				{audience: "silver", customer: "u4", episode: 1, eventMs: ms(45 * 24 * time.Hour)},
				{audience: "silver", customer: "u4", episode: 2, eventMs: ms(time.Minute)},
				{audience: "silver", customer: "u4", episode: 3, eventMs: ms(30 * time.Second)},
				{audience: "bronze", customer: "u9", episode: 1, eventMs: ms(time.Minute)},
			})
			var batch []map[string]any
			for i, amount := range []float64{150, 200, 300, 50} {
				batch = append(batch, map[string]any{"type": "track", "messageId": fmt.Sprintf("p-u5-%d", i), "userId": "u5", "event": "purchase",
					"properties": map[string]any{"amount": amount}, "timestamp": now.Add(-time.Duration(4-i) * time.Minute).Format(time.RFC3339Nano)})
			}
			batch = append(batch, map[string]any{"type": "track", "messageId": "p-u6", "userId": "u6", "event": "purchase",
				"properties": map[string]any{"amount": "500"}, "timestamp": now.Add(-2 * time.Hour).Format(time.RFC3339Nano)})
			pipe.post(t, "/v1/batch", map[string]any{"batch": batch})
			// The collector's client retries: the same message again must not
			// qualify twice.
			pipe.post(t, "/v1/batch", map[string]any{"batch": batch[:1]})

			testenv.Eventually(t, 60*time.Second, "every qualification decided and every fire delivered", func() (bool, string) {
				es := ledgerState(t, conn)
				open := 0
				for _, e := range es {
					if e.Open() {
						open++
					}
				}
				return len(es) == 10 && open == 0, describe(es)
			})
			got := byQualification(ledgerState(t, conn))
			want := map[string][2]string{
				"welcome/u1/1": {"fire", ReasonFresh}, "welcome/u1/2": {"skip", ReasonNotReeligible}, "welcome/u2/1": {"skip", ReasonStale},
				"silver/u4/1": {"fire_late", ReasonLate}, "silver/u4/2": {"fire", ReasonFresh}, "silver/u4/3": {"skip", ReasonNotReeligible},
				"thanks/u6/p-u6": {"fire_late", ReasonLate},
			}
			for q, w := range want {
				e := got[q]
				if e == nil || e.Decision != w[0] || e.Reason != w[1] {
					t.Errorf("%s: got %+v, want %s/%s", q, e, w[0], w[1])
				}
			}
			var fired, capped int
			for i := 0; i < 3; i++ {
				switch e := got[fmt.Sprintf("thanks/u5/p-u5-%d", i)]; {
				case e == nil:
					t.Errorf("purchase %d of u5 has no ledger entry", i)
				case e.Decision == "fire":
					fired++
				case e.Reason == ReasonCapped:
					capped++
				}
			}
			if fired != 2 || capped != 1 {
				t.Errorf("u5's three purchases over 100 with a cap of 2/day: %d fired, %d capped", fired, capped)
			}
			if got["thanks/u5/p-u5-3"] != nil {
				t.Error("a purchase of 50 qualified for amount > 100")
			}

			// The receiver got exactly the fires, each validly signed.
			fires := map[string]*Entry{}
			for _, e := range got {
				if e.Fires() {
					fires[e.Key] = e
					if e.DeliveryState != StateDelivered || e.SentAtMs == 0 {
						t.Errorf("%s/%s: delivery %s", e.CampaignID, e.Episode, e.DeliveryState)
					}
				}
			}
			accepted := h.Accepted()
			if len(accepted) != len(fires) || h.Counts().Invalid != 0 {
				t.Errorf("receiver accepted %d ids (invalid %d: %v), want the %d fires", len(accepted), h.Counts().Invalid, h.InvalidReasons(), len(fires))
			}
			deliveries := h.Deliveries()
			for key, e := range fires {
				ds := deliveries[key]
				if !accepted[key] || len(ds) == 0 {
					t.Errorf("fire %s/%s/%s never reached the receiver", e.CampaignID, e.CustomerID, e.Episode)
					continue
				}
				if want := "/" + e.CampaignID; ds[0].Path != want {
					t.Errorf("%s delivered to %s, want %s", key, ds[0].Path, want)
				}
				b := body(t, ds[0].Body)
				if b.Type != EventType || b.Data.WebhookID != key || b.Data.Campaign.ID != e.CampaignID || b.Data.CustomerID != e.CustomerID ||
					b.Data.Late != (e.Decision == "fire_late") || b.Data.QualifiedAt != msTime(e.QualifiedEventTimeMs) {
					t.Errorf("payload of %s: %s", key, ds[0].Body)
				}
				if e.Decision == "fire_late" && b.Data.LagMs < uint64(time.Hour/time.Millisecond) {
					t.Errorf("late payload of %s has lag %dms", key, b.Data.LagMs)
				}
			}
			u6 := body(t, deliveries[got["thanks/u6/p-u6"].Key][0].Body)
			if u6.Data.Trigger.Event != "purchase" || !strings.Contains(string(u6.Data.Trigger.Properties), `"500"`) {
				t.Errorf("event trigger payload: %+v", u6.Data.Trigger)
			}
			hasProfile, err := materialize.HasProfile(context.Background(), conn)
			if err != nil {
				t.Fatal(err)
			}
			if !hasProfile {
				for k, e := range fires {
					if e.CustomerID == "u5" {
						if a := body(t, deliveries[k][0].Body).Data.Attributes; a["plan"] != "gold" || a["name"] != "Ada" {
							t.Errorf("u5's attributes snapshot: %v", a)
						}
					}
				}
			}

			// The welcome campaign also produced its fires to Kafka, keyed by webhook id.
			wantKafka := map[string]bool{}
			for k, e := range fires {
				if e.CampaignID == "welcome" {
					wantKafka[k] = true
				}
			}
			gotKafka := consumeKeys(t, br, br.Config.MustTopic("fires"), len(wantKafka))
			for k := range wantKafka {
				if !gotKafka[k] {
					t.Errorf("fire %s missing from the fires topic (got %v)", k, gotKafka)
				}
			}
			testenv.Merge(t, conn, "campaigns")
			if n := count(t, conn, "SELECT count() FROM campaigns WHERE active = 1"); n != 3 {
				t.Errorf("campaigns table holds %d active definitions, want 3", n)
			}
		})
	}
}

// consumeKeys reads a topic from the start until it has n distinct keys.
func consumeKeys(t *testing.T, br testenv.Broker, topic string, n int) map[string]bool {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(br.Seeds...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got := map[string]bool{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for len(got) < n && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			var id string
			for _, h := range r.Headers {
				if h.Key == HeaderWebhookID {
					id = string(h.Value)
				}
			}
			if id != string(r.Key) {
				t.Errorf("record key %q but webhook-id header %q", r.Key, id)
			}
			got[string(r.Key)] = true
		})
	}
	return got
}

// TestUnlessWaitsForWatermark checks a negative condition: a checkout
// without a purchase within 1h is decided only once the lane watermarks
// passed the end of the hour, while the cursor stays behind it; a restart in
// between changes nothing; then the converted customer is skipped and the
// other reminded.
func TestUnlessWaitsForWatermark(t *testing.T) {
	conn := testenv.ClickHouse(t)
	h := newHook(t)
	t.Setenv("UNLESS_SECRET", h.Secret.String())
	c := campaign(t, fmt.Sprintf(`
id: reminder
trigger:
  event: {name: checkout_started}
  unless: {event: {name: purchase, where: {amount: {gt: 0}}}, within: 1h}
staleness: {budget: 30m}
reeligible_after: 7d
deliver:
  webhook: {url: %s/reminder, secret_env: UNLESS_SECRET}`, h.URL))
	now := time.Now()
	start := now.Add(-70 * time.Minute)
	setWatermark := func(at time.Time) {
		for _, lane := range []string{"web", "server"} {
			if err := ingest.InsertProgress(context.Background(), conn, []ingest.Progress{{Lane: lane, Topic: "events." + lane, Partition: 0, WatermarkMs: uint64(at.UnixMilli())}}, chdb.NowMs()); err != nil {
				t.Fatal(err)
			}
		}
	}
	setWatermark(start.Add(30 * time.Minute))
	insertEvents(t, conn, []*ingest.Event{
		track("co-1", "buyer", "checkout_started", start, nil),
		track("buy-1", "buyer", "purchase", start.Add(5*time.Minute), map[string]any{"amount": 20}),
		track("co-2", "walker", "checkout_started", start, nil),
		track("buy-0", "walker", "purchase", start.Add(-time.Minute), map[string]any{"amount": 20}),
	})
	cfg := testConfig()
	r := startPoller(t, cfg, []*Campaign{c}, conn, broker.Config{}, nil)
	testenv.Eventually(t, 30*time.Second, "both checkouts held for the watermark", func() (bool, string) {
		s := r.p.Stats()
		return s.Waiting == 2, fmt.Sprintf("%+v", s)
	})
	if es := ledgerState(t, conn); len(es) != 0 {
		t.Fatalf("decided before the watermark passed the window: %s", describe(es))
	}
	// A restart while they wait: the saved position is behind them, so the
	// new poller finds them again.
	testenv.Eventually(t, 10*time.Second, "position saved", func() (bool, string) {
		n := count(t, conn, "SELECT count() FROM trigger_cursors WHERE cursor_id = 'events'")
		return n > 0, "no cursor rows"
	})
	r.stop(t)
	cur, err := loadCursors(context.Background(), conn)
	if err != nil {
		t.Fatal(err)
	}
	feedPos := count(t, conn, "SELECT max(ingest_time_ms) FROM trigger_event_feed")
	for shard, pos := range cur["events"] {
		if pos > feedPos {
			t.Fatalf("shard %d saved position %d past the held rows at %d", shard, pos, feedPos)
		}
	}
	r = startPoller(t, cfg, []*Campaign{c}, conn, broker.Config{}, nil)
	testenv.Eventually(t, 30*time.Second, "held again after the restart", func() (bool, string) {
		s := r.p.Stats()
		return s.Waiting == 2, fmt.Sprintf("%+v", s)
	})
	setWatermark(now)
	testenv.Eventually(t, 30*time.Second, "decided once the watermark passed", func() (bool, string) {
		es := ledgerState(t, conn)
		open := 0
		for _, e := range es {
			if e.Open() {
				open++
			}
		}
		return len(es) == 2 && open == 0, describe(es)
	})
	got := byQualification(ledgerState(t, conn))
	if e := got["reminder/buyer/co-1"]; e == nil || e.Reason != ReasonConverted {
		t.Errorf("buyer: %+v, want skip converted", e)
	}
	w := got["reminder/walker/co-2"]
	if w == nil || w.Decision != "fire" || w.Reason != ReasonFresh {
		t.Fatalf("walker: %+v, want fire fresh (a purchase before the checkout does not count)", w)
	}
	if !h.Accepted()[w.Key] || len(h.Accepted()) != 1 {
		t.Errorf("receiver accepted %v, want only %s", h.Accepted(), w.Key)
	}
}

// TestAttributeSnapshot checks both sources of the payload's attributes:
// customer_profile's rows (attributes as parallel arrays, values decoded as
// JSON when they are JSON, a linked anonymous id's attributes included) and,
// when the view is missing or its read fails, the latest identify traits.
func TestAttributeSnapshot(t *testing.T) {
	conn := testenv.ClickHouse(t)
	ctx := context.Background()
	now := time.Now()
	insertEvents(t, conn, []*ingest.Event{
		{MessageID: "i1", Type: ingest.TypeIdentify, UserID: "ada", Traits: []byte(`{"plan":"silver","city":"Paris"}`), Timestamp: now.Add(-2 * time.Hour)},
		{MessageID: "i2", Type: ingest.TypeIdentify, UserID: "ada", Traits: []byte(`{"plan":"gold"}`), Timestamp: now.Add(-time.Hour)},
		{MessageID: "i3", Type: ingest.TypeIdentify, UserID: "bob", Traits: []byte(`{"plan":"free"}`), Timestamp: now},
	})
	p := &profileAttributes{conn: conn, log: testenv.Logger(t)}
	got, err := p.fromTraits(ctx, []string{"ada", "bob", "nobody"})
	if err != nil {
		t.Fatal(err)
	}
	if a := got["ada"]; a["plan"] != "gold" || a["city"] != "Paris" || got["bob"]["plan"] != "free" || len(got["nobody"]) != 0 {
		t.Errorf("attributes from traits = %v", got)
	}

	// The profile: ada's attributes the catalog maintains, with those her
	// anonymous id set before she identified.
	plan, err := materialize.Compile(nil, materialize.AttributeSettings{Declared: []string{"plan", "age", "tags"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := materialize.Apply(ctx, conn, plan, 0, testenv.Logger(t)); err != nil {
		t.Fatal(err)
	}
	insertEvents(t, conn, []*ingest.Event{
		{MessageID: "i4", Type: ingest.TypeIdentify, AnonymousID: "v1", Traits: []byte(`{"age":42,"tags":["a"]}`), Timestamp: now.Add(-3 * time.Hour)},
		{MessageID: "i5", Type: ingest.TypeIdentify, UserID: "ada", AnonymousID: "v1", Timestamp: now.Add(-3 * time.Hour)},
	})
	src := NewAttributeSource(conn, testenv.Logger(t))
	got, err = src.Attributes(ctx, []string{"ada"})
	if err != nil {
		t.Fatal(err)
	}
	if a := got["ada"]; a["plan"] != "gold" || a["age"] != float64(42) || fmt.Sprint(a["tags"]) != "[a]" || len(a) != 3 {
		t.Errorf("attributes from customer_profile = %v", got)
	}

	// A profile read that fails falls back to traits.
	if err := conn.Exec(ctx, "DROP TABLE identity_claims"); err != nil {
		t.Fatal(err)
	}
	got, err = NewAttributeSource(conn, testenv.Logger(t)).Attributes(ctx, []string{"ada"})
	if err != nil || got["ada"]["plan"] != "gold" || got["ada"]["city"] != "Paris" {
		t.Errorf("an unusable customer_profile must fall back to traits: %v, %v", got, err)
	}
}
