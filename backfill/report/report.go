package report

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/tideline-dev/tideline/backfill"
	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/chdb"
)

// Data is everything a report shows.
type Data struct {
	Title     string
	Generated time.Time
	Window    backfill.Window
	// Plan is the plan the report is about (nil for a report of a run
	// whose plan file was not given).
	Plan *backfill.Plan
	// Run is the run asked for, when the report was asked for a run.
	Run *backfill.Run
	// Applies are the applies of the plan, newest first.
	Applies []backfill.Run
	// Bucket is the width of one interval of the series.
	Bucket time.Duration
	Times  []time.Time
	Lanes  []LaneSeries
	// StaleCustomers counts, per interval, customers with an event
	// received but not yet loaded for longer than the late threshold.
	StaleCustomers []float64
}

// LaneSeries are one lane's per-interval figures.
type LaneSeries struct {
	Lane string
	// Received counts events by receive interval, Loaded by load interval.
	Received, Loaded []float64
	// LagSeconds is the mean lag of the events received in the interval;
	// MaxLagSeconds the largest.
	LagSeconds, MaxLagSeconds []float64
	// WatermarkAgeSeconds is how far the watermark was behind at the end
	// of the interval.
	WatermarkAgeSeconds []float64
}

// Source says what to report on: a plan file, a run id, or both.
type Source struct {
	Plan *backfill.Plan
	// RunID names a run in backfill_runs (a plan or an apply).
	RunID string
	// LateAfter is the lag beyond which a customer counts as stale
	// (default the plan's threshold, else 1 minute).
	LateAfter time.Duration
	// Now is the report's time (default time.Now()).
	Now time.Time
}

// maxBuckets bounds the points of a series: wider windows get wider intervals.
const maxBuckets = 120

// bucketFor is the shortest round interval that splits span into at most
// maxBuckets: seconds for a drill's window, minutes or hours for an outage.
func bucketFor(span time.Duration) time.Duration {
	for _, b := range []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second,
		30 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute,
		30 * time.Minute, time.Hour, 2 * time.Hour, 6 * time.Hour, 12 * time.Hour} {
		if span/b <= maxBuckets {
			return b
		}
	}
	return 24 * time.Hour
}

// Gather reads what the report shows.
func Gather(ctx context.Context, conn *chdb.Conn, src Source) (*Data, error) {
	if src.Now.IsZero() {
		src.Now = time.Now()
	}
	d := &Data{Generated: src.Now.UTC(), Plan: src.Plan}
	runs, err := backfill.ListRuns(ctx, conn, "", 10000)
	if err != nil {
		return nil, err
	}
	planID := ""
	if src.Plan != nil {
		planID = src.Plan.ID
		d.Window = src.Plan.Window
		if src.LateAfter == 0 && src.Plan.LateAfterMs > 0 {
			src.LateAfter = time.Duration(src.Plan.LateAfterMs) * time.Millisecond
		}
	}
	if src.RunID != "" {
		for i := range runs {
			if runs[i].RunID == src.RunID {
				d.Run = &runs[i]
			}
		}
		if d.Run == nil {
			return nil, fmt.Errorf("no run %q in backfill_runs (tideline backfill status lists them)", src.RunID)
		}
		if planID == "" {
			planID = d.Run.PlanID
			d.Window = d.Run.Window()
		}
	}
	if d.Window.From.IsZero() {
		return nil, fmt.Errorf("report: give a plan file or a run id")
	}
	if src.LateAfter == 0 {
		src.LateAfter = time.Minute
	}
	for _, r := range runs {
		if r.PlanID == planID && r.Kind == backfill.KindApply {
			d.Applies = append(d.Applies, r)
		}
	}
	layout := "2006-01-02 15:04"
	if d.Window.To.Sub(d.Window.From) < time.Hour {
		layout += ":05"
	}
	d.Title = fmt.Sprintf("Incident report: %s to %s UTC", d.Window.From.UTC().Format(layout), d.Window.To.UTC().Format(layout))
	if err := d.series(ctx, conn, src); err != nil {
		return nil, err
	}
	return d, nil
}

