package alerts

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/tideline-dev/tideline/grafana/query"
)

// File is a Grafana alerting provisioning file (apiVersion 1).
type File struct {
	APIVersion int     `json:"apiVersion"`
	Groups     []Group `json:"groups"`
}

// Group is a rule group: its rules are evaluated together every Interval.
type Group struct {
	OrgID    int64  `json:"orgId"`
	Name     string `json:"name"`
	Folder   string `json:"folder"`
	Interval string `json:"interval"`
	Rules    []Rule `json:"rules"`
}

// Rule is one provisioned alert rule.
type Rule struct {
	UID          string            `json:"uid"`
	Title        string            `json:"title"`
	Condition    string            `json:"condition"`
	Data         []Query           `json:"data"`
	DashboardUID string            `json:"dashboardUid,omitempty"`
	PanelID      int64             `json:"panelId,omitempty"`
	NoDataState  string            `json:"noDataState"`
	ExecErrState string            `json:"execErrState"`
	For          string            `json:"for"`
	Annotations  map[string]string `json:"annotations"`
	Labels       map[string]string `json:"labels"`
	IsPaused     bool              `json:"isPaused"`
}

// Query is a step of a rule: a data source query or an expression.
type Query struct {
	RefID             string             `json:"refId"`
	RelativeTimeRange *RelativeTimeRange `json:"relativeTimeRange,omitempty"`
	DatasourceUID     string             `json:"datasourceUid"`
	Model             json.RawMessage    `json:"model"`
}

// RelativeTimeRange is the range a query reads, in seconds before the
// evaluation.
type RelativeTimeRange struct {
	From int64 `json:"from"`
	To   int64 `json:"to"`
}

// Threshold is the model of a threshold expression.
type Threshold struct {
	RefID      string               `json:"refId"`
	Type       string               `json:"type"`
	Expression string               `json:"expression"`
	Datasource map[string]string    `json:"datasource"`
	Conditions []ThresholdCondition `json:"conditions"`
}

// ThresholdCondition is the comparison of a threshold expression.
type ThresholdCondition struct {
	Evaluator Evaluator `json:"evaluator"`
}

// Evaluator compares each value with Params: "gt" fires above Params[0],
// "lt" below it.
type Evaluator struct {
	Type   string    `json:"type"`
	Params []float64 `json:"params"`
}

// Fires reports whether v meets the evaluator, as Grafana's threshold
// expression decides it.
func (e Evaluator) Fires(v float64) (bool, error) {
	if len(e.Params) == 0 {
		return false, fmt.Errorf("evaluator %s has no parameter", e.Type)
	}
	switch e.Type {
	case "gt":
		return v > e.Params[0], nil
	case "lt":
		return v < e.Params[0], nil
	}
	return false, fmt.Errorf("evaluator type %q is not one tideline's rules use", e.Type)
}

// exprUID is the data source uid of Grafana's server-side expressions.
const exprUID = "__expr__"

// DatasourceUID is the uid provisioning gives the tideline data source
// (grafana/provisioning/datasources).
const DatasourceUID = "tideline"

// Folder is the Grafana folder of the rules, the dashboards' folder.
const Folder = "tideline"

// Where the rules link to: the panel showing what fired.
const (
	pipelineDashboard = "tideline-pipeline-health"
	audienceDashboard = "tideline-audience-qualification"
)

// Thresholds of the rules.
const (
	// StalledLaneMs: a lane's watermark further behind now than this is
	// stalled. Idle partitions advance their watermark every few seconds,
	// so a healthy lane, busy or quiet, stays well under it.
	StalledLaneMs = 5 * 60 * 1000
	// ConsumerLagRecords: a backlog larger than this is not draining.
	ConsumerLagRecords = 100_000
	// DeadLettersPerMinute: bad input beyond this rate is an integration
	// that broke, not a stray malformed event.
	DeadLettersPerMinute = 1
	// DeliveryFailures: more failed deliveries of one campaign than this
	// in 15 minutes is an endpoint in trouble.
	DeliveryFailures = 5
	// EvaluatorLagMs: an audience complete only up to longer ago than this
	// is deciding entries and exits late.
	EvaluatorLagMs = 10 * 60 * 1000
)

