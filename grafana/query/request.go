package query

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode"
)

// Type names what a panel asks for. The string values are the wire format the
// frontend sends as queryType (grafana/app/src/types.ts).
type Type string

// The query types the backend serves.
const (
	// AudienceSize is members over time, one series per audience.
	AudienceSize Type = "audience_size"
	// Transitions is entries and exits per bucket, one series per audience.
	Transitions Type = "transitions"
	// QualificationLatency is p50/p95/p99 of derive and send latency per lane.
	QualificationLatency Type = "qualification_latency"
	// CampaignOutcomes is fired / late / skipped by reason / failed per campaign.
	CampaignOutcomes Type = "campaign_outcomes"
	// PipelineLag is per lane: consumer lag, watermark age, ingest delay, dead letters.
	PipelineLag Type = "pipeline_lag"
	// BackfillRuns lists backfill runs and their counts.
	BackfillRuns Type = "backfill_runs"
	// LiveQualifications is the recent transitions, with a Grafana Live
	// channel that streams new ones.
	LiveQualifications Type = "live_qualifications"
	// AudienceCompleteness is per audience the time its result is complete
	// to and the lane holding it back (the evaluator's newest record).
	AudienceCompleteness Type = "audience_completeness"
	// AlertMetric is one number per lane, campaign or audience (the
	// Metric of the query), as Grafana's alert rules evaluate.
	AlertMetric Type = "alert_metric"
	// LateEvents is per lane how many events the collector received how
	// long after their event time, by lateness class.
	LateEvents Type = "late_events"
	// IngestDelay is per lane over time the collector-to-ClickHouse delay
	// quantiles and worst case: how the backlog of an incident built up and
	// drained.
	IngestDelay Type = "ingest_delay"
)

// LatenessBoundsMs are the upper bounds of the lateness classes of
// late_events (sql/migrations/0601 classes with the same bounds): class i
// holds lateness under LatenessBoundsMs[i], the last class the rest.
var LatenessBoundsMs = []uint64{10_000, 60_000, 300_000, 1_800_000, 7_200_000, 86_400_000}

// Filters says which filters a query reads; the others it ignores.
type Filters struct{ Audiences, Campaigns, Lanes bool }

// Filters of m's query type (and metric).
func (m Model) Filters() Filters {
	switch m.QueryType {
	case AudienceSize, Transitions, LiveQualifications, AudienceCompleteness:
		return Filters{Audiences: true}
	case CampaignOutcomes:
		return Filters{Campaigns: true}
	case QualificationLatency, PipelineLag, LateEvents, IngestDelay:
		return Filters{Lanes: true}
	case AlertMetric:
		switch m.Metric {
		case WatermarkAge, ConsumerLag, DeadLetterRate:
			return Filters{Lanes: true}
		case DeliveryFailures, DeliveryDeadLetters:
			return Filters{Campaigns: true}
		case EvaluatorLag, AudienceHeldBack:
			return Filters{Audiences: true}
		}
	}
	return Filters{}
}

// Types lists every query type in the order the query editor shows them.
var Types = []Type{AudienceSize, Transitions, QualificationLatency, CampaignOutcomes, PipelineLag, BackfillRuns, LiveQualifications, AudienceCompleteness, AlertMetric, LateEvents, IngestDelay}

// Metric names what an alert_metric query measures.
type Metric string

