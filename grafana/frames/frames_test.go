package frames

import (
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"

	"github.com/tideline-dev/tideline/grafana/query"
)

var t0 = time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)

func ms(d time.Duration) uint64 { return uint64(t0.Add(d).UnixMilli()) }

func req(typ query.Type, mod func(*query.Request)) query.Request {
	r := query.Request{Model: query.Model{QueryType: typ}, From: t0, To: t0.Add(5 * time.Minute), Interval: time.Minute}
	if mod != nil {
		mod(&r)
	}
	return r
}

func fieldNames(f *data.Frame) []string {
	var out []string
	for _, fl := range f.Fields {
		out = append(out, fl.Name)
	}
	return out
}

func ints(t *testing.T, f *data.Field) []int64 {
	t.Helper()
	out := make([]int64, f.Len())
	for i := range out {
		v, ok := f.ConcreteAt(i)
		if !ok {
			t.Fatalf("%s[%d] is null", f.Name, i)
		}
		out[i] = v.(int64)
	}
	return out
}

func eq[T comparable](t *testing.T, what string, got, want []T) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s = %v, want %v", what, got, want)
		}
	}
}

func notices(fs data.Frames) string {
	var out []string
	for _, f := range fs {
		if f.Meta != nil {
			for _, n := range f.Meta.Notices {
				out = append(out, n.Text)
			}
		}
	}
	return strings.Join(out, "; ")
}

func TestAudienceSize(t *testing.T) {
	deltas := []SizeDelta{
		{"gold", 0, 10}, // before the range
		{"gold", ms(time.Minute), 3},
		{"gold", ms(3 * time.Minute), -5},
		{"silver", ms(0), 1},
	}
	names := []Entity{{"gold", "Gold members", true}, {"silver", "Silver", true}, {"new", "New", true}, {"old", "Old", false}}
	fs := AudienceSize(req(query.AudienceSize, nil), deltas, names)
	if len(fs) != 3 {
		t.Fatalf("%d frames, want gold, new, silver (active or with data; not the inactive old)", len(fs))
	}
	gold := fs[0]
	eq(t, "fields", fieldNames(gold), []string{FieldTime, FieldMembers})
	eq(t, "gold sizes", ints(t, gold.Fields[1]), []int64{10, 13, 13, 8, 8})
	if gold.Fields[1].Labels["audience"] != "gold" || gold.Fields[1].Config.DisplayNameFromDS != "Gold members" {
		t.Errorf("gold labels %v config %+v", gold.Fields[1].Labels, gold.Fields[1].Config)
	}
	if got := gold.Fields[0].At(0).(time.Time); !got.Equal(t0) {
		t.Errorf("first point at %s, want the range start %s", got, t0)
	}
	eq(t, "new sizes", ints(t, fs[1].Fields[1]), []int64{0, 0, 0, 0, 0})
	eq(t, "silver sizes", ints(t, fs[2].Fields[1]), []int64{1, 1, 1, 1, 1})
	if n := notices(fs); n != "" {
		t.Errorf("unexpected notices %q", n)
	}
}

func TestAudienceSizeFilteredAndMissing(t *testing.T) {
	r := req(query.AudienceSize, func(r *query.Request) { r.Audiences = []string{"silver", "ghost"} })
	fs := AudienceSize(r, []SizeDelta{{"silver", 0, 2}}, []Entity{{"silver", "Silver", true}})
	if len(fs) != 2 || fs[0].Fields[1].Labels["audience"] != "silver" || fs[1].Fields[1].Labels["audience"] != "ghost" {
		t.Fatalf("want silver then ghost in the asked order, got %d frames", len(fs))
	}
	eq(t, "ghost", ints(t, fs[1].Fields[1]), []int64{0, 0, 0, 0, 0})
	if n := notices(fs); !strings.Contains(n, "unknown audience ghost") || strings.Contains(n, "silver") {
		t.Errorf("notices %q should name ghost only", n)
	}
}

func TestAudienceSizeEmpty(t *testing.T) {
	fs := AudienceSize(req(query.AudienceSize, nil), nil, nil)
	if len(fs) != 1 || fs[0].Rows() != 0 {
		t.Fatalf("empty answer: want one frame with no rows, got %d frames", len(fs))
	}
	eq(t, "fields", fieldNames(fs[0]), []string{FieldTime, FieldMembers})
}

