package seed

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"

	"github.com/tideline-dev/tideline/grafana/frames"
	"github.com/tideline-dev/tideline/grafana/query"
)

// Verify compares the frames the plugin answered r with what the data
// says, computed here in Go, and returns every disagreement. Live
// qualifications are checked for the rows they hold, not their number.
func (d *Data) Verify(r query.Request, fs data.Frames) error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	from, to := uint64(r.From.UnixMilli()), uint64(r.To.UnixMilli())
	step := uint64(r.Step().Milliseconds())
	switch r.QueryType {
	case query.AudienceSize, query.Transitions:
		for _, f := range fs {
			if f.Rows() == 0 {
				continue
			}
			aud := f.Fields[1].Labels["audience"]
			for i := 0; i < f.Rows(); i++ {
				b := uint64(f.Fields[0].At(i).(time.Time).UnixMilli())
				end := min(b+step, to)
				var in, out, inB, outB int64
				for _, t := range d.Transitions {
					if t.AudienceID != aud {
						continue
					}
					if t.EventTimeMs < end {
						if t.Kind == "entered" {
							in++
						} else {
							out++
						}
					}
					if t.EventTimeMs >= max(b, from) && t.EventTimeMs < end {
						if t.Kind == "entered" {
							inB++
						} else {
							outB++
						}
					}
				}
				if r.QueryType == query.AudienceSize {
					if got := f.Fields[1].At(i).(int64); got != in-out {
						fail("%s size at %d: got %d, want %d", aud, b, got, in-out)
					}
				} else if got, got2 := f.Fields[1].At(i).(int64), f.Fields[2].At(i).(int64); got != inB || got2 != outB {
					fail("%s transitions at %d: got %d/%d, want %d/%d", aud, b, got, got2, inB, outB)
				}
			}
		}
	case query.QualificationLatency:
		for _, f := range fs {
			if f.Rows() == 0 {
				continue
			}
			lane := f.Fields[1].Labels[frames.FieldLane]
			for i := 0; i < f.Rows(); i++ {
				b := uint64(f.Fields[0].At(i).(time.Time).UnixMilli())
				var derive, send []float64
				for _, t := range d.Transitions {
					if t.Lane == lane && t.Kind == "entered" && t.DerivedAtMs >= max(b, from) && t.DerivedAtMs < min(b+step, to) {
						derive = append(derive, float64(t.DerivedAtMs-t.EventTimeMs))
					}
				}
				for _, l := range d.Ledger {
					if l.Lane == lane && l.SentAtMs > 0 && l.DerivedAtMs >= max(b, from) && l.DerivedAtMs < min(b+step, to) {
						send = append(send, float64(l.SentAtMs-l.QualifiedEventTimeMs))
					}
				}
				for j, level := range query.Quantiles {
					checkQuantile(fail, fmt.Sprintf("%s derive q%v at %d", lane, level, b), f.Fields[1+j], i, derive, level)
					checkQuantile(fail, fmt.Sprintf("%s send q%v at %d", lane, level, b), f.Fields[4+j], i, send, level)
				}
			}
		}
	case query.CampaignOutcomes:
		f := fs[0]
		for i := 0; i < f.Rows(); i++ {
			id := f.Fields[0].At(i).(string)
			want := map[string]int64{}
			for _, l := range d.Ledger {
				if l.CampaignID != id || l.DetectedAtMs < from || l.DetectedAtMs >= to {
					continue
				}
				switch {
				case l.Decision == "skip":
					want[frames.SkippedPrefix+l.Reason]++
				case l.DeliveryState == "failed" || l.DeliveryState == "dead" || l.DeliveryState == "disabled":
					want[frames.FieldFailed]++
				case l.Decision == "fire_late":
					want[frames.FieldLate]++
				default:
					want[frames.FieldFired]++
				}
			}
			for _, fl := range f.Fields[2:] {
				if got := fl.At(i).(int64); got != want[fl.Name] {
					fail("campaign %s %s: got %d, want %d", id, fl.Name, got, want[fl.Name])
				}
				delete(want, fl.Name)
			}
			for k, v := range want {
				fail("campaign %s: no field %q for %d entries", id, k, v)
			}
		}
	case query.PipelineLag:
		f := fs[0]
		for i := 0; i < f.Rows(); i++ {
			lane := f.Fields[0].At(i).(string)
			var delays []float64
			var worst float64
			// Ingest delay is kept per minute of receipt: the range widens
			// to whole minutes.
			minFrom, minTo := from/60_000*60_000, (to+59_999)/60_000*60_000
			for _, e := range d.Events {
				if e.Lane == lane && e.ReceivedAtMs >= minFrom && e.ReceivedAtMs < minTo {
					v := float64(e.IngestMs - e.ReceivedAtMs)
					delays = append(delays, v)
					worst = math.Max(worst, v)
				}
			}
			if d.Config.Keep || d.Config.Events == 0 {
				if got := f.Fields[8].At(i).(int64); got != int64(len(delays)) {
					fail("lane %s events: got %d, want %d", lane, got, len(delays))
				}
				for j, level := range query.Quantiles {
					checkQuantile(fail, fmt.Sprintf("lane %s ingest q%v", lane, level), f.Fields[4+j], i, delays, level)
				}
				if len(delays) > 0 {
					if got, _ := f.Fields[7].ConcreteAt(i); got != worst {
						fail("lane %s worst ingest delay: got %v, want %v", lane, got, worst)
					}
				}
			}
			var dead int64
			for _, dl := range d.DeadLetters {
				if dl.Lane == lane && dl.AtMs >= from && dl.AtMs < to {
					dead++
				}
			}
			if got := f.Fields[9].At(i).(int64); got != dead {
				fail("lane %s dead letters: got %d, want %d", lane, got, dead)
			}
			var lag int64
			wm, reported := uint64(math.MaxUint64), false
			for _, p := range d.Progress {
				if p.Lane == lane {
					lag += max(p.High-p.Committed, 0)
					wm = min(wm, p.WatermarkMs)
					reported = true
				}
			}
			got, ok := f.Fields[1].ConcreteAt(i)
			if ok != reported || (ok && got != lag) {
				fail("lane %s consumer lag: got %v (%v), want %d (%v)", lane, got, ok, lag, reported)
			}
			if reported {
				if got, _ := f.Fields[2].ConcreteAt(i); !got.(time.Time).Equal(time.UnixMilli(int64(wm))) {
					fail("lane %s watermark: got %v, want %d", lane, got, wm)
				}
			}
		}
	case query.BackfillRuns:
		var want []Run
		for _, run := range d.Runs {
			if run.StartedAtMs < to && (run.FinishedAtMs == 0 || run.FinishedAtMs >= from) {
				want = append(want, run)
			}
		}
		sort.Slice(want, func(i, j int) bool { return want[i].StartedAtMs > want[j].StartedAtMs })
		f := fs[0]
		if f.Rows() != len(want) {
			fail("backfill runs: got %d rows, want %d", f.Rows(), len(want))
			break
		}
		for i, run := range want {
			if got := f.Fields[1].At(i).(string); got != run.RunID {
				fail("backfill row %d: got run %s, want %s", i, got, run.RunID)
			}
			if got := f.Fields[8].At(i).(int64); got != int64(run.EventsReingested) {
				fail("backfill %s events: got %d, want %d", run.RunID, got, run.EventsReingested)
			}
		}
	case query.IngestDelay:
		if !d.Config.Keep {
			break
		}
		mstep := uint64(r.MinuteStep().Milliseconds())
		minFrom, minTo := from/60_000*60_000, (to+59_999)/60_000*60_000
		want := map[string]map[uint64][]float64{}
		for _, e := range d.Events {
			if e.ReceivedAtMs < minFrom || e.ReceivedAtMs >= minTo || (len(r.Lanes) > 0 && !slices.Contains(r.Lanes, e.Lane)) {
				continue
			}
			if want[e.Lane] == nil {
				want[e.Lane] = map[uint64][]float64{}
			}
			b := e.ReceivedAtMs / mstep * mstep
			want[e.Lane][b] = append(want[e.Lane][b], float64(e.IngestMs-e.ReceivedAtMs))
		}
		for _, f := range fs {
			if f.Rows() == 0 {
				continue
			}
			lane := f.Fields[1].Labels[frames.FieldLane]
			if f.Rows() != len(want[lane]) {
				fail("lane %s ingest delay: %d buckets, want %d", lane, f.Rows(), len(want[lane]))
			}
			for i := 0; i < f.Rows(); i++ {
				b := uint64(f.Fields[0].At(i).(time.Time).UnixMilli())
				values := want[lane][b]
				for j, level := range query.Quantiles {
					checkQuantile(fail, fmt.Sprintf("lane %s ingest delay q%v at %d", lane, level, b), f.Fields[1+j], i, values, level)
				}
				worst := 0.0
				for _, v := range values {
					worst = math.Max(worst, v)
				}
				if got, _ := f.Fields[4].ConcreteAt(i); got != worst {
					fail("lane %s worst ingest delay at %d: got %v, want %v", lane, b, got, worst)
				}
			}
			delete(want, lane)
		}
		for lane := range want {
			fail("lane %s received events but has no ingest delay frame", lane)
		}
	case query.LateEvents:
		if !d.Config.Keep {
			break
		}
		f := fs[0]
		minFrom, minTo := from/60_000*60_000, (to+59_999)/60_000*60_000
		for _, field := range f.Fields[1:] {
			want := make([]int64, f.Rows())
			for _, e := range d.Events {
				if e.Lane != field.Name || e.ReceivedAtMs < minFrom || e.ReceivedAtMs >= minTo {
					continue
				}
				class := len(query.LatenessBoundsMs)
				for i, b := range query.LatenessBoundsMs {
					if e.ReceivedAtMs-e.EventTimeMs < b {
						class = i
						break
					}
				}
				want[class]++
			}
			for i := range want {
				if got := field.At(i).(int64); got != want[i] {
					fail("lane %s late events in class %d: got %d, want %d", field.Name, i, got, want[i])
				}
			}
		}
	case query.AudienceCompleteness:
		newest := map[string]Completeness{}
		for _, c := range d.Completeness {
			if c.UpdatedAtMs > newest[c.AudienceID].UpdatedAtMs {
				newest[c.AudienceID] = c
			}
		}
		f := fs[0]
		for i := 0; i < f.Rows(); i++ {
			id := f.Fields[0].At(i).(string)
			c, ok := newest[id]
			got, recorded := f.Fields[2].ConcreteAt(i)
			switch {
			case !ok && recorded:
				fail("completeness of %s: got %v, want null (never recorded)", id, got)
			case ok && (!recorded || !got.(time.Time).Equal(time.UnixMilli(int64(c.CompleteMs)))):
				fail("completeness of %s: got %v, want %d", id, got, c.CompleteMs)
			case ok && f.Fields[3].At(i).(string) != c.HeldBy:
				fail("completeness of %s held by %q, want %q", id, f.Fields[3].At(i), c.HeldBy)
			}
			delete(newest, id)
		}
		for id := range newest {
			if len(r.Audiences) == 0 {
				fail("completeness of %s recorded but not shown", id)
			}
		}
	case query.LiveQualifications:
		known := map[frames.Key]Transition{}
		for _, t := range d.Transitions {
			known[frames.Key{AudienceID: t.AudienceID, CustomerID: t.CustomerID, Episode: t.Episode, Kind: t.Kind}] = t
		}
		f := fs[0]
		for i := 0; i < f.Rows(); i++ {
			k := frames.Key{AudienceID: f.Fields[1].At(i).(string), CustomerID: f.Fields[3].At(i).(string), Episode: uint32(f.Fields[5].At(i).(int64)), Kind: f.Fields[4].At(i).(string)}
			t, ok := known[k]
			if !ok {
				fail("live row %+v was never inserted", k)
				continue
			}
			if got := f.Fields[7].At(i).(int64); got != int64(t.DerivedAtMs-t.EventTimeMs) {
				fail("live %+v latency: got %d, want %d", k, got, t.DerivedAtMs-t.EventTimeMs)
			}
		}
	}
	return errors.Join(errs...)
}

// checkQuantile compares a quantilesTiming result with the exact quantile
// it equals for the small sets tests use (under 5670 values below 1 s, or
// any values below 30 s rounded to 16 ms): the element at floor(level*n)
// of the sorted values.
func checkQuantile(fail func(string, ...any), what string, f *data.Field, i int, values []float64, level float64) {
	got, ok := f.ConcreteAt(i)
	if len(values) == 0 {
		if ok {
			fail("%s: got %v, want null (no values)", what, got)
		}
		return
	}
	if !ok {
		fail("%s: got null, want a value of %d", what, len(values))
		return
	}
	sorted := append([]float64(nil), values...)
	sort.Float64s(sorted)
	idx := min(int(level*float64(len(sorted))), len(sorted)-1)
	want := sorted[idx]
	tolerance := 0.0
	if len(sorted) > 5670 && want >= 1024 {
		tolerance = 16
	}
	if math.Abs(got.(float64)-want) > tolerance {
		fail("%s: got %v, want %v (n=%d)", what, got, want, len(values))
	}
}