// The metrics alert rules can evaluate, each a number per label value.
const (
	// WatermarkAge is per lane how far behind now its watermark is, in ms:
	// a stalled lane's grows without bound.
	WatermarkAge Metric = "watermark_age_ms"
	// ConsumerLag is per lane the records in Kafka the loader has not
	// committed.
	ConsumerLag Metric = "consumer_lag"
	// DeadLetterRate is per lane the records dead-lettered per minute over
	// the query's range.
	DeadLetterRate Metric = "dead_letter_rate"
	// DeliveryFailures is per campaign the fires of the range whose
	// delivery failed, died or met a disabled endpoint.
	DeliveryFailures Metric = "delivery_failures"
	// DeliveryDeadLetters is per campaign the deliveries given up in the
	// range and not redelivered since (trigger_dead_letters).
	DeliveryDeadLetters Metric = "delivery_dead_letters"
	// EvaluatorLag is per audience how far behind now the time its result
	// is complete to is, in ms.
	EvaluatorLag Metric = "evaluator_lag_ms"
	// AudienceHeldBack is per audience how far the time it is complete to
	// trails the freshest lane's watermark, in ms: what its slowest lane
	// costs it.
	AudienceHeldBack Metric = "audience_held_back_ms"
)

// Metrics lists every metric in the order the query editor shows them.
var Metrics = []Metric{WatermarkAge, ConsumerLag, DeadLetterRate, DeliveryFailures, DeliveryDeadLetters, EvaluatorLag, AudienceHeldBack}

// EveryModel is every query type once, and alert_metric once per metric:
// every shape of statement the builder makes, for the tests of its callers
// and of the statements themselves.
func EveryModel() []Model {
	var out []Model
	for _, typ := range Types {
		if typ != AlertMetric {
			out = append(out, Model{QueryType: typ})
			continue
		}
		for _, m := range Metrics {
			out = append(out, Model{QueryType: typ, Metric: m})
		}
	}
	return out
}

// Valid reports whether m is a metric the backend serves.
func (m Metric) Valid() bool {
	for _, k := range Metrics {
		if k == m {
			return true
		}
	}
	return false
}

// Valid reports whether t is a query type the backend serves.
func (t Type) Valid() bool {
	for _, k := range Types {
		if k == t {
			return true
		}
	}
	return false
}

// Model is the query JSON the frontend sends (TidelineQuery in types.ts),
// after Grafana interpolated dashboard variables.
type Model struct {
	QueryType Type     `json:"queryType"`
	Audiences []string `json:"audiences,omitempty"`
	Campaigns []string `json:"campaigns,omitempty"`
	Lanes     []string `json:"lanes,omitempty"`
	// Metric is what an alert_metric query measures.
	Metric Metric `json:"metric,omitempty"`
}

// AllValue is the value a dashboard variable sends when "All" is picked:
// a filter holding it filters nothing.
const AllValue = "*"

// ParseModel decodes a query's JSON. queryType, when Grafana passes it
// outside the JSON, wins over the JSON's own.
func ParseModel(raw []byte, queryType string) (Model, error) {
	var m Model
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &m); err != nil {
			return Model{}, fmt.Errorf("decode query JSON: %w", err)
		}
	}
	if queryType != "" {
		m.QueryType = Type(queryType)
	}
	m.Audiences, m.Campaigns, m.Lanes = all(m.Audiences), all(m.Campaigns), all(m.Lanes)
	return m, nil
}

// all is no filter when values holds AllValue.
func all(values []string) []string {
	for _, v := range values {
		if v == AllValue {
			return nil
		}
	}
	return values
}

// Request is one panel query: the model plus the panel's time range and
// interval.
type Request struct {
	Model
	// From and To bound the panel's time range, [From, To).
	From, To time.Time
	// Interval is the bucket width Grafana suggests for the panel.
	Interval time.Duration
	// MaxDataPoints is the most points the panel can draw (0: no limit).
	MaxDataPoints int64
}

// Limits of a request.
const (
	// maxFilterValues bounds the ids of one filter.
	maxFilterValues = 1000
	// maxFilterLen bounds one id.
	maxFilterLen = 256
	// maxBuckets bounds the points of one series: a wider bucket is used
	// rather than drawing more.
	maxBuckets = 5000
	// LiveRows is how many recent qualifications the live panel starts with.
	LiveRows = 200
	// backfillRows bounds the backfill runs listed.
	backfillRows = 500
)

