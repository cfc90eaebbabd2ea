package query

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/internal/golden"
)

var (
	t0 = time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	t1 = t0.Add(6 * time.Hour)
)

func req(t Type, mod func(*Request)) Request {
	r := Request{Model: Model{QueryType: t}, From: t0, To: t1, Interval: time.Minute, MaxDataPoints: 1000}
	if mod != nil {
		mod(&r)
	}
	return r
}

// TestBuildGolden pins the SQL and the bound arguments of every query type,
// with and without filters. Rewrite with go test ./grafana/query -update.
func TestBuildGolden(t *testing.T) {
	cases := map[string]Request{
		"audience_size":                   req(AudienceSize, nil),
		"audience_size_filtered":          req(AudienceSize, func(r *Request) { r.Audiences = []string{"gold", "o'brien"} }),
		"transitions":                     req(Transitions, nil),
		"transitions_filtered":            req(Transitions, func(r *Request) { r.Audiences = []string{"gold"} }),
		"qualification_latency":           req(QualificationLatency, nil),
		"qualification_latency_lanes":     req(QualificationLatency, func(r *Request) { r.Lanes = []string{"web", "server"} }),
		"campaign_outcomes":               req(CampaignOutcomes, nil),
		"campaign_outcomes_filtered":      req(CampaignOutcomes, func(r *Request) { r.Campaigns = []string{"welcome"} }),
		"pipeline_lag":                    req(PipelineLag, nil),
		"pipeline_lag_lanes":              req(PipelineLag, func(r *Request) { r.Lanes = []string{"backfill"} }),
		"backfill_runs":                   req(BackfillRuns, nil),
		"live_qualifications":             req(LiveQualifications, nil),
		"live_qualifications_filtered":    req(LiveQualifications, func(r *Request) { r.Audiences = []string{"gold", "silver"} }),
		"audience_completeness":           req(AudienceCompleteness, nil),
		"audience_completeness_filtered":  req(AudienceCompleteness, func(r *Request) { r.Audiences = []string{"gold"} }),
		"alert_watermark_age":             req(AlertMetric, func(r *Request) { r.Metric = WatermarkAge }),
		"alert_dead_letter_rate_lanes":    req(AlertMetric, func(r *Request) { r.Metric = DeadLetterRate; r.Lanes = []string{"web"} }),
		"alert_delivery_failures":         req(AlertMetric, func(r *Request) { r.Metric = DeliveryFailures }),
		"alert_delivery_dead_letters":     req(AlertMetric, func(r *Request) { r.Metric = DeliveryDeadLetters; r.Campaigns = []string{"welcome"} }),
		"alert_evaluator_lag":             req(AlertMetric, func(r *Request) { r.Metric = EvaluatorLag }),
		"late_events":                     req(LateEvents, nil),
		"late_events_lanes":               req(LateEvents, func(r *Request) { r.Lanes = []string{"server"} }),
		"ingest_delay":                    req(IngestDelay, func(r *Request) { r.Interval = 90 * time.Second }),
		"ingest_delay_lanes":              req(IngestDelay, func(r *Request) { r.Lanes = []string{"web"} }),
		"transitions_wide_range_5000_max": req(Transitions, func(r *Request) { r.From = t1.Add(-90 * 24 * time.Hour); r.Interval = time.Second; r.MaxDataPoints = 0 }),
	}
	for name, r := range cases {
		t.Run(name, func(t *testing.T) {
			stmts, err := Build(r)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			fmt.Fprintf(&b, "-- request: %s from=%s to=%s interval=%s maxDataPoints=%d audiences=%q campaigns=%q lanes=%q\n-- step: %s\n",
				r.QueryType, r.From.Format(time.RFC3339), r.To.Format(time.RFC3339), r.Interval, r.MaxDataPoints, r.Audiences, r.Campaigns, r.Lanes, r.Step())
			for _, s := range stmts {
				if got, want := strings.Count(s.SQL, "?"), len(s.Args); got != want {
					t.Errorf("%s: %d placeholders, %d args", s.Name, got, want)
				}
				fmt.Fprintf(&b, "\n-- statement: %s\n%s;\n-- args: %s\n", s.Name, s.SQL, argList(s.Args))
			}
			golden.String(t, filepath.Join(name+".golden"), b.String())
		})
	}
}

func TestLivePollGolden(t *testing.T) {
	s := LivePoll([]string{"gold"}, uint64(t0.UnixMilli()))
	golden.String(t, filepath.Join("live_poll.golden"), fmt.Sprintf("%s;\n-- args: %s\n", s.SQL, argList(s.Args)))
}

