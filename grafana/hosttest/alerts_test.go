package hosttest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"
	"github.com/grafana/grafana-plugin-sdk-go/genproto/pluginv2"

	"github.com/tideline-dev/tideline/grafana/alerts"
	"github.com/tideline-dev/tideline/grafana/internal/seed"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
)

// TestAlertRulesFireOnIncidentOnly evaluates every provisioned alert rule
// the way Grafana's alerting does: its query, read from the provisioning
// file, goes to the running plugin over gRPC with the rule's relative time
// range, and its threshold is applied to each labelled number of the
// answer. On a healthy pipeline no rule fires, though each gets numbers; on
// one with the incident's symptoms each rule fires for exactly the lane,
// campaign or audience that has the symptom.
func TestAlertRulesFireOnIncidentOnly(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "provisioning", "alerting", alerts.FileName))
	if err != nil {
		t.Fatalf("%v (run make dashboards)", err)
	}
	var file alerts.File
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	h := start(t)
	now := time.Now()
	healthy := pipelineState(t, now, false)
	incident := pipelineState(t, now, true)
	want := map[string][]string{
		"tideline-lane-stalled":          {`lane=server`},
		"tideline-consumer-lag":          {`lane=server`},
		"tideline-dead-letter-rate":      {`lane=web`},
		"tideline-delivery-failures":     {`campaign_id=camp_0`},
		"tideline-delivery-dead-letters": {`campaign_id=camp_1`},
		"tideline-evaluator-lag":         {`audience_id=aud_0, held_by=server`},
	}
	rules := 0
	for _, g := range file.Groups {
		for _, rule := range g.Rules {
			rules++
			t.Run(rule.UID, func(t *testing.T) {
				firing, samples := evaluate(t, h, pluginContext(t, 2, healthy), rule, now)
				if len(firing) > 0 {
					t.Errorf("healthy pipeline: fires for %v", firing)
				}
				if samples == 0 {
					t.Error("healthy pipeline: no numbers to evaluate (alerting would see no data, not a healthy pipeline)")
				}
				firing, _ = evaluate(t, h, pluginContext(t, 3, incident), rule, now)
				if fmt.Sprint(firing) != fmt.Sprint(want[rule.UID]) {
					t.Errorf("incident: fires for %v, want %v", firing, want[rule.UID])
				}
			})
		}
	}
	if rules != len(want) {
		t.Errorf("%d rules evaluated, %d expected", rules, len(want))
	}
}

// evaluate runs rule's query and threshold at now and returns the label
// sets that fire, sorted, and how many numbers the query answered.
func evaluate(t *testing.T, h *host, pc *pluginv2.PluginContext, rule alerts.Rule, now time.Time) ([]string, int) {
	t.Helper()
	steps := map[string]alerts.Query{}
	for _, q := range rule.Data {
		steps[q.RefID] = q
	}
	var th alerts.Threshold
	if err := json.Unmarshal(steps[rule.Condition].Model, &th); err != nil || len(th.Conditions) != 1 {
		t.Fatalf("condition %s: %v", rule.Condition, err)
	}
	q := steps[th.Expression]
	if q.DatasourceUID != alerts.DatasourceUID || q.RelativeTimeRange == nil {
		t.Fatalf("threshold over %q, not a tideline query", th.Expression)
	}
	var model struct {
		QueryType string `json:"queryType"`
	}
	if err := json.Unmarshal(q.Model, &model); err != nil {
		t.Fatal(err)
	}
	from := now.Add(-time.Duration(q.RelativeTimeRange.From) * time.Second)
	to := now.Add(-time.Duration(q.RelativeTimeRange.To) * time.Second)
	fs, r := h.queryData(t, pc, &pluginv2.DataQuery{
		RefId: q.RefID, QueryType: model.QueryType, Json: q.Model, MaxDataPoints: 43200, IntervalMS: 1000,
		TimeRange: &pluginv2.TimeRange{FromEpochMS: from.UnixMilli(), ToEpochMS: to.UnixMilli()},
	})
	if r.Error != "" {
		t.Fatalf("query %s: %s", q.Model, r.Error)
	}
	var firing []string
	samples := 0
	for _, f := range fs {
		if f.Meta == nil || f.Meta.Type != data.FrameTypeNumericMulti {
			t.Fatalf("frame %q is not numeric-multi: %+v", f.Name, f.Meta)
		}
		for _, field := range f.Fields {
			if field.Len() != 1 {
				t.Fatalf("field %s has %d values, want one number", field.Name, field.Len())
			}
			v, ok := field.ConcreteAt(0)
			if !ok {
				continue
			}
			samples++
			fires, err := th.Conditions[0].Evaluator.Fires(v.(float64))
			if err != nil {
				t.Fatal(err)
			}
			if fires {
				firing = append(firing, field.Labels.String())
			}
		}
	}
	slices.Sort(firing)
	return firing, samples
}

