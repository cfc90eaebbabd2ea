package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/backfill"
	"github.com/tideline-dev/tideline/internal/testenv"
	assembly "github.com/tideline-dev/tideline/pipeline"
	"github.com/tideline-dev/tideline/trigger"
	"github.com/tideline-dev/tideline/trigger/receiver"
)

// TestCampaignFiltersReadContext: events sent through the collector, the
// way the server SDKs and the browser send them, qualify campaigns whose
// where filters read context.campaign, context.page, context.locale and
// context.ip. The backfill's qualification and the poller find the same
// ones, and an unless campaign's follow-up filter reads the context too.
func TestCampaignFiltersReadContext(t *testing.T) {
	ctx := context.Background()
	conn := testenv.ClickHouse(t)
	p := startPipeline(t, testenv.Embedded(t), conn, fastLoader())
	secret := trigger.NewSecret()
	hook, err := receiver.NewReceiver(secret.String())
	if err != nil {
		t.Fatal(err)
	}
	hookSrv := httptest.NewServer(hook)
	t.Cleanup(hookSrv.Close)
	defs := map[string]string{
		"newsletter_buyers": "trigger:\n  event:\n    name: Order Completed\n    where:\n      context.campaign.source: newsletter\n      context.campaign.name: {in: [black_friday, cyber_monday]}\n      total: {gt: 50}\n",
		"pricing_visitors":  "trigger:\n  event:\n    name: Pricing\n    where:\n      context.page.path: /pricing\n      context.locale: {in: [de-DE, de-AT]}\n",
		"local_signups":     "trigger:\n  event:\n    name: Signed Up\n    where:\n      context.ip: 127.0.0.1\n",
		"checkout_abandon":  "trigger:\n  event:\n    name: Checkout Started\n  unless:\n    event:\n      name: Order Completed\n      where:\n        context.campaign.source: newsletter\n    within: 1h\n",
	}
	var campaigns []*trigger.Campaign
	for _, id := range []string{"checkout_abandon", "local_signups", "newsletter_buyers", "pricing_visitors"} {
		c, err := trigger.ParseCampaign(id+".yaml", []byte("id: "+id+"\n"+defs[id]+
			"staleness: {budget: 1h}\nreeligible_after: 0\ndeliver:\n  webhook:\n    url: "+hookSrv.URL+"/"+id+"\n    secret_env: UNUSED_SECRET\n"))
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		campaigns = append(campaigns, c)
	}
	if err := trigger.ApplyCampaigns(ctx, conn, campaigns); err != nil {
		t.Fatal(err)
	}

	from := time.Now().Add(-time.Second)
	run := runID()
	user := func(name string) string { return name + "-" + run }
	campaign := func(source, name string) map[string]any {
		return map[string]any{"campaign": map[string]any{"source": source, "medium": "email", "name": name}}
	}
	// A server SDK's batch: JSON with Basic auth.
	batch := []map[string]any{
		{"type": "track", "messageId": "m1-" + run, "userId": user("nl"), "event": "Order Completed", "properties": map[string]any{"total": 80}, "context": campaign("newsletter", "black_friday")},
		{"type": "track", "messageId": "m2-" + run, "userId": user("ads"), "event": "Order Completed", "properties": map[string]any{"total": 80}, "context": campaign("ads", "black_friday")},
		{"type": "track", "messageId": "m3-" + run, "userId": user("spring"), "event": "Order Completed", "properties": map[string]any{"total": 80}, "context": campaign("newsletter", "spring")},
		{"type": "track", "messageId": "m4-" + run, "userId": user("small"), "event": "Order Completed", "properties": map[string]any{"total": 20}, "context": campaign("newsletter", "black_friday")},
		{"type": "track", "messageId": "m5-" + run, "userId": user("plain"), "event": "Order Completed", "properties": map[string]any{"total": 80}},
		{"type": "track", "messageId": "m6-" + run, "userId": user("proxied"), "event": "Signed Up", "context": map[string]any{"ip": "198.51.100.4"}},
		{"type": "track", "messageId": "m7-" + run, "userId": user("local"), "event": "Signed Up"},
		{"type": "track", "messageId": "m8-" + run, "userId": user("bought"), "event": "Checkout Started"},
		{"type": "track", "messageId": "m9-" + run, "userId": user("bought"), "event": "Order Completed", "properties": map[string]any{"total": 10}, "context": campaign("newsletter", "spring")},
		{"type": "track", "messageId": "m10-" + run, "userId": user("elsewhere"), "event": "Checkout Started"},
		{"type": "track", "messageId": "m11-" + run, "userId": user("elsewhere"), "event": "Order Completed", "properties": map[string]any{"total": 10}, "context": campaign("ads", "spring")},
	}
	if code, body := p.post(t, "/v1/batch", "server-demo-key", map[string]any{"batch": batch}); code != 200 {
		t.Fatalf("batch: %d %v", code, body)
	}
	// The browser: page calls on /v1/p, text/plain, writeKey in the body,
	// from another origin, with the page and locale analytics.js sends.
	for i, page := range []struct{ user, path, locale string }{
		{user("de"), "/pricing", "de-DE"},
		{user("fr"), "/pricing", "fr-FR"},
		{user("deep"), "/pricing/enterprise", "de-AT"},
	} {
		body := fmt.Sprintf(`{"type":"page","messageId":"p%d-%s","anonymousId":%q,"name":"Pricing","writeKey":"web-demo-key",`+
			`"context":{"page":{"path":%q,"url":"http://localhost:3000%s","referrer":"https://search.example/"},"locale":%q,"library":{"name":"analytics.js","version":"next-1.81.0"}}}`,
			i, run, page.user, page.path, page.path, page.locale)
		req, _ := http.NewRequest(http.MethodPost, p.http.URL+"/v1/p", bytes.NewReader([]byte(body)))
		req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
		req.Header.Set("Origin", "http://localhost:3000")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("page %d: %d", i, resp.StatusCode)
		}
	}
	const sent = 11 + 3
	testenv.Eventually(t, 2*time.Minute, "events loaded into the feed", func() (bool, string) {
		n := queryUint(t, conn, "SELECT count() FROM trigger_event_feed")
		return n == sent, fmt.Sprint(n)
	})
	fired := []string{
		"local_signups " + user("local"),
		"newsletter_buyers " + user("nl"),
		"pricing_visitors anon:" + user("de"),
	}
	want := append([]string{"checkout_abandon " + user("bought"), "checkout_abandon " + user("elsewhere")}, fired...)

	// The backfill qualifies the window with the poller's matcher.
	q := &backfill.CampaignQualifier{Conn: conn, Campaigns: campaigns, Log: testenv.Logger(t)}
	found, _, err := q.Unledgered(ctx, backfill.Window{From: from, To: time.Now().Add(time.Second)}, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range found {
		got = append(got, f.CampaignID+" "+f.CustomerID)
	}
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Errorf("backfill qualifies\n%v\nwant\n%v", got, want)
	}

	// The unless campaign's follow-up filter reads the context: only the
	// customer whose order came from the newsletter bought.
	var pending []trigger.Qualification
	for _, f := range found {
		if f.CampaignID == "checkout_abandon" {
			pending = append(pending, trigger.Qualification{CampaignID: f.CampaignID, CustomerID: f.CustomerID, Episode: f.Episode,
				MessageID: f.MessageID, EventTimeMs: f.EventTimeMs})
		}
	}
	byID := map[string]*trigger.Campaign{}
	for _, c := range campaigns {
		byID[c.ID] = c
	}
	follow, err := trigger.FollowUps(ctx, conn, byID, pending, uint64(time.Now().Add(2*time.Hour).UnixMilli()))
	if err != nil {
		t.Fatal(err)
	}
	for _, pq := range pending {
		if wantFound := pq.CustomerID == user("bought"); follow[pq.Key()] != wantFound {
			t.Errorf("follow-up of %s: %v, want %v", pq.CustomerID, follow[pq.Key()], wantFound)
		}
	}

	// The poller reads the feed and fires the same qualifications. (It
	// holds the unless campaign's for its hour, and its position with them.)
	cfg := trigger.DefaultConfig()
	cfg.Sharding, cfg.MetricsAddr, cfg.StartFrom = "none", "", "earliest"
	cfg.PollInterval, cfg.CursorInterval, cfg.Overlap = 20*time.Millisecond, 100*time.Millisecond, time.Second
	cfg.ShutdownTimeout, cfg.SecretOverride = 5*time.Second, secret.String()
	poller, err := assembly.NewPoller(cfg, campaigns[1:], assembly.Env{Conn: conn, Kafka: p.br.Config, Seeds: p.br.Seeds, Log: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	pctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- poller.Run(pctx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("poller: %v", err)
		}
	}()
	// A saved position past a row means the row was decided. A last event
	// loaded after the others sits past them all; once the position
	// reaches it, the ledger holds every decision on the others.
	last := queryUint(t, conn, "SELECT max(ingest_time_ms) FROM trigger_event_feed")
	if code, body := p.post(t, "/v1/track", "server-demo-key", map[string]any{"messageId": "end-" + run, "userId": user("end"), "event": "Signed Up"}); code != 200 {
		t.Fatalf("last event: %d %v", code, body)
	}
	testenv.Eventually(t, 2*time.Minute, "the last event loaded", func() (bool, string) {
		n := queryUint(t, conn, "SELECT count() FROM trigger_event_feed")
		return n == sent+1, fmt.Sprint(n)
	})
	end := queryUint(t, conn, "SELECT max(ingest_time_ms) FROM trigger_event_feed")
	if end <= last {
		t.Fatalf("the last event was loaded at %d, not after the others (%d)", end, last)
	}
	// The position says the rows before it were decided; the last event's
	// own entry says it was decided too.
	testenv.Eventually(t, 2*time.Minute, "the poller at the last event", func() (bool, string) {
		n := queryUint(t, conn, "SELECT max(position_ms) FROM trigger_cursors FINAL WHERE cursor_id = 'events'")
		fires := queryUint(t, conn, "SELECT uniqExact(ledger_key) FROM send_ledger WHERE customer_id = ?", user("end"))
		return n >= end && fires > 0, fmt.Sprint("position ", n, ", last event at ", end, ", its ledger entries ", fires)
	})
	fired = append(fired, "local_signups "+user("end"))
	sort.Strings(fired)
	got = got[:0]
	rows, err := conn.Query(ctx, "SELECT DISTINCT campaign_id, customer_id FROM send_ledger ORDER BY campaign_id, customer_id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var c, cust string
		if err := rows.Scan(&c, &cust); err != nil {
			t.Fatal(err)
		}
		got = append(got, c+" "+cust)
	}
	if !slices.Equal(got, fired) {
		t.Errorf("the poller's ledger holds\n%v\nwant\n%v", got, fired)
	}
	// The webhook carries the triggering event's context.
	var body []byte
	testenv.Eventually(t, 2*time.Minute, "the newsletter_buyers webhook", func() (bool, string) {
		for _, ds := range hook.Deliveries() {
			for _, d := range ds {
				if d.Path == "/newsletter_buyers" {
					body = d.Body
					return true, ""
				}
			}
		}
		return false, fmt.Sprint(len(hook.Deliveries()), " deliveries")
	})
	var fire struct {
		Data struct {
			Trigger struct {
				Properties map[string]any `json:"properties"`
				Context    struct {
					Campaign map[string]string `json:"campaign"`
				} `json:"context"`
			} `json:"trigger"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &fire); err != nil || fire.Data.Trigger.Context.Campaign["name"] != "black_friday" || fire.Data.Trigger.Properties["total"] != 80.0 {
		t.Errorf("the webhook's trigger: %v %s", err, body)
	}
}
