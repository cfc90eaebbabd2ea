package alerts

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/tideline-dev/tideline/grafana/query"
)

// TestCheckedInJSONIsGenerated fails when the provisioned rules differ
// from what the code builds: change the code, then run make dashboards.
func TestCheckedInJSONIsGenerated(t *testing.T) {
	f, err := Rules()
	if err != nil {
		t.Fatal(err)
	}
	want, err := JSON(f)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join("..", "provisioning", "alerting", FileName))
	if err != nil {
		t.Fatalf("%v (run make dashboards)", err)
	}
	if string(got) != string(want) {
		t.Error("grafana/provisioning/alerting/" + FileName + " is not what the code builds: run make dashboards")
	}
}

// TestRulesWellFormed: unique uids; each rule's condition is a threshold
// over one alert_metric query of the tideline data source, with a metric
// the backend serves and a time range to read; each links to a panel.
func TestRulesWellFormed(t *testing.T) {
	f, err := Rules()
	if err != nil {
		t.Fatal(err)
	}
	uids := map[string]bool{}
	metrics := map[query.Metric]bool{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if uids[r.UID] || r.UID == "" || len(r.UID) > 40 {
				t.Errorf("rule %q: uid %q empty, too long or not unique", r.Title, r.UID)
			}
			uids[r.UID] = true
			byRef := map[string]Query{}
			for _, q := range r.Data {
				byRef[q.RefID] = q
			}
			cond, ok := byRef[r.Condition]
			if !ok || cond.DatasourceUID != exprUID {
				t.Fatalf("rule %s: condition %q is not an expression of the rule", r.UID, r.Condition)
			}
			var th Threshold
			if err := json.Unmarshal(cond.Model, &th); err != nil || th.Type != "threshold" || len(th.Conditions) != 1 {
				t.Fatalf("rule %s: condition model %s: %v", r.UID, cond.Model, err)
			}
			if _, err := th.Conditions[0].Evaluator.Fires(0); err != nil {
				t.Errorf("rule %s: %v", r.UID, err)
			}
			q, ok := byRef[th.Expression]
			if !ok || q.DatasourceUID != DatasourceUID || q.RelativeTimeRange == nil || q.RelativeTimeRange.From <= 0 {
				t.Fatalf("rule %s: threshold over %q, not a tideline query with a time range", r.UID, th.Expression)
			}
			m, err := query.ParseModel(q.Model, "")
			if err != nil || m.QueryType != query.AlertMetric || !m.Metric.Valid() {
				t.Errorf("rule %s: query %s: %v", r.UID, q.Model, err)
			}
			metrics[m.Metric] = true
			if r.DashboardUID == "" || r.PanelID == 0 || r.Annotations["summary"] == "" {
				t.Errorf("rule %s links to no panel or has no summary", r.UID)
			}
		}
	}
	for _, m := range []query.Metric{query.WatermarkAge, query.ConsumerLag, query.DeadLetterRate, query.DeliveryFailures, query.DeliveryDeadLetters, query.EvaluatorLag} {
		if !metrics[m] {
			t.Errorf("no rule alerts on %s", m)
		}
	}
}