// Validate says what to change in r.
func (r Request) Validate() error {
	if !r.QueryType.Valid() {
		names := make([]string, len(Types))
		for i, t := range Types {
			names[i] = string(t)
		}
		return fmt.Errorf("%w %q: pick one of %s in the query editor", ErrUnknownType, r.QueryType, strings.Join(names, ", "))
	}
	if !r.To.After(r.From) {
		return fmt.Errorf("%w: from %s is not before to %s", ErrTimeRange, r.From.UTC().Format(time.RFC3339), r.To.UTC().Format(time.RFC3339))
	}
	if r.From.UnixMilli() < 0 {
		return fmt.Errorf("%w: from %s is before 1970", ErrTimeRange, r.From.UTC().Format(time.RFC3339))
	}
	if r.QueryType == AlertMetric && !r.Metric.Valid() {
		names := make([]string, len(Metrics))
		for i, m := range Metrics {
			names[i] = string(m)
		}
		return fmt.Errorf("%w %q: pick one of %s", ErrUnknownMetric, r.Metric, strings.Join(names, ", "))
	}
	for _, f := range []struct {
		name   string
		values []string
	}{{"audiences", r.Audiences}, {"campaigns", r.Campaigns}, {"lanes", r.Lanes}} {
		if err := validFilter(f.name, f.values); err != nil {
			return err
		}
	}
	return nil
}

func validFilter(name string, values []string) error {
	if len(values) > maxFilterValues {
		return fmt.Errorf("%w: %d %s selected, at most %d", ErrFilter, len(values), name, maxFilterValues)
	}
	for _, v := range values {
		switch {
		case v == "":
			return fmt.Errorf("%w: an empty value in %s: remove it", ErrFilter, name)
		case len(v) > maxFilterLen:
			return fmt.Errorf("%w: a value in %s is %d bytes long, at most %d", ErrFilter, name, len(v), maxFilterLen)
		case strings.HasPrefix(v, "$"):
			return fmt.Errorf("%w: %s %q is a dashboard variable that was not replaced: define it on the dashboard or pick ids", ErrFilter, name, v)
		case strings.IndexFunc(v, unicode.IsControl) >= 0:
			return fmt.Errorf("%w: a value in %s contains a control character", ErrFilter, name)
		}
	}
	return nil
}

// Step is the bucket width in whole seconds: the panel's interval, widened
// so that the range has at most MaxDataPoints (and maxBuckets) buckets.
func (r Request) Step() time.Duration {
	step := r.Interval.Truncate(time.Second)
	if step < r.Interval || step < time.Second {
		step += time.Second
	}
	span := r.To.Sub(r.From)
	limit := int64(maxBuckets)
	if r.MaxDataPoints > 0 && r.MaxDataPoints < limit {
		limit = r.MaxDataPoints
	}
	if min := span / time.Duration(limit); step < min {
		step = min.Truncate(time.Second)
		if step < min {
			step += time.Second
		}
	}
	return step
}

// MinuteStep is Step widened to whole minutes, for the states kept per
// minute.
func (r Request) MinuteStep() time.Duration {
	step := r.Step()
	if m := step.Truncate(time.Minute); m < step {
		step = m + time.Minute
	}
	return step
}

// FromMs and ToMs are the range in epoch milliseconds, the unit of every *_ms column.
func (r Request) FromMs() uint64 { return uint64(r.From.UnixMilli()) }

// ToMs is the exclusive end of the range in epoch milliseconds.
func (r Request) ToMs() uint64 { return uint64(r.To.UnixMilli()) }

// Buckets lists the start of every bucket that overlaps [From, To), in
// epoch ms, aligned to the epoch like the SQL's intDiv(x_ms, step) * step.
func (r Request) Buckets() []uint64 {
	step := uint64(r.Step().Milliseconds())
	var out []uint64
	for b := r.FromMs() / step * step; b < r.ToMs(); b += step {
		out = append(out, b)
	}
	return out
}