// pipelineState is a database whose pipeline, as of now, is healthy or
// shows the incident's symptoms: the server lane stalled for 20 minutes
// with a backlog, the web lane dead-lettering 3 records a minute, camp_0's
// deliveries failing, one of camp_1's given up, and aud_0 complete only up
// to the stalled lane's watermark. The healthy state has each signal below
// its threshold but not zero, so a rule that fires on any value would fail.
func pipelineState(t *testing.T, now time.Time, incident bool) (cfg chdb.Config) {
	t.Helper()
	cfg = testenv.ClickHouseConfig(t)
	conn := testenv.ClickHouseWith(t, cfg)
	at := func(ago time.Duration) uint64 { return uint64(now.Add(-ago).UnixMilli()) }
	d := &seed.Data{
		Audiences: []seed.Entity{{ID: "aud_0", Name: "Audience 0", Active: true}, {ID: "aud_1", Name: "Audience 1", Active: true}},
		Campaigns: []seed.Entity{{ID: "camp_0", Name: "Campaign 0", Active: true, Audience: "aud_0"}, {ID: "camp_1", Name: "Campaign 1", Active: true, Audience: "aud_1"}},
	}
	for _, lane := range seed.Lanes {
		for p := int32(0); p < 2; p++ {
			pr := seed.Progress{Lane: lane, Topic: "events." + lane, Partition: p, Committed: 5000, High: 5040, WatermarkMs: at(2 * time.Second), UpdatedAtMs: at(time.Second)}
			if incident && lane == "server" {
				pr.High, pr.WatermarkMs = 5000+150_000, at(20*time.Minute)
			}
			d.Progress = append(d.Progress, pr)
		}
	}
	deadLetters := 5 // 0.5 a minute over the rule's 10 minutes
	if incident {
		deadLetters = 30
	}
	for i := 0; i < deadLetters; i++ {
		d.DeadLetters = append(d.DeadLetters, seed.DeadLetter{Topic: "events.dlq", Offset: int64(i), Lane: "web", Reason: "missing field", AtMs: at(time.Duration(i+1) * 15 * time.Second)})
	}
	d.DeadLetters = append(d.DeadLetters, seed.DeadLetter{Topic: "events.dlq", Offset: 1000, Lane: "server", Reason: "missing field", AtMs: at(2 * time.Hour)})
	failed := 3
	if incident {
		failed = 8
	}
	for i := 0; i < 30; i++ {
		for _, cp := range d.Campaigns {
			l := seed.Ledger{Key: fmt.Sprintf("%s|cust_%d|1", cp.ID, i), CampaignID: cp.ID, CustomerID: fmt.Sprintf("cust_%d", i), AudienceID: cp.Audience, Episode: "1",
				Decision: "fire", Reason: "fresh", QualifiedEventTimeMs: at(6 * time.Minute), QualifiedIngestTimeMs: at(6 * time.Minute),
				DerivedAtMs: at(5 * time.Minute), DetectedAtMs: at(5 * time.Minute), DeliveryState: "delivered", SentAtMs: at(4 * time.Minute), Lane: "web"}
			if cp.ID == "camp_0" && i < failed {
				l.DeliveryState, l.SentAtMs = "failed", 0
			}
			d.Ledger = append(d.Ledger, l)
		}
	}
	// camp_0's given-up delivery was redelivered since, and camp_1's one
	// was given up before the rule's hour: neither counts.
	d.DeliveryDeadLetters = []seed.DeliveryDeadLetter{
		{LedgerKey: "camp_0|cust_0|1", CampaignID: "camp_0", CustomerID: "cust_0", DestinationID: "d0", State: "dead", DeadAtMs: at(20 * time.Minute), UpdatedAtMs: at(20 * time.Minute)},
		{LedgerKey: "camp_0|cust_0|1", CampaignID: "camp_0", CustomerID: "cust_0", DestinationID: "d0", State: "redelivered", DeadAtMs: at(20 * time.Minute), UpdatedAtMs: at(10 * time.Minute)},
		{LedgerKey: "camp_1|cust_9|1", CampaignID: "camp_1", CustomerID: "cust_9", DestinationID: "d1", State: "dead", DeadAtMs: at(2 * time.Hour), UpdatedAtMs: at(2 * time.Hour)},
	}
	if incident {
		d.DeliveryDeadLetters = append(d.DeliveryDeadLetters, seed.DeliveryDeadLetter{
			LedgerKey: "camp_1|cust_3|1", CampaignID: "camp_1", CustomerID: "cust_3", DestinationID: "d1", State: "dead", DeadAtMs: at(10 * time.Minute), UpdatedAtMs: at(10 * time.Minute)})
	}
	for _, a := range d.Audiences {
		c := seed.Completeness{AudienceID: a.ID, Lanes: []string{"server", "web"}, Direction: "rising", HeldBy: "server", CompleteMs: at(3 * time.Second), EagerMs: at(2 * time.Second), UpdatedAtMs: at(time.Second)}
		if incident && a.ID == "aud_0" {
			c.CompleteMs = at(20 * time.Minute)
		}
		d.Completeness = append(d.Completeness, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := d.InsertState(ctx, conn); err != nil {
		t.Fatal(err)
	}
	return cfg
}