// TestUserValuesNeverInSQL: whatever a filter holds, it reaches the SQL only
// as a bound argument.
func TestUserValuesNeverInSQL(t *testing.T) {
	evil := []string{"x') OR 1=1 --", "gold; DROP TABLE events", "\\'"}
	for _, m := range EveryModel() {
		typ := m.QueryType
		r := req(typ, func(r *Request) { r.Model = m; r.Audiences, r.Campaigns, r.Lanes = evil, evil, evil })
		stmts, err := Build(r)
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		for _, s := range stmts {
			for _, v := range evil {
				if strings.Contains(s.SQL, v) {
					t.Errorf("%s/%s: value %q is in the SQL text", typ, s.Name, v)
				}
			}
		}
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		r    Request
		want error
	}{
		{"ok", req(AudienceSize, nil), nil},
		{"unknown type", req("sizes", nil), ErrUnknownType},
		{"empty type", req("", nil), ErrUnknownType},
		{"inverted range", req(Transitions, func(r *Request) { r.From, r.To = r.To, r.From }), ErrTimeRange},
		{"empty range", req(Transitions, func(r *Request) { r.To = r.From }), ErrTimeRange},
		{"before epoch", req(Transitions, func(r *Request) { r.From = time.Unix(-10, 0) }), ErrTimeRange},
		{"empty id", req(Transitions, func(r *Request) { r.Audiences = []string{""} }), ErrFilter},
		{"variable left", req(Transitions, func(r *Request) { r.Audiences = []string{"$audience"} }), ErrFilter},
		{"control char", req(CampaignOutcomes, func(r *Request) { r.Campaigns = []string{"a\x00b"} }), ErrFilter},
		{"too long", req(PipelineLag, func(r *Request) { r.Lanes = []string{strings.Repeat("w", maxFilterLen+1)} }), ErrFilter},
		{"too many", req(PipelineLag, func(r *Request) { r.Lanes = make([]string, maxFilterValues+1) }), ErrFilter},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.r.Validate()
			if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
				t.Fatalf("Validate() = %v, want %v", err, c.want)
			}
			if _, berr := Build(c.r); (berr == nil) != (err == nil) {
				t.Fatalf("Build disagrees with Validate: %v vs %v", berr, err)
			}
		})
	}
}

func TestStep(t *testing.T) {
	cases := []struct {
		interval time.Duration
		span     time.Duration
		maxPts   int64
		want     time.Duration
	}{
		{time.Minute, time.Hour, 1000, time.Minute},
		{1500 * time.Millisecond, time.Hour, 0, 2 * time.Second},
		{0, time.Minute, 0, time.Second},
		{time.Second, 24 * time.Hour, 100, 864 * time.Second},
		{time.Second, 24 * time.Hour, 0, 18 * time.Second},                        // maxBuckets
		{time.Second, 1000*time.Second + time.Millisecond, 1000, 2 * time.Second}, // rounded up, never down
	}
	for _, c := range cases {
		r := Request{From: t0, To: t0.Add(c.span), Interval: c.interval, MaxDataPoints: c.maxPts}
		if got := r.Step(); got != c.want {
			t.Errorf("Step(interval %s, span %s, max %d) = %s, want %s", c.interval, c.span, c.maxPts, got, c.want)
		}
		if n := int64(c.span / r.Step()); n > maxBuckets || (c.maxPts > 0 && n > c.maxPts) {
			t.Errorf("interval %s span %s: %d buckets", c.interval, c.span, n)
		}
	}
}

func TestBuckets(t *testing.T) {
	r := Request{From: t0.Add(90 * time.Second), To: t0.Add(5 * time.Minute), Interval: time.Minute}
	got := r.Buckets()
	want := []uint64{}
	for m := 1; m < 5; m++ {
		want = append(want, uint64(t0.Add(time.Duration(m)*time.Minute).UnixMilli()))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Buckets() = %v, want %v (aligned to the step, covering From)", got, want)
	}
}

func TestParseModel(t *testing.T) {
	m, err := ParseModel([]byte(`{"refId":"A","queryType":"transitions","audiences":["gold"],"lanes":["web"]}`), "")
	if err != nil || m.QueryType != Transitions || len(m.Audiences) != 1 || m.Lanes[0] != "web" {
		t.Fatalf("ParseModel = %+v, %v", m, err)
	}
	m, err = ParseModel([]byte(`{"queryType":"transitions"}`), "audience_size")
	if err != nil || m.QueryType != AudienceSize {
		t.Fatalf("queryType outside the JSON should win: %+v, %v", m, err)
	}
	if _, err := ParseModel([]byte(`{"audiences":"gold"}`), ""); err == nil {
		t.Fatal("a string where a list belongs should fail")
	}
}

func argList(args []any) string {
	parts := make([]string, len(args))
	for i, a := range args {
		parts[i] = fmt.Sprintf("%T(%q)", a, fmt.Sprint(a))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// TestFrontendKnowsEveryType: the query editor (grafana/app/src/types.ts)
// offers every query type the backend serves, under the same wire name.
func TestFrontendKnowsEveryType(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "app", "src", "types.ts"))
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range Types {
		if !strings.Contains(string(src), "value: '"+string(typ)+"'") {
			t.Errorf("grafana/app/src/types.ts has no QUERY_TYPES entry %q", typ)
		}
	}
	for _, m := range Metrics {
		if !strings.Contains(string(src), "value: '"+string(m)+"'") {
			t.Errorf("grafana/app/src/types.ts has no METRICS entry %q", m)
		}
	}
}
