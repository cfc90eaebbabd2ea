package trigger

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/component"
	"github.com/tideline-dev/tideline/internal/testenv"
	"github.com/tideline-dev/tideline/materialize"
)

// TestPreviewImpactEqualsFires previews an audience that is not applied
// yet and the impact of its entries on a campaign that triggers on it:
// fresh entries to send, entries older than the staleness budget to skip,
// and a suppressed customer. It then applies the audience, runs the
// evaluator once and the poller against a webhook receiver, and checks
// that the fires received and the skips recorded are what the preview said.
func TestPreviewImpactEqualsFires(t *testing.T) {
	ctx := context.Background()
	conn := testenv.ClickHouse(t)
	log := testenv.Logger(t)
	h := newHook(t)
	t.Setenv("IMPACT_SECRET", h.Secret.String())
	c := campaign(t, fmt.Sprintf(`
id: gold_welcome
trigger: {audience_entered: gold_now}
staleness: {budget: 30m, late: skip}
reeligible_after: 0
deliver:
  webhook: {url: %s/welcome, secret_env: IMPACT_SECRET}`, h.URL))
	other := campaign(t, fmt.Sprintf(`
id: other
trigger: {audience_entered: someone_else}
staleness: {budget: 30m, late: skip}
reeligible_after: 0
deliver:
  webhook: {url: %s/other, secret_env: IMPACT_SECRET}`, h.URL))

	now := time.Now()
	identify := func(id, user, plan string, at time.Time) *ingest.Event {
		traits, _ := json.Marshal(map[string]any{"plan": plan})
		return &ingest.Event{MessageID: id, Type: ingest.TypeIdentify, UserID: user, Traits: traits, Timestamp: at.UTC(), ReceivedAt: at.UTC()}
	}
	var evs []*ingest.Event
	for i := range 6 {
		evs = append(evs, identify(fmt.Sprintf("fresh-%d", i), fmt.Sprintf("f%d", i), "gold", now.Add(-time.Duration(i+1)*time.Minute)))
	}
	for i := range 4 {
		evs = append(evs, identify(fmt.Sprintf("stale-%d", i), fmt.Sprintf("s%d", i), "gold", now.Add(-time.Duration(i+2)*time.Hour)))
	}
	evs = append(evs, identify("silver-0", "x0", "silver", now.Add(-time.Minute)),
		unsubscribe("unsub-f0", "f0", now.Add(-10*time.Hour)))
	insertEvents(t, conn, evs)
	if err := ingest.InsertProgress(ctx, conn, []ingest.Progress{
		{Lane: "web", Topic: "events.web", WatermarkMs: chdb.NowMs()},
		{Lane: "server", Topic: "events.server", WatermarkMs: chdb.NowMs()},
	}, chdb.NowMs()); err != nil {
		t.Fatal(err)
	}

	mc := materialize.DefaultConfig()
	mc.TouchSettle = time.Second
	aud, err := materialize.ParseAudience("gold_now.yaml", []byte("id: gold_now\nname: Gold plan\nwhen:\n  attribute: plan\n  equals: gold\n"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := materialize.Preview(ctx, conn, mc, aud, 3, log)
	if err != nil {
		t.Fatal(err)
	}
	impacts, err := PreviewImpact(ctx, conn, []*Campaign{c, other}, p, []string{"web", "server"}, log)
	if err != nil {
		t.Fatal(err)
	}
	if len(impacts) != 1 || impacts[0].CampaignID != c.ID {
		t.Fatalf("impacts %+v, want one for %s", impacts, c.ID)
	}
	im := impacts[0]
	if p.Size != 10 || im.Qualifications != 10 || im.Sends != 5 || im.Skipped[ReasonStale] != 4 || im.Skipped[ReasonSuppressed] != 1 {
		t.Errorf("preview: size %d, impact %+v; want 10 members, 5 sends, 4 stale, 1 suppressed", p.Size, im)
	}

	plan, err := materialize.Compile([]*materialize.Audience{aud}, materialize.AttributeSettings{Declared: mc.Attributes})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := materialize.Apply(ctx, conn, plan, 0, log); err != nil {
		t.Fatal(err)
	}
	ev, err := materialize.NewEvaluator(mc, component.Env{Conn: conn, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ev.EvaluateOnce(ctx); err != nil {
		t.Fatal(err)
	}
	startPoller(t, testConfig(), []*Campaign{c, other}, conn, broker.Config{}, nil)
	testenv.Eventually(t, 30*time.Second, "every qualification decided and every fire delivered", func() (bool, string) {
		es := ledgerState(t, conn)
		open := 0
		for _, e := range es {
			if e.Open() {
				open++
			}
		}
		return len(es) == im.Qualifications && open == 0, describe(es)
	})
	skipped := map[string]int{}
	for _, e := range ledgerState(t, conn) {
		if !e.Fires() {
			skipped[e.Reason]++
		}
	}
	if got := len(h.Accepted()); got != im.Sends || fmt.Sprint(skipped) != fmt.Sprint(im.Skipped) {
		t.Errorf("the poller sent %d and skipped %v; the preview said %d sends and %v skips", got, skipped, im.Sends, im.Skipped)
	}
}