func TestTransitions(t *testing.T) {
	counts := []TransitionCount{{"gold", ms(0), 4, 1}, {"gold", ms(2 * time.Minute), 0, 2}}
	fs := Transitions(req(query.Transitions, nil), counts, nil)
	if len(fs) != 1 {
		t.Fatalf("%d frames", len(fs))
	}
	eq(t, "fields", fieldNames(fs[0]), []string{FieldTime, FieldEntered, FieldExited})
	eq(t, "entered", ints(t, fs[0].Fields[1]), []int64{4, 0, 0, 0, 0})
	eq(t, "exited", ints(t, fs[0].Fields[2]), []int64{1, 0, 2, 0, 0})
	empty := Transitions(req(query.Transitions, func(r *query.Request) { r.Audiences = []string{"x"} }), nil, nil)
	if len(empty) != 1 || !strings.Contains(notices(empty), "unknown audience x") {
		t.Fatalf("missing audience: %d frames, notices %q", len(empty), notices(empty))
	}
	eq(t, "x entered", ints(t, empty[0].Fields[1]), []int64{0, 0, 0, 0, 0})
}

func TestQualificationLatency(t *testing.T) {
	derive := []Latency{{"web", ms(0), 3, []float32{10, 20, 30}}, {"web", ms(time.Minute), 1, []float32{5, 5, 5}}}
	send := []Latency{{"web", ms(time.Minute), 1, []float32{100, 200, 300}}, {"server", ms(0), 2, []float32{1, 2, 3}}}
	fs := QualificationLatency(req(query.QualificationLatency, nil), derive, send)
	if len(fs) != 2 {
		t.Fatalf("%d frames, want server and web", len(fs))
	}
	server, web := fs[0], fs[1]
	eq(t, "fields", fieldNames(web), append([]string{FieldTime}, LatencyFields...))
	if web.Rows() != 2 || server.Rows() != 1 {
		t.Fatalf("web %d rows, server %d rows", web.Rows(), server.Rows())
	}
	if v, _ := web.Fields[2].ConcreteAt(0); v != 20.0 {
		t.Errorf("web p95 of bucket 0 = %v, want 20", v)
	}
	if _, ok := web.Fields[4].ConcreteAt(0); ok {
		t.Error("web send p50 of bucket 0 should be null: no sends then")
	}
	if v, _ := web.Fields[6].ConcreteAt(1); v != 300.0 {
		t.Errorf("web send p99 of bucket 1 = %v, want 300", v)
	}
	if _, ok := server.Fields[1].ConcreteAt(0); ok {
		t.Error("server qualification p50 should be null")
	}
	empty := QualificationLatency(req(query.QualificationLatency, nil), nil, nil)
	if len(empty) != 1 || empty[0].Rows() != 0 || len(empty[0].Fields) != 7 {
		t.Fatalf("empty: %d frames", len(empty))
	}
}

