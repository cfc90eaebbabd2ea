package frames

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"

	"github.com/tideline-dev/tideline/grafana/query"
)

// Lanes are the ingestion lanes every lane panel lists even when a lane has
// no data yet (grafana/app/src/types.ts LANES).
var Lanes = []string{"web", "server", "backfill"}

// Field names, shared with the dashboards and the tests that check them.
const (
	FieldTime       = "time"
	FieldMembers    = "members"
	FieldEntered    = "entered"
	FieldExited     = "exited"
	FieldCampaignID = "campaign_id"
	FieldCampaign   = "campaign"
	FieldFired      = "fired"
	FieldLate       = "late"
	FieldFailed     = "failed"
	FieldLane       = "lane"
	// FieldDeadLetters is pipeline_lag's count of dead letters per lane.
	FieldDeadLetters = "dead_letters"
	// SkippedPrefix starts the field of each skip reason: "skipped stale".
	SkippedPrefix = "skipped "
)

// LatencyFields are the value fields of a qualification_latency frame.
var LatencyFields = []string{
	"qualification_p50_ms", "qualification_p95_ms", "qualification_p99_ms",
	"send_p50_ms", "send_p95_ms", "send_p99_ms",
}

// PipelineLagFields are the fields of the pipeline_lag frame.
var PipelineLagFields = []string{
	FieldLane, "consumer_lag", "watermark", "watermark_age_ms",
	"ingest_delay_p50_ms", "ingest_delay_p95_ms", "ingest_delay_p99_ms", "ingest_delay_max_ms",
	"events", FieldDeadLetters, "updated_at",
}

// BackfillFields are the fields of the backfill_runs frame.
var BackfillFields = []string{
	"started", "run_id", "plan_id", "state", "finished", "duration_ms",
	"window_from", "window_to", "events_reingested", "fired", "skipped", "updated",
}

// LiveFields are the fields of a live_qualifications frame, streamed or not.
var LiveFields = []string{
	FieldTime, "audience_id", "audience", "customer_id", "kind", "episode", "event_time", "latency_ms", "lane",
}

func msTime(ms uint64) time.Time { return time.UnixMilli(int64(ms)).UTC() }

func names(entities []Entity) map[string]Entity {
	m := make(map[string]Entity, len(entities))
	for _, e := range entities {
		m[e.ID] = e
	}
	return m
}