// series fills the per-interval series from the events of the window.
func (d *Data) series(ctx context.Context, conn *chdb.Conn, src Source) error {
	from, to := d.Window.FromMs(), d.Window.ToMs()
	// The axis runs past the window until its last event was loaded, so
	// the drain after an outage shows; at most one window length more.
	lastLoad, err := ingest.LastLoad(ctx, conn, from, to)
	if err != nil {
		return fmt.Errorf("read the window's last load: %w", err)
	}
	end := max(to, min(int64(lastLoad), to+(to-from)))
	bucket := bucketFor(time.Duration(end-from) * time.Millisecond).Milliseconds()
	d.Bucket = time.Duration(bucket) * time.Millisecond
	n := int((end-from)/bucket) + 1
	for i := range n {
		d.Times = append(d.Times, time.UnixMilli(from+int64(i)*bucket).UTC())
	}
	idx := func(ms int64) int { return min(max(int((ms-from)/bucket), 0), n-1) }

	cells, err := ingest.Flow(ctx, conn, uint64(bucket), from, to)
	if err != nil {
		return fmt.Errorf("read the window's events: %w", err)
	}
	byLane := map[string][]ingest.FlowCell{}
	for _, c := range cells {
		byLane[c.Lane] = append(byLane[c.Lane], c)
	}
	lanes := make([]string, 0, len(byLane))
	for l := range byLane {
		lanes = append(lanes, l)
	}
	sort.Strings(lanes)
	for _, lane := range lanes {
		ls := LaneSeries{Lane: lane, Received: make([]float64, n), Loaded: make([]float64, n), LagSeconds: make([]float64, n),
			MaxLagSeconds: make([]float64, n), WatermarkAgeSeconds: make([]float64, n)}
		lagSum := make([]float64, n)
		for _, c := range byLane[lane] {
			ri, ii := idx(int64(c.ReceivedBucket)*bucket), idx(int64(c.LoadedBucket)*bucket)
			ls.Received[ri] += float64(c.Events)
			ls.Loaded[ii] += float64(c.Events)
			lagSum[ri] += float64(c.LagSumMs) / 1000
			ls.MaxLagSeconds[ri] = max(ls.MaxLagSeconds[ri], float64(c.LagMaxMs)/1000)
			// Received by the end of interval k but loaded after it: the
			// oldest such receive time is the watermark at k's end.
			for k := ri; k < ii; k++ {
				endK := from + int64(k+1)*bucket
				if age := float64(endK-int64(c.MinReceivedMs)) / 1000; age > ls.WatermarkAgeSeconds[k] {
					ls.WatermarkAgeSeconds[k] = age
				}
			}
		}
		for i := range n {
			if ls.Received[i] > 0 {
				ls.LagSeconds[i] = lagSum[i] / ls.Received[i]
			}
		}
		d.Lanes = append(d.Lanes, ls)
	}

	d.StaleCustomers = make([]float64, n)
	late, err := ingest.LateCustomers(ctx, conn, uint64(bucket), from, to, uint64(src.LateAfter.Milliseconds()))
	if err != nil {
		return fmt.Errorf("read stale customers: %w", err)
	}
	for _, c := range late {
		for k := idx(int64(c.FirstBucket) * bucket); k <= idx(int64(c.LastBucket)*bucket); k++ {
			d.StaleCustomers[k] += float64(c.Customers)
		}
	}
	return nil
}

// Decisions are the pending qualifications per campaign by decision and
// by decision:reason, from the plan.
func (d *Data) Decisions() (campaigns []string, byDecision, byReason []Series) {
	if d.Plan == nil {
		return nil, nil, nil
	}
	dec, rea := map[string][]float64{}, map[string][]float64{}
	var decNames, reaNames []string
	cs := d.Plan.Qualifications.Campaigns
	for i, c := range cs {
		campaigns = append(campaigns, c.CampaignID)
		for k, v := range c.Decisions {
			if dec[k] == nil {
				dec[k] = make([]float64, len(cs))
				decNames = append(decNames, k)
			}
			dec[k][i] += float64(v)
		}
		for k, v := range c.Reasons {
			if rea[k] == nil {
				rea[k] = make([]float64, len(cs))
				reaNames = append(reaNames, k)
			}
			rea[k][i] += float64(v)
		}
	}
	sort.Strings(decNames)
	sort.Strings(reaNames)
	for _, k := range decNames {
		byDecision = append(byDecision, Series{Name: k, Values: dec[k]})
	}
	for _, k := range reaNames {
		byReason = append(byReason, Series{Name: k, Values: rea[k]})
	}
	return campaigns, byDecision, byReason
}

// missingSpans are the plan's missing ranges per lane and partition.
func (d *Data) missingSpans() []Span {
	if d.Plan == nil {
		return nil
	}
	var out []Span
	for _, l := range d.Plan.LaneFindings {
		for _, p := range l.Partitions {
			if len(p.Missing) == 0 {
				continue
			}
			s := Span{Label: fmt.Sprintf("%s p%d", l.Lane, p.Partition), Lo: p.Window.From, Hi: p.Window.To}
			for _, m := range p.Missing {
				s.Missing = append(s.Missing, [2]int64{m.From, m.To})
				s.Lo, s.Hi = min(s.Lo, m.From), max(s.Hi, m.To)
			}
			out = append(out, s)
		}
	}
	return out
}

// applyChart is what each apply did, one stacked bar per apply.
func (d *Data) applyChart() (runs []string, series []Series) {
	names := []string{"re-ingested", "restored", "customers re-derived", "fired", "fired late", "skipped"}
	vals := make([][]float64, len(names))
	for i := len(d.Applies) - 1; i >= 0; i-- {
		r := d.Applies[i]
		runs = append(runs, fmt.Sprintf("%s %s", time.UnixMilli(int64(r.StartedAtMs)).UTC().Format("15:04:05"), r.State))
		for k, v := range []uint64{r.EventsReingested, r.EventsRestored, r.CustomersRederive, r.Fired, r.FiredLate, r.Skipped} {
			vals[k] = append(vals[k], float64(v))
		}
	}
	for k, n := range names {
		series = append(series, Series{Name: n, Values: vals[k]})
	}
	return runs, series
}

// laneSeries picks one figure of every lane as chart series.
func (d *Data) laneSeries(pick func(LaneSeries) []float64, suffix string) []Series {
	out := make([]Series, 0, len(d.Lanes))
	for _, l := range d.Lanes {
		out = append(out, Series{Name: strings.TrimSpace(l.Lane + " " + suffix), Values: pick(l)})
	}
	return out
}