func TestCampaignOutcomes(t *testing.T) {
	rows := []Outcome{
		{"welcome", "fire", "fresh", false, 5},
		{"welcome", "fire", "fresh", true, 1},
		{"welcome", "fire_late", "late", false, 2},
		{"welcome", "fire_late", "late", true, 1},
		{"welcome", "skip", "stale", false, 3},
		{"winback", "skip", "capped", false, 4},
	}
	names := []Entity{{"welcome", "Welcome", true}, {"winback", "Win back", true}, {"idle", "Idle", true}}
	fs := CampaignOutcomes(req(query.CampaignOutcomes, nil), rows, names)
	f := fs[0]
	eq(t, "fields", fieldNames(f), []string{FieldCampaignID, FieldCampaign, FieldFired, FieldLate, FieldFailed, "skipped capped", "skipped stale"})
	eq(t, "ids", []string{f.Fields[0].At(0).(string), f.Fields[0].At(1).(string), f.Fields[0].At(2).(string)}, []string{"idle", "welcome", "winback"})
	eq(t, "names", []string{f.Fields[1].At(1).(string), f.Fields[1].At(2).(string)}, []string{"Welcome", "Win back"})
	eq(t, "fired", ints(t, f.Fields[2]), []int64{0, 5, 0})
	eq(t, "late", ints(t, f.Fields[3]), []int64{0, 2, 0})
	eq(t, "failed", ints(t, f.Fields[4]), []int64{0, 2, 0})
	eq(t, "capped", ints(t, f.Fields[5]), []int64{0, 0, 4})
	eq(t, "stale", ints(t, f.Fields[6]), []int64{0, 3, 0})
	var total int64
	for _, fl := range f.Fields[2:] {
		for _, v := range ints(t, fl) {
			total += v
		}
	}
	if total != 16 {
		t.Errorf("classes add up to %d, want every ledger entry (16) once", total)
	}
	missing := CampaignOutcomes(req(query.CampaignOutcomes, func(r *query.Request) { r.Campaigns = []string{"nope"} }), nil, names)
	eq(t, "fields", fieldNames(missing[0]), []string{FieldCampaignID, FieldCampaign, FieldFired, FieldLate, FieldFailed})
	if missing[0].Rows() != 1 || !strings.Contains(notices(missing), "unknown campaign nope") {
		t.Fatalf("missing campaign: %d rows, notices %q", missing[0].Rows(), notices(missing))
	}
	empty := CampaignOutcomes(req(query.CampaignOutcomes, nil), nil, nil)
	if empty[0].Rows() != 0 || len(empty[0].Fields) != 5 {
		t.Fatalf("empty: %d rows %d fields", empty[0].Rows(), len(empty[0].Fields))
	}
}

func TestPipelineLag(t *testing.T) {
	now := t0.Add(time.Hour)
	wms := []LaneWatermark{{"web", ms(59 * time.Minute), 42, ms(time.Hour)}}
	delays := []IngestDelay{{"web", 10, []float32{5, 50, 90}, 120}, {"server", 0, []float32{0, 0, 0}, 0}}
	dls := []DeadLetters{{"collector", 2}, {"web", 1}}
	fs := PipelineLag(req(query.PipelineLag, nil), wms, delays, dls, now)
	f := fs[0]
	eq(t, "fields", fieldNames(f), PipelineLagFields)
	var lanes []string
	for i := 0; i < f.Rows(); i++ {
		lanes = append(lanes, f.Fields[0].At(i).(string))
	}
	eq(t, "lanes", lanes, []string{"backfill", "collector", "server", "web"})
	web := 3
	if v, _ := f.Fields[1].ConcreteAt(web); v != int64(42) {
		t.Errorf("web lag %v", v)
	}
	if v, _ := f.Fields[3].ConcreteAt(web); v != int64(60000) {
		t.Errorf("web watermark age %v, want 60000 ms", v)
	}
	if v, _ := f.Fields[5].ConcreteAt(web); v != 50.0 {
		t.Errorf("web p95 %v", v)
	}
	if v, _ := f.Fields[7].ConcreteAt(web); v != 120.0 {
		t.Errorf("web max %v", v)
	}
	eq(t, "dead letters", ints(t, f.Fields[9]), []int64{0, 2, 0, 1})
	eq(t, "events", ints(t, f.Fields[8]), []int64{0, 0, 0, 10})
	for _, i := range []int{1, 2, 3, 4, 10} {
		if _, ok := f.Fields[i].ConcreteAt(0); ok {
			t.Errorf("backfill %s should be null: the lane never reported", f.Fields[i].Name)
		}
	}
	only := PipelineLag(req(query.PipelineLag, func(r *query.Request) { r.Lanes = []string{"server"} }), nil, nil, nil, now)
	if only[0].Rows() != 1 || only[0].Fields[0].At(0) != "server" {
		t.Fatalf("filtered: %d rows", only[0].Rows())
	}
}

