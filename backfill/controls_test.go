package backfill_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/backfill"
	"github.com/tideline-dev/tideline/internal/testenv"
	"github.com/tideline-dev/tideline/trigger"
)

// TestPlanPreviewsControls checks that the plan's preview of late
// qualifications applies the campaign-safety controls as apply's decisions
// will: a suppressed customer is skipped, the global cap skips the second
// campaign's fire, the fires decided in quiet hours are counted as
// deferred, and the throttle's release time is estimated for the rest.
func TestPlanPreviewsControls(t *testing.T) {
	conn := testenv.ClickHouse(t)
	ctx := context.Background()
	now := time.Now().UTC()
	// "nightly" is quiet for every customer (default zone UTC) from an hour
	// ago to an hour from now; "loud" has no quiet hours.
	policy := &trigger.Policy{Caps: []trigger.GlobalCap{{Max: 1, Per: 24 * time.Hour}}, File: "_policy.yaml"}
	parse := func(def string) *trigger.Campaign {
		c, err := trigger.ParseCampaign(t.Name()+".yaml", []byte(def))
		if err != nil {
			t.Fatal(err)
		}
		c.Policy = policy
		return c
	}
	loud := parse(`id: loud
trigger: {audience_entered: loud_audience}
staleness: {budget: 15m, late: fire_late}
reeligible_after: 0
deliver:
  webhook: {url: "http://127.0.0.1:1/loud", secret_env: LOUD_SECRET, throttle: {rate: 10, burst: 5}}
`)
	nightly := parse(fmt.Sprintf(`id: nightly
trigger: {audience_entered: nightly_audience}
staleness: {budget: 15m, late: fire_late}
reeligible_after: 0
quiet_hours: {from: "%s", to: "%s", policy: defer}
deliver: {kafka_topic: nightly}
`, now.Add(-time.Hour).Format("15:04:05"), now.Add(time.Hour).Format("15:04:05")))

	batch, err := conn.PrepareBatch(ctx, "INSERT INTO audience_transitions (audience_id, customer_id, episode, kind, event_time_ms, ingest_time_ms, derived_at_ms, message_id, lane, derived_at)")
	if err != nil {
		t.Fatal(err)
	}
	at := now.Add(-3 * time.Hour)
	add := func(audience, customer string, ev time.Time) {
		ms := uint64(ev.UnixMilli())
		if err := batch.Append(audience, customer, uint32(1), "entered", ms, ms, ms, "", "server", ev); err != nil {
			t.Fatal(err)
		}
	}
	// loud: c00 to c39. nightly: c30 to c44, a minute later, so for c30 to
	// c39 loud's fire is decided first and nightly's is over the global cap
	// (one send a day over all campaigns). c39 is suppressed.
	for i := range 40 {
		add("loud_audience", fmt.Sprintf("c%02d", i), at)
	}
	for i := 30; i < 45; i++ {
		add("nightly_audience", fmt.Sprintf("c%02d", i), at.Add(time.Minute))
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
	sb, err := conn.PrepareBatch(ctx, "INSERT INTO suppressions (customer_id, active, reason, source, suppressed_at_ms, updated_at_ms)")
	if err != nil {
		t.Fatal(err)
	}
	if err := sb.Append("c39", uint8(1), "complaint", "operator", uint64(1), uint64(1)); err != nil {
		t.Fatal(err)
	}
	if err := sb.Send(); err != nil {
		t.Fatal(err)
	}
	q := &backfill.CampaignQualifier{Conn: conn, Campaigns: []*trigger.Campaign{loud, nightly}, Log: testenv.Logger(t)}
	_, findings, err := q.Unledgered(ctx, backfill.Window{From: at.Add(-time.Minute), To: now}, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	by := map[string]backfill.CampaignFinding{}
	for _, f := range findings {
		by[f.CampaignID] = f
	}
	l, n := by["loud"], by["nightly"]
	if l.Reasons["skip:suppressed"] != 1 || l.Reasons["fire_late:late"] != 39 {
		t.Errorf("loud: reasons %v, want 39 late fires and 1 suppressed", l.Reasons)
	}
	if n.Reasons["skip:capped_global"] != 9 || n.Reasons["skip:suppressed"] != 1 || n.Reasons["fire_late:late"] != 5 {
		t.Errorf("nightly: reasons %v, want 9 capped_global, 1 suppressed, 5 late fires", n.Reasons)
	}
	// It is quiet for every customer now: nightly's fires are deferred.
	if n.Deferred != 5 || n.Throttle != nil {
		t.Errorf("nightly: %d deferred (want 5), throttle %+v (want none: Kafka only)", n.Deferred, n.Throttle)
	}
	if th := l.Throttle; th == nil || th.Fires != 39 || th.Rate != 10 || th.ReleaseSeconds != 3.4 {
		t.Errorf("loud throttle estimate %+v, want 39 fires at 10/s, burst 5: 3.4 s", th)
	}
}