// Rules is the provisioning file of tideline's alert rules.
func Rules() (File, error) {
	type spec struct {
		uid, title, summary, description string
		metric                           query.Metric
		rangeSeconds                     int64
		evaluator                        Evaluator
		forDuration, noData              string
		dashboard                        string
		panel                            int64
	}
	specs := []spec{
		{
			uid: "tideline-lane-stalled", title: "Lane stalled", metric: query.WatermarkAge, rangeSeconds: 600,
			summary:     "Lane {{ $labels.lane }}: data is complete only up to {{ $values.A.Value }} ms ago",
			description: "The lane's watermark stopped advancing: audiences fed by it hold back entries and exits that late data could change. Check the loader and Kafka (tideline status), then plan a backfill for the window.",
			evaluator:   Evaluator{"gt", []float64{StalledLaneMs}}, forDuration: "2m", noData: "NoData",
			dashboard: pipelineDashboard, panel: 3,
		},
		{
			uid: "tideline-consumer-lag", title: "Consumer lag", metric: query.ConsumerLag, rangeSeconds: 600,
			summary:     "Lane {{ $labels.lane }}: {{ $values.A.Value }} records in Kafka not yet loaded",
			description: "The loader is not keeping up with the lane: add consumer-group members or partitions, or find what slows ClickHouse inserts.",
			evaluator:   Evaluator{"gt", []float64{ConsumerLagRecords}}, forDuration: "10m", noData: "NoData",
			dashboard: pipelineDashboard, panel: 2,
		},
		{
			uid: "tideline-dead-letter-rate", title: "Dead-letter rate", metric: query.DeadLetterRate, rangeSeconds: 600,
			summary:     "Lane {{ $labels.lane }}: {{ $values.A.Value }} records dead-lettered per minute",
			description: "Input is being rejected: the dead_letters table has each record's reason and raw payload.",
			evaluator:   Evaluator{"gt", []float64{DeadLettersPerMinute}}, forDuration: "5m", noData: "OK",
			dashboard: pipelineDashboard, panel: 5,
		},
		{
			uid: "tideline-delivery-failures", title: "Delivery failures", metric: query.DeliveryFailures, rangeSeconds: 900,
			summary:     "Campaign {{ $labels.campaign_id }}: {{ $values.A.Value }} deliveries failed in 15 minutes",
			description: "Webhook deliveries of the campaign fail, die or meet a disabled endpoint: check the destination.",
			evaluator:   Evaluator{"gt", []float64{DeliveryFailures}}, forDuration: "5m", noData: "OK",
			dashboard: audienceDashboard, panel: 7,
		},
		{
			uid: "tideline-delivery-dead-letters", title: "Delivery dead letters", metric: query.DeliveryDeadLetters, rangeSeconds: 3600,
			summary:     "Campaign {{ $labels.campaign_id }}: {{ $values.A.Value }} deliveries given up in the last hour",
			description: "Deliveries exhausted their retries and wait in trigger_dead_letters: fix the destination, then tideline trigger redeliver.",
			evaluator:   Evaluator{"gt", []float64{0}}, forDuration: "0s", noData: "OK",
			dashboard: audienceDashboard, panel: 7,
		},
		{
			uid: "tideline-evaluator-lag", title: "Evaluator lag", metric: query.EvaluatorLag, rangeSeconds: 600,
			summary:     "Audience {{ $labels.audience_id }}: complete only up to {{ $values.A.Value }} ms ago{{ if $labels.held_by }}, held back by lane {{ $labels.held_by }}{{ end }}",
			description: "The audience's entries and exits that late data could change wait for its slowest lane, or the evaluator stopped: check the lane, then the evaluator.",
			evaluator:   Evaluator{"gt", []float64{EvaluatorLagMs}}, forDuration: "5m", noData: "NoData",
			dashboard: pipelineDashboard, panel: 9,
		},
	}
	var rules []Rule
	for _, s := range specs {
		a, err := json.Marshal(query.Model{QueryType: query.AlertMetric, Metric: s.metric})
		if err != nil {
			return File{}, fmt.Errorf("encode %s query: %w", s.uid, err)
		}
		// The query model carries its refId, as Grafana stores it.
		a = append([]byte(`{"refId":"A",`), a[1:]...)
		c, err := json.Marshal(Threshold{RefID: "C", Type: "threshold", Expression: "A",
			Datasource: map[string]string{"type": exprUID, "uid": exprUID},
			Conditions: []ThresholdCondition{{Evaluator: s.evaluator}}})
		if err != nil {
			return File{}, fmt.Errorf("encode %s threshold: %w", s.uid, err)
		}
		rules = append(rules, Rule{
			UID: s.uid, Title: s.title, Condition: "C",
			Data: []Query{
				{RefID: "A", RelativeTimeRange: &RelativeTimeRange{From: s.rangeSeconds}, DatasourceUID: DatasourceUID, Model: a},
				{RefID: "C", DatasourceUID: exprUID, Model: c},
			},
			DashboardUID: s.dashboard, PanelID: s.panel,
			NoDataState: s.noData, ExecErrState: "Error", For: s.forDuration,
			Annotations: map[string]string{"summary": s.summary, "description": s.description},
			Labels:      map[string]string{"service": "tideline", "severity": "page"},
		})
	}
	return File{APIVersion: 1, Groups: []Group{{OrgID: 1, Name: "tideline pipeline", Folder: Folder, Interval: "1m", Rules: rules}}}, nil
}

// FileName is the rules file's name in grafana/provisioning/alerting.
const FileName = "tideline.json"

// JSON is the rules file as written: indented, newline-terminated.
func JSON(f File) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(f); err != nil {
		return nil, fmt.Errorf("encode alert rules: %w", err)
	}
	return b.Bytes(), nil
}
