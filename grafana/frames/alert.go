package frames

import (
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"

	"github.com/tideline-dev/tideline/grafana/query"
)

// Sample is one number of an alert_metric answer and the labels that tell
// its series apart (the lane, campaign or audience it measures).
type Sample struct {
	Labels data.Labels
	Value  float64
}

// Numeric is the alert_metric answer: one frame per sample holding one
// number field with the sample's labels, the numeric-multi kind of the data
// plane contract, which Grafana's alert rules evaluate one alert instance
// per label set. Without samples it is one frame without fields, which
// alerting reads as "no data".
func Numeric(metric query.Metric, samples []Sample) data.Frames {
	meta := func() *data.FrameMeta {
		return &data.FrameMeta{Type: data.FrameTypeNumericMulti, TypeVersion: data.FrameTypeVersion{0, 1}}
	}
	if len(samples) == 0 {
		f := data.NewFrame(string(metric))
		f.Meta = meta()
		return data.Frames{f}
	}
	out := make(data.Frames, 0, len(samples))
	for _, s := range samples {
		v := data.NewField(string(metric), s.Labels, []float64{s.Value})
		if metric == query.WatermarkAge || metric == query.EvaluatorLag || metric == query.AudienceHeldBack {
			v.Config = &data.FieldConfig{Unit: "ms"}
		}
		f := data.NewFrame(string(metric), v)
		f.Meta = meta()
		out = append(out, f)
	}
	return out
}

// LaneSamples is a lane metric per lane: watermark age and consumer lag for
// each lane the loader reported (a lane it never reported has no number:
// nothing says it is behind), the dead-letter rate per minute of the range
// for every lane, zero when none.
func LaneSamples(r query.Request, wms []LaneWatermark, dls []DeadLetters, now time.Time) []Sample {
	var out []Sample
	switch r.Metric {
	case query.WatermarkAge, query.ConsumerLag:
		for _, w := range wms {
			v := float64(w.Lag)
			if r.Metric == query.WatermarkAge {
				v = float64(max(now.UnixMilli()-int64(w.WatermarkMs), 0))
			}
			out = append(out, Sample{data.Labels{FieldLane: w.Lane}, v})
		}
	case query.DeadLetterRate:
		dead := map[string]uint64{}
		withData := map[string]bool{}
		for _, d := range dls {
			dead[d.Lane] += d.N
			withData[d.Lane] = true
		}
		minutes := r.To.Sub(r.From).Minutes()
		for _, lane := range subjects(r.Lanes, withData, Lanes) {
			out = append(out, Sample{data.Labels{FieldLane: lane}, float64(dead[lane]) / minutes})
		}
	}
	return out
}

// CampaignSamples is a delivery metric per campaign, zero for an active
// campaign without any: failed fires (from the outcome counts), or
// deliveries given up and not redelivered (from counts per campaign).
func CampaignSamples(r query.Request, outcomes []Outcome, deadLetters []CampaignCount, campaigns []Entity) []Sample {
	counts := map[string]uint64{}
	withData := map[string]bool{}
	for _, o := range outcomes {
		if o.Failed && o.Decision != decisionSkip {
			counts[o.CampaignID] += o.N
			withData[o.CampaignID] = true
		}
	}
	for _, d := range deadLetters {
		counts[d.CampaignID] += d.N
		withData[d.CampaignID] = true
	}
	var out []Sample
	for _, id := range subjects(r.Campaigns, withData, activeIDs(campaigns)) {
		out = append(out, Sample{data.Labels{FieldCampaignID: id}, float64(counts[id])})
	}
	return out
}

// AudienceSamples is an evaluator metric per audience the evaluator
// recorded: how far behind now the time it is complete to is, or how far
// that time trails its freshest lane. A sample carries the lane holding the
// audience back, when one does, for the alert's message.
func AudienceSamples(r query.Request, rows []Completeness, now time.Time) []Sample {
	var out []Sample
	for _, c := range rows {
		v := float64(max(now.UnixMilli()-int64(c.CompleteMs), 0))
		if r.Metric == query.AudienceHeldBack {
			v = float64(max(int64(c.EagerMs)-int64(c.CompleteMs), 0))
		}
		labels := data.Labels{"audience_id": c.AudienceID}
		if c.HeldBy != "" {
			labels[FieldHeldBy] = c.HeldBy
		}
		out = append(out, Sample{labels, v})
	}
	return out
}