func TestBackfillRuns(t *testing.T) {
	runs := []BackfillRun{
		{RunID: "r2", PlanID: "p", State: "running", StartedAtMs: ms(time.Hour), WindowFromMs: ms(0), WindowToMs: ms(time.Minute), EventsReingested: 7, UpdatedAtMs: ms(time.Hour)},
		{RunID: "r1", PlanID: "p", State: "done", StartedAtMs: ms(0), FinishedAtMs: ms(90 * time.Second), Fired: 3, Skipped: 1, UpdatedAtMs: ms(90 * time.Second)},
	}
	f := BackfillRuns(runs)[0]
	eq(t, "fields", fieldNames(f), BackfillFields)
	if f.Rows() != 2 {
		t.Fatalf("%d rows", f.Rows())
	}
	if _, ok := f.Fields[5].ConcreteAt(0); ok {
		t.Error("a running run has no duration")
	}
	if v, _ := f.Fields[5].ConcreteAt(1); v != int64(90000) {
		t.Errorf("duration %v", v)
	}
	eq(t, "fired", ints(t, f.Fields[9]), []int64{0, 3})
	if e := BackfillRuns(nil)[0]; e.Rows() != 0 || len(e.Fields) != len(BackfillFields) {
		t.Fatal("empty shape")
	}
}

func TestLive(t *testing.T) {
	rows := []Qualification{
		{DerivedAtMs: ms(2 * time.Second), AudienceID: "gold", CustomerID: "c2", Kind: "entered", Episode: 1, EventTimeMs: ms(0), Lane: "web"},
		{DerivedAtMs: ms(time.Second), AudienceID: "gold", CustomerID: "c1", Kind: "exited", Episode: 3, EventTimeMs: ms(500 * time.Millisecond), Lane: "server"},
		{DerivedAtMs: ms(3 * time.Second), AudienceID: "gold", CustomerID: "c2", Kind: "entered", Episode: 1, EventTimeMs: ms(0), Lane: "web"}, // replayed
	}
	f := Live(rows, map[string]string{"gold": "Gold"})
	eq(t, "fields", fieldNames(f), LiveFields)
	if f.Rows() != 2 {
		t.Fatalf("%d rows, want the replay collapsed", f.Rows())
	}
	eq(t, "customers", []string{f.Fields[3].At(0).(string), f.Fields[3].At(1).(string)}, []string{"c1", "c2"})
	eq(t, "latency", ints(t, f.Fields[7]), []int64{500, 2000})
	if f.Fields[2].At(0) != "Gold" {
		t.Errorf("audience name %v", f.Fields[2].At(0))
	}
	if Live(nil, nil).Rows() != 0 {
		t.Fatal("empty")
	}
}

// TestFramesSerialise: every shape survives the Arrow encoding Grafana
// receives, with its field names.
func TestFramesSerialise(t *testing.T) {
	all := data.Frames{}
	all = append(all, AudienceSize(req(query.AudienceSize, nil), nil, nil)...)
	all = append(all, QualificationLatency(req(query.QualificationLatency, nil), nil, nil)...)
	all = append(all, PipelineLag(req(query.PipelineLag, nil), nil, nil, nil, t0)...)
	all = append(all, BackfillRuns(nil)...)
	all = append(all, Live(nil, nil))
	for _, f := range all {
		b, err := f.MarshalArrow()
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		back, err := data.UnmarshalArrowFrame(b)
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		eq(t, f.Name, fieldNames(back), fieldNames(f))
	}
}