// subjects are the audiences, campaigns or lanes a panel shows: those the
// query asked for, in its order; without a filter, every one that has data
// or is known (active), sorted.
func subjects(asked []string, withData map[string]bool, known []string) []string {
	if len(asked) > 0 {
		return asked
	}
	set := map[string]bool{}
	for id := range withData {
		set[id] = true
	}
	for _, id := range known {
		set[id] = true
	}
	out := make([]string, 0, len(set))
	for id := range set {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

func activeIDs(entities []Entity) []string {
	var out []string
	for _, e := range entities {
		if e.Active {
			out = append(out, e.ID)
		}
	}
	return out
}

// missing is a warning for ids the query asked for that neither exist nor
// have data.
func missing(kind string, asked []string, known map[string]Entity, withData map[string]bool) []data.Notice {
	var gone []string
	for _, id := range asked {
		if _, ok := known[id]; !ok && !withData[id] {
			gone = append(gone, id)
		}
	}
	if len(gone) == 0 {
		return nil
	}
	return []data.Notice{{
		Severity: data.NoticeSeverityWarning,
		Text:     fmt.Sprintf("unknown %s %s: not defined in tideline and no data (check the id, or apply its definition)", kind, strings.Join(gone, ", ")),
	}}
}

func displayName(e Entity, ok bool, id string) string {
	if ok && e.Name != "" {
		return e.Name
	}
	return id
}

// withNotices puts notices on the first frame, adding an empty frame of the
// given shape when there is none.
func withNotices(frames data.Frames, notices []data.Notice, empty func() *data.Frame) data.Frames {
	if len(frames) == 0 {
		frames = data.Frames{empty()}
	}
	if len(notices) > 0 {
		if frames[0].Meta == nil {
			frames[0].Meta = &data.FrameMeta{}
		}
		frames[0].Meta.Notices = append(frames[0].Meta.Notices, notices...)
	}
	return frames
}

// AudienceSize is members over time: for each audience, the baseline before
// the range plus the running sum of net changes, as of the end of each
// bucket, stamped at the bucket's start. Every bucket of the range has a
// point, so the series is continuous.
func AudienceSize(r query.Request, deltas []SizeDelta, audiences []Entity) data.Frames {
	known := names(audiences)
	byAudience := map[string]map[uint64]int64{}
	withData := map[string]bool{}
	for _, d := range deltas {
		if byAudience[d.AudienceID] == nil {
			byAudience[d.AudienceID] = map[uint64]int64{}
		}
		byAudience[d.AudienceID][d.BucketMs] += d.Delta
		withData[d.AudienceID] = true
	}
	buckets := r.Buckets()
	var out data.Frames
	for _, id := range subjects(r.Audiences, withData, activeIDs(audiences)) {
		e, ok := known[id]
		times := make([]time.Time, len(buckets))
		values := make([]int64, len(buckets))
		size := byAudience[id][0]
		for i, b := range buckets {
			size += byAudience[id][b]
			times[i] = msTime(b)
			values[i] = size
		}
		out = append(out, sizeFrame(id, displayName(e, ok, id), times, values))
	}
	return withNotices(out, missing("audience", r.Audiences, known, withData), func() *data.Frame {
		return sizeFrame("", "", []time.Time{}, []int64{})
	})
}

func sizeFrame(id, name string, times []time.Time, values []int64) *data.Frame {
	v := data.NewField(FieldMembers, labels("audience", id), values)
	v.Config = &data.FieldConfig{DisplayNameFromDS: name}
	f := data.NewFrame(FieldMembers, data.NewField(FieldTime, nil, times), v)
	f.Meta = &data.FrameMeta{Type: data.FrameTypeTimeSeriesMulti, TypeVersion: data.FrameTypeVersion{0, 1}}
	return f
}

func labels(key, value string) data.Labels {
	if value == "" {
		return nil
	}
	return data.Labels{key: value}
}

// Transitions is entries and exits per bucket, one frame per audience, with
// a zero for every bucket without any.
func Transitions(r query.Request, counts []TransitionCount, audiences []Entity) data.Frames {
	known := names(audiences)
	type pair struct{ in, out uint64 }
	byAudience := map[string]map[uint64]pair{}
	withData := map[string]bool{}
	for _, c := range counts {
		if byAudience[c.AudienceID] == nil {
			byAudience[c.AudienceID] = map[uint64]pair{}
		}
		p := byAudience[c.AudienceID][c.BucketMs]
		byAudience[c.AudienceID][c.BucketMs] = pair{p.in + c.Entered, p.out + c.Exited}
		withData[c.AudienceID] = true
	}
	buckets := r.Buckets()
	var out data.Frames
	for _, id := range subjects(r.Audiences, withData, activeIDs(audiences)) {
		e, ok := known[id]
		times := make([]time.Time, len(buckets))
		in := make([]int64, len(buckets))
		ex := make([]int64, len(buckets))
		for i, b := range buckets {
			times[i] = msTime(b)
			p := byAudience[id][b]
			in[i], ex[i] = int64(p.in), int64(p.out)
		}
		out = append(out, transitionsFrame(id, displayName(e, ok, id), times, in, ex))
	}
	return withNotices(out, missing("audience", r.Audiences, known, withData), func() *data.Frame {
		return transitionsFrame("", "", []time.Time{}, []int64{}, []int64{})
	})
}

func transitionsFrame(id, name string, times []time.Time, in, ex []int64) *data.Frame {
	fi := data.NewField(FieldEntered, labels("audience", id), in)
	fe := data.NewField(FieldExited, labels("audience", id), ex)
	if name != "" {
		fi.Config = &data.FieldConfig{DisplayNameFromDS: name + " entered"}
		fe.Config = &data.FieldConfig{DisplayNameFromDS: name + " exited"}
	}
	f := data.NewFrame("transitions", data.NewField(FieldTime, nil, times), fi, fe)
	f.Meta = &data.FrameMeta{Type: data.FrameTypeTimeSeriesMulti, TypeVersion: data.FrameTypeVersion{0, 1}}
	return f
}

// QualificationLatency is, per lane, the qualification and send latency
// quantiles of each bucket that has either; a bucket that has only one kind
// leaves the other's fields null.
func QualificationLatency(r query.Request, derive, send []Latency) data.Frames {
	type point struct{ q [6]*float64 }
	byLane := map[string]map[uint64]*point{}
	withData := map[string]bool{}
	put := func(rows []Latency, offset int) {
		for _, l := range rows {
			if byLane[l.Lane] == nil {
				byLane[l.Lane] = map[uint64]*point{}
			}
			p := byLane[l.Lane][l.BucketMs]
			if p == nil {
				p = &point{}
				byLane[l.Lane][l.BucketMs] = p
			}
			for i := 0; i < 3 && i < len(l.Q); i++ {
				v := float64(l.Q[i])
				p.q[offset+i] = &v
			}
			withData[l.Lane] = true
		}
	}
	put(derive, 0)
	put(send, 3)
	var out data.Frames
	for _, lane := range subjects(r.Lanes, withData, nil) {
		buckets := make([]uint64, 0, len(byLane[lane]))
		for b := range byLane[lane] {
			buckets = append(buckets, b)
		}
		sort.Slice(buckets, func(i, j int) bool { return buckets[i] < buckets[j] })
		times := make([]time.Time, len(buckets))
		cols := make([][]*float64, 6)
		for i, b := range buckets {
			times[i] = msTime(b)
			for c := range cols {
				cols[c] = append(cols[c], byLane[lane][b].q[c])
			}
		}
		out = append(out, latencyFrame(lane, times, cols))
	}
	return withNotices(out, nil, func() *data.Frame { return latencyFrame("", []time.Time{}, make([][]*float64, 6)) })
}

func latencyFrame(lane string, times []time.Time, cols [][]*float64) *data.Frame {
	f := data.NewFrame("latency", data.NewField(FieldTime, nil, times))
	for i, name := range LatencyFields {
		c := cols[i]
		if c == nil {
			c = []*float64{}
		}
		field := data.NewField(name, labels(FieldLane, lane), c)
		field.Config = &data.FieldConfig{Unit: "ms"}
		if lane != "" {
			field.Config.DisplayNameFromDS = lane + " " + strings.TrimSuffix(name, "_ms")
		}
		f.Fields = append(f.Fields, field)
	}
	f.Meta = &data.FrameMeta{Type: data.FrameTypeTimeSeriesMulti, TypeVersion: data.FrameTypeVersion{0, 1}}
	return f
}

// Outcome classes of a ledger entry; they do not overlap, so they stack.
const (
	decisionFire     = "fire"
	decisionFireLate = "fire_late"
	decisionSkip     = "skip"
)

// CampaignOutcomes is one row per campaign: fired (on time, delivered or
// pending), late (fired as the late variant), failed (a fire whose delivery
// failed, died or hit a disabled endpoint) and one "skipped <reason>" field
// per skip reason seen. The classes do not overlap: they add up to the
// campaign's ledger entries in the range.
func CampaignOutcomes(r query.Request, rows []Outcome, campaigns []Entity) data.Frames {
	known := names(campaigns)
	type counts struct {
		fired, late, failed int64
		skipped             map[string]int64
	}
	byCampaign := map[string]*counts{}
	withData := map[string]bool{}
	reasons := map[string]bool{}
	for _, o := range rows {
		c := byCampaign[o.CampaignID]
		if c == nil {
			c = &counts{skipped: map[string]int64{}}
			byCampaign[o.CampaignID] = c
		}
		withData[o.CampaignID] = true
		n := int64(o.N)
		switch {
		case o.Decision == decisionSkip:
			reason := o.Reason
			if reason == "" {
				reason = "unspecified"
			}
			c.skipped[reason] += n
			reasons[reason] = true
		case o.Failed:
			c.failed += n
		case o.Decision == decisionFireLate:
			c.late += n
		default:
			c.fired += n
		}
	}
	ids := subjects(r.Campaigns, withData, activeIDs(campaigns))
	reasonList := make([]string, 0, len(reasons))
	for reason := range reasons {
		reasonList = append(reasonList, reason)
	}
	sort.Strings(reasonList)
	idField := make([]string, len(ids))
	nameField := make([]string, len(ids))
	fired := make([]int64, len(ids))
	late := make([]int64, len(ids))
	failed := make([]int64, len(ids))
	skipped := make([][]int64, len(reasonList))
	for j := range skipped {
		skipped[j] = make([]int64, len(ids))
	}
	for i, id := range ids {
		e, ok := known[id]
		idField[i], nameField[i] = id, displayName(e, ok, id)
		if c := byCampaign[id]; c != nil {
			fired[i], late[i], failed[i] = c.fired, c.late, c.failed
			for j, reason := range reasonList {
				skipped[j][i] = c.skipped[reason]
			}
		}
	}
	f := data.NewFrame("campaign_outcomes",
		data.NewField(FieldCampaignID, nil, idField),
		data.NewField(FieldCampaign, nil, nameField),
		data.NewField(FieldFired, nil, fired),
		data.NewField(FieldLate, nil, late),
		data.NewField(FieldFailed, nil, failed),
	)
	for j, reason := range reasonList {
		f.Fields = append(f.Fields, data.NewField(SkippedPrefix+reason, nil, skipped[j]))
	}
	f.Meta = &data.FrameMeta{PreferredVisualization: data.VisTypeTable}
	return withNotices(data.Frames{f}, missing("campaign", r.Campaigns, known, withData), nil)
}

// PipelineLag is one row per lane: the consumer lag and watermark of the
// lane_watermarks view (null when the loader never reported the lane), the
// watermark's age at now, the ingest delay quantiles and worst case over the
// range, and the dead letters of the range.
func PipelineLag(r query.Request, wms []LaneWatermark, delays []IngestDelay, dls []DeadLetters, now time.Time) data.Frames {
	withData := map[string]bool{}
	wm := map[string]LaneWatermark{}
	for _, w := range wms {
		wm[w.Lane] = w
		withData[w.Lane] = true
	}
	dl := map[string]IngestDelay{}
	for _, d := range delays {
		dl[d.Lane] = d
		withData[d.Lane] = true
	}
	dead := map[string]uint64{}
	for _, d := range dls {
		dead[d.Lane] += d.N
		withData[d.Lane] = true
	}
	lanes := subjects(r.Lanes, withData, Lanes)
	f := data.NewFrame(string(query.PipelineLag),
		data.NewField(PipelineLagFields[0], nil, []string{}),
		data.NewField(PipelineLagFields[1], nil, []*int64{}),
		data.NewField(PipelineLagFields[2], nil, []*time.Time{}),
		data.NewField(PipelineLagFields[3], nil, []*int64{}),
		data.NewField(PipelineLagFields[4], nil, []*float64{}),
		data.NewField(PipelineLagFields[5], nil, []*float64{}),
		data.NewField(PipelineLagFields[6], nil, []*float64{}),
		data.NewField(PipelineLagFields[7], nil, []*float64{}),
		data.NewField(PipelineLagFields[8], nil, []int64{}),
		data.NewField(PipelineLagFields[9], nil, []int64{}),
		data.NewField(PipelineLagFields[10], nil, []*time.Time{}),
	)
	for _, i := range []int{3, 4, 5, 6, 7} {
		f.Fields[i].Config = &data.FieldConfig{Unit: "ms"}
	}
	for _, lane := range lanes {
		var (
			lag        *int64
			wmTime     *time.Time
			age        *int64
			updated    *time.Time
			q          [3]*float64
			worst      *float64
			events     int64
			deadLetter = int64(dead[lane])
		)
		if w, ok := wm[lane]; ok {
			lag = ptr(w.Lag)
			wmTime = ptr(msTime(w.WatermarkMs))
			age = ptr(max(now.UnixMilli()-int64(w.WatermarkMs), 0))
			updated = ptr(msTime(w.UpdatedAtMs))
		}
		if d, ok := dl[lane]; ok && d.N > 0 {
			events = int64(d.N)
			for i := 0; i < 3 && i < len(d.Q); i++ {
				q[i] = ptr(float64(d.Q[i]))
			}
			worst = ptr(float64(d.Worst))
		}
		f.AppendRow(lane, lag, wmTime, age, q[0], q[1], q[2], worst, events, deadLetter, updated)
	}
	f.Meta = &data.FrameMeta{PreferredVisualization: data.VisTypeTable}
	return data.Frames{f}
}

func ptr[T any](v T) *T { return &v }

// BackfillRuns is one row per run, newest first. A running run has a null
// finish and duration.
func BackfillRuns(runs []BackfillRun) data.Frames {
	f := data.NewFrame(string(query.BackfillRuns),
		data.NewField(BackfillFields[0], nil, []time.Time{}),
		data.NewField(BackfillFields[1], nil, []string{}),
		data.NewField(BackfillFields[2], nil, []string{}),
		data.NewField(BackfillFields[3], nil, []string{}),
		data.NewField(BackfillFields[4], nil, []*time.Time{}),
		data.NewField(BackfillFields[5], nil, []*int64{}),
		data.NewField(BackfillFields[6], nil, []time.Time{}),
		data.NewField(BackfillFields[7], nil, []time.Time{}),
		data.NewField(BackfillFields[8], nil, []int64{}),
		data.NewField(BackfillFields[9], nil, []int64{}),
		data.NewField(BackfillFields[10], nil, []int64{}),
		data.NewField(BackfillFields[11], nil, []time.Time{}),
	)
	f.Fields[5].Config = &data.FieldConfig{Unit: "ms"}
	for _, r := range runs {
		var finished *time.Time
		var duration *int64
		if r.FinishedAtMs > 0 {
			finished = ptr(msTime(r.FinishedAtMs))
			duration = ptr(int64(r.FinishedAtMs) - int64(r.StartedAtMs))
		}
		f.AppendRow(msTime(r.StartedAtMs), r.RunID, r.PlanID, r.State, finished, duration,
			msTime(r.WindowFromMs), msTime(r.WindowToMs),
			int64(r.EventsReingested), int64(r.Fired), int64(r.Skipped), msTime(r.UpdatedAtMs))
	}
	f.Meta = &data.FrameMeta{PreferredVisualization: data.VisTypeTable}
	return data.Frames{f}
}

// Live is the live panel's frame: the given qualifications, deduplicated by
// key and sorted oldest first (Grafana appends streamed rows at the end).
// The same shape is used for every streamed packet.
func Live(rows []Qualification, audiences map[string]string) *data.Frame {
	seen := make(map[Key]bool, len(rows))
	uniq := make([]Qualification, 0, len(rows))
	for _, q := range rows {
		if !seen[q.Key()] {
			seen[q.Key()] = true
			uniq = append(uniq, q)
		}
	}
	sort.SliceStable(uniq, func(i, j int) bool { return uniq[i].DerivedAtMs < uniq[j].DerivedAtMs })
	f := data.NewFrame("qualifications",
		data.NewField(LiveFields[0], nil, []time.Time{}),
		data.NewField(LiveFields[1], nil, []string{}),
		data.NewField(LiveFields[2], nil, []string{}),
		data.NewField(LiveFields[3], nil, []string{}),
		data.NewField(LiveFields[4], nil, []string{}),
		data.NewField(LiveFields[5], nil, []int64{}),
		data.NewField(LiveFields[6], nil, []time.Time{}),
		data.NewField(LiveFields[7], nil, []int64{}),
		data.NewField(LiveFields[8], nil, []string{}),
	)
	f.Fields[7].Config = &data.FieldConfig{Unit: "ms"}
	for _, q := range uniq {
		name := audiences[q.AudienceID]
		if name == "" {
			name = q.AudienceID
		}
		f.AppendRow(msTime(q.DerivedAtMs), q.AudienceID, name, q.CustomerID, q.Kind, int64(q.Episode),
			msTime(q.EventTimeMs), int64(q.DerivedAtMs)-int64(q.EventTimeMs), q.Lane)
	}
	return f
}

// CompletenessFields are the fields of the audience_completeness frame.
var CompletenessFields = []string{
	"audience_id", "audience", FieldCompleteTo, FieldHeldBy, "behind_freshest_ms", "complete_age_ms",
	"lanes", "direction", "eager_to", "updated_at",
}

// Fields of the audience_completeness frame that dashboards name.
const (
	FieldCompleteTo = "complete_to"
	FieldHeldBy     = "held_by"
)

// AudienceCompleteness is one row per audience: the time its result is
// complete to, the lane holding it back ("" when none is behind the
// freshest), how far it trails the freshest lane and now, its lanes and
// what late data can do to it. An audience the evaluator has not recorded
// yet has nulls: it is not known to be complete to any time.
func AudienceCompleteness(r query.Request, rows []Completeness, audiences []Entity, now time.Time) data.Frames {
	known := names(audiences)
	byAudience := map[string]Completeness{}
	withData := map[string]bool{}
	for _, c := range rows {
		byAudience[c.AudienceID] = c
		withData[c.AudienceID] = true
	}
	f := data.NewFrame(string(query.AudienceCompleteness),
		data.NewField(CompletenessFields[0], nil, []string{}),
		data.NewField(CompletenessFields[1], nil, []string{}),
		data.NewField(CompletenessFields[2], nil, []*time.Time{}),
		data.NewField(CompletenessFields[3], nil, []string{}),
		data.NewField(CompletenessFields[4], nil, []*int64{}),
		data.NewField(CompletenessFields[5], nil, []*int64{}),
		data.NewField(CompletenessFields[6], nil, []string{}),
		data.NewField(CompletenessFields[7], nil, []string{}),
		data.NewField(CompletenessFields[8], nil, []*time.Time{}),
		data.NewField(CompletenessFields[9], nil, []*time.Time{}),
	)
	f.Fields[4].Config = &data.FieldConfig{Unit: "ms"}
	f.Fields[5].Config = &data.FieldConfig{Unit: "ms"}
	for _, id := range subjects(r.Audiences, withData, activeIDs(audiences)) {
		e, ok := known[id]
		c, recorded := byAudience[id]
		if !recorded {
			f.AppendRow(id, displayName(e, ok, id), (*time.Time)(nil), "", (*int64)(nil), (*int64)(nil), "", "", (*time.Time)(nil), (*time.Time)(nil))
			continue
		}
		f.AppendRow(id, displayName(e, ok, id), ptr(msTime(c.CompleteMs)), c.HeldBy,
			ptr(max(int64(c.EagerMs)-int64(c.CompleteMs), 0)), ptr(max(now.UnixMilli()-int64(c.CompleteMs), 0)),
			strings.Join(c.Lanes, ", "), c.Direction, ptr(msTime(c.EagerMs)), ptr(msTime(c.UpdatedAtMs)))
	}
	f.Meta = &data.FrameMeta{PreferredVisualization: data.VisTypeTable}
	return withNotices(data.Frames{f}, missing("audience", r.Audiences, known, withData), nil)
}
