package frames

import (
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"

	"github.com/tideline-dev/tideline/grafana/query"
)

// IngestDelayFields are the value fields of an ingest_delay frame, named
// as pipeline_lag's.
var IngestDelayFields = PipelineLagFields[4:8]

// IngestDelaySeries is per lane the ingest delay quantiles and worst case of each
// bucket that received events, one frame per lane.
func IngestDelaySeries(r query.Request, rows []IngestDelayBucket) data.Frames {
	byLane := map[string][]IngestDelayBucket{}
	withData := map[string]bool{}
	for _, b := range rows {
		if b.N == 0 {
			continue
		}
		byLane[b.Lane] = append(byLane[b.Lane], b)
		withData[b.Lane] = true
	}
	var out data.Frames
	for _, lane := range subjects(r.Lanes, withData, nil) {
		times := []time.Time{}
		cols := make([][]*float64, len(IngestDelayFields))
		for c := range cols {
			cols[c] = []*float64{}
		}
		for _, b := range byLane[lane] {
			times = append(times, msTime(b.BucketMs))
			for i := range 3 {
				var v *float64
				if i < len(b.Q) {
					v = ptr(float64(b.Q[i]))
				}
				cols[i] = append(cols[i], v)
			}
			cols[3] = append(cols[3], ptr(float64(b.Worst)))
		}
		out = append(out, delayFrame(lane, times, cols))
	}
	return withNotices(out, nil, func() *data.Frame {
		cols := make([][]*float64, len(IngestDelayFields))
		for c := range cols {
			cols[c] = []*float64{}
		}
		return delayFrame("", []time.Time{}, cols)
	})
}

func delayFrame(lane string, times []time.Time, cols [][]*float64) *data.Frame {
	f := data.NewFrame("ingest_delay", data.NewField(FieldTime, nil, times))
	for i, name := range IngestDelayFields {
		field := data.NewField(name, labels(FieldLane, lane), cols[i])
		field.Config = &data.FieldConfig{Unit: "ms"}
		if lane != "" {
			field.Config.DisplayNameFromDS = lane + " " + strings.TrimSuffix(strings.TrimPrefix(name, "ingest_delay_"), "_ms")
		}
		f.Fields = append(f.Fields, field)
	}
	f.Meta = &data.FrameMeta{Type: data.FrameTypeTimeSeriesMulti, TypeVersion: data.FrameTypeVersion{0, 1}}
	return f
}