func TestAudienceCompleteness(t *testing.T) {
	now := t0.Add(time.Hour)
	rows := []Completeness{
		{"gold", []string{"server", "web"}, "rising", ms(40 * time.Minute), ms(59 * time.Minute), "server", ms(59 * time.Minute)},
		{"gone", []string{"web"}, "fixed", ms(58 * time.Minute), ms(58 * time.Minute), "", ms(58 * time.Minute)},
	}
	audiences := []Entity{{"gold", "Gold buyers", true}, {"new", "Never evaluated", true}, {"old", "Inactive", false}}
	fs := AudienceCompleteness(req(query.AudienceCompleteness, nil), rows, audiences, now)
	f := fs[0]
	eq(t, "fields", fieldNames(f), CompletenessFields)
	var ids, held []string
	for i := 0; i < f.Rows(); i++ {
		ids = append(ids, f.Fields[0].At(i).(string))
		held = append(held, f.Fields[3].At(i).(string))
	}
	// An audience with a record lists even when no longer active; an
	// active one without a record lists with nulls; an inactive one
	// without a record does not list.
	eq(t, "audiences", ids, []string{"gold", "gone", "new"})
	eq(t, "held by", held, []string{"server", "", ""})
	if v, _ := f.Fields[1].ConcreteAt(0); v != "Gold buyers" {
		t.Errorf("gold's name %v", v)
	}
	if v, _ := f.Fields[2].ConcreteAt(0); !v.(time.Time).Equal(t0.Add(40 * time.Minute)) {
		t.Errorf("gold complete to %v", v)
	}
	if v, _ := f.Fields[4].ConcreteAt(0); v != int64(19*time.Minute/time.Millisecond) {
		t.Errorf("gold behind the freshest lane by %v, want 19 min", v)
	}
	if v, _ := f.Fields[5].ConcreteAt(0); v != int64(20*time.Minute/time.Millisecond) {
		t.Errorf("gold complete age %v, want 20 min", v)
	}
	if v, _ := f.Fields[6].ConcreteAt(0); v != "server, web" {
		t.Errorf("gold lanes %q", v)
	}
	if v, _ := f.Fields[4].ConcreteAt(1); v != int64(0) {
		t.Errorf("gone is held back by %v, want 0", v)
	}
	for _, i := range []int{2, 4, 5, 8, 9} {
		if _, ok := f.Fields[i].ConcreteAt(2); ok {
			t.Errorf("new's %s should be null: the evaluator never recorded it", f.Fields[i].Name)
		}
	}
	asked := AudienceCompleteness(req(query.AudienceCompleteness, func(r *query.Request) { r.Audiences = []string{"gold", "nope"} }), rows[:1], audiences, now)
	if asked[0].Rows() != 2 || !strings.Contains(notices(asked), "unknown audience nope") {
		t.Fatalf("filtered: %d rows, notices %q", asked[0].Rows(), notices(asked))
	}
}

func TestLateEvents(t *testing.T) {
	eq(t, "classes", latenessClasses(), []string{"under 10s", "10s-1m", "1m-5m", "5m-30m", "30m-2h", "2h-24h", "24h+"})
	rows := []LateCount{{"web", 0, 90}, {"web", 3, 4}, {"server", 6, 1}}
	f := LateEvents(req(query.LateEvents, nil), rows)[0]
	eq(t, "fields", fieldNames(f), []string{FieldLateness, "backfill", "server", "web"})
	eq(t, "web", ints(t, f.Fields[3]), []int64{90, 0, 0, 4, 0, 0, 0})
	eq(t, "server", ints(t, f.Fields[2]), []int64{0, 0, 0, 0, 0, 0, 1})
	eq(t, "backfill", ints(t, f.Fields[1]), []int64{0, 0, 0, 0, 0, 0, 0})
	only := LateEvents(req(query.LateEvents, func(r *query.Request) { r.Lanes = []string{"server"} }), rows[2:])[0]
	eq(t, "filtered fields", fieldNames(only), []string{FieldLateness, "server"})
}

func TestIngestDelaySeries(t *testing.T) {
	rows := []IngestDelayBucket{
		{"web", ms(0), 4, []float32{10, 50, 90}, 120},
		{"web", ms(2 * time.Minute), 1, []float32{7, 7, 7}, 7},
		{"server", ms(0), 0, []float32{0, 0, 0}, 0},
	}
	fs := IngestDelaySeries(req(query.IngestDelay, nil), rows)
	if len(fs) != 1 {
		t.Fatalf("%d frames, want web only (server's bucket is empty)", len(fs))
	}
	web := fs[0]
	eq(t, "fields", fieldNames(web), append([]string{FieldTime}, IngestDelayFields...))
	if web.Rows() != 2 || web.Fields[1].Labels[FieldLane] != "web" {
		t.Fatalf("web: %d rows, labels %v", web.Rows(), web.Fields[1].Labels)
	}
	if v, _ := web.Fields[2].ConcreteAt(0); v != 50.0 {
		t.Errorf("web p95 of bucket 0 = %v, want 50", v)
	}
	if v, _ := web.Fields[4].ConcreteAt(1); v != 7.0 {
		t.Errorf("web max of bucket 1 = %v, want 7", v)
	}
	asked := IngestDelaySeries(req(query.IngestDelay, func(r *query.Request) { r.Lanes = []string{"backfill"} }), nil)
	if len(asked) != 1 || asked[0].Rows() != 0 || len(asked[0].Fields) != 5 {
		t.Fatalf("asked for an idle lane: %d frames", len(asked))
	}
}
