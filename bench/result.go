package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tideline-dev/tideline/ingest"
)

// Result is everything one run measured.
type Result struct {
	// RunID names the run's topics (bench.<RunID>.*) and databases (bench_<RunID>_*).
	RunID    string              `json:"run_id"`
	Date     time.Time           `json:"date"`
	Machine  Machine             `json:"machine"`
	Settings Config              `json:"settings"`
	Loader   ingest.LoaderConfig `json:"loader"`
	Produced *Produced           `json:"produced,omitempty"`
	// Views are the materialized views "views attached" had (from the
	// migrations; the installer's come on top).
	Views []string `json:"views,omitempty"`
	// Throughput holds the ceiling, tideline and peer measurements.
	Throughput []Throughput    `json:"throughput"`
	Ratios     []Ratio         `json:"ratios,omitempty"`
	Latency    *Latency        `json:"latency,omitempty"`
	Backlog    *Backlog        `json:"backlog,omitempty"`
	Memory     []ProcessMemory `json:"memory,omitempty"`
	Targets    []TargetOutcome `json:"targets,omitempty"`
	Notes      []string        `json:"notes,omitempty"`
	Seconds    float64         `json:"seconds"`
}

// Ratio compares two throughputs of the same run.
type Ratio struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
}

// ProcessMemory is one tideline process's peak RSS (VmHWM, read from
// /proc/<pid>/status of the child process itself).
type ProcessMemory struct {
	Process   string  `json:"process"`
	Scenario  string  `json:"scenario"`
	PeakRSSMB float64 `json:"peak_rss_mb"`
}

// TargetOutcome is one of the targets and whether this run met it.
type TargetOutcome struct {
	Target string `json:"target"`
	Got    string `json:"got"`
	// Met is nil when the run did not measure it.
	Met *bool `json:"met"`
}

func (r *Result) find(name, views string) *Throughput {
	for i := range r.Throughput {
		t := &r.Throughput[i]
		if strings.HasPrefix(t.Name, name) && t.Views == views && t.Error == "" && t.EventsPerSec > 0 {
			return t
		}
	}
	return nil
}

// summarise computes the ratios and checks the targets.
func (r *Result) summarise() {
	views := "detached"
	if r.find("tideline", "attached") != nil {
		views = "attached"
	}
	tl := r.find("tideline", views)
	peer := r.find("peer", views)
	if peer == nil {
		peer = r.find("peer", "detached")
	}
	for _, v := range []string{"detached", "attached"} {
		if t, c := r.find("tideline", v), r.find("ceiling", v); t != nil && c != nil {
			r.Ratios = append(r.Ratios, Ratio{Name: "tideline / ceiling (views " + v + ")", Value: t.EventsPerSec / c.EventsPerSec})
		}
	}
	if tl != nil && peer != nil {
		r.Ratios = append(r.Ratios, Ratio{Name: fmt.Sprintf("tideline (views %s) / peer (views %s)", tl.Views, peer.Views), Value: tl.EventsPerSec / peer.EventsPerSec})
	}

	r.Targets = r.checkTargets()
}

// The targets every run is judged against; the figures come from the same
// run, so the ratios hold on a busy machine even when the rates do not.
const (
	// peerTarget and peerGoal are tideline's rate over the Kafka-engine
	// peer's, both with every view attached: the target, and the goal the
	// bench keeps printing once the target is met.
	peerTarget = 1.5
	peerGoal   = 2.0
	// ceilingTarget is tideline's share of the views-attached ceiling.
	ceilingTarget = 0.75
	// latencyTargetMS bounds event → transition and event → webhook p99 at
	// latencyTargetRate events/s.
	latencyTargetMS   = 1000
	latencyTargetRate = 2000
	// backlogTarget is the drain's real-time multiple; the live lane keeps
	// latencyTargetMS meanwhile.
	backlogTarget = 100
	// rssTargetMB bounds every loader's peak RSS.
	rssTargetMB = 512
)

// checkTargets lists every target, met or not; one the run did not measure
// (scenario skipped, views unavailable, a lower rate than the target's)
// has Met nil, so a partial run never reads as a pass.
func (r *Result) checkTargets() []TargetOutcome {
	yes := func(b bool) *bool { return &b }
	var out []TargetOutcome
	add := func(target, got string, met *bool) {
		out = append(out, TargetOutcome{Target: target, Got: got, Met: met})
	}

	tl, peer, ceil := r.find("tideline", "attached"), r.find("peer", "attached"), r.find("ceiling", "attached")
	for _, want := range []float64{peerTarget, peerGoal} {
		name := fmt.Sprintf("tideline ≥ %.1f× the Kafka-engine peer, views attached", want)
		if want == peerGoal {
			name = "goal: " + name
		}
		if tl == nil || peer == nil {
			add(name, notMeasured(tl, peer, "tideline", "peer"), nil)
			continue
		}
		ratio := tl.EventsPerSec / peer.EventsPerSec
		add(name, fmt.Sprintf("%.2f× (%.0f / %.0f events/s)", ratio, tl.EventsPerSec, peer.EventsPerSec), yes(ratio >= want))
	}
	name := fmt.Sprintf("tideline ≥ %.0f%% of the ceiling, views attached", 100*ceilingTarget)
	if tl == nil || ceil == nil {
		add(name, notMeasured(tl, ceil, "tideline", "ceiling"), nil)
	} else {
		ratio := tl.EventsPerSec / ceil.EventsPerSec
		add(name, fmt.Sprintf("%.0f%% (%.0f / %.0f events/s)", 100*ratio, tl.EventsPerSec, ceil.EventsPerSec), yes(ratio >= ceilingTarget))
	}

	for _, st := range []struct {
		stage string
		p     func(*Latency) *Percentiles
	}{
		{"transition derived", func(l *Latency) *Percentiles { return l.Transition }},
		{"webhook received", func(l *Latency) *Percentiles { return l.Webhook }},
	} {
		name := fmt.Sprintf("event → %s p99 < %d ms at %d events/s", st.stage, latencyTargetMS, latencyTargetRate)
		l := r.Latency
		switch {
		case l == nil:
			add(name, "latency scenario not run", nil)
		case l.Error != "":
			add(name, "error: "+oneLine(l.Error), yes(false))
		case st.p(l) == nil || st.p(l).Count == 0:
			add(name, "no "+st.stage+" in the window", nil)
		case l.Rate < latencyTargetRate:
			add(name, fmt.Sprintf("%.0f ms, but at %.0f events/s", st.p(l).P99, l.Rate), nil)
		default:
			add(name, fmt.Sprintf("%.0f ms (%d events)", st.p(l).P99, st.p(l).Count), yes(st.p(l).P99 < latencyTargetMS))
		}
	}

	drain := fmt.Sprintf("backlog drain ≥ %d× real time", backlogTarget)
	live := fmt.Sprintf("live-lane p99 < %d ms during the drain", latencyTargetMS)
	switch b := r.Backlog; {
	case b == nil:
		add(drain, "backlog scenario not run", nil)
		add(live, "backlog scenario not run", nil)
	case !b.Drained:
		add(drain, fmt.Sprintf("not drained (%s)", oneLine(b.Error)), yes(false))
		add(live, "no drain to measure during", nil)
	default:
		add(drain, fmt.Sprintf("%.0f×", b.RealTimeMultiple), yes(b.RealTimeMultiple >= backlogTarget))
		if b.LiveDuringDrain.Count == 0 {
			add(live, "no live event during the drain", nil)
		} else {
			add(live, fmt.Sprintf("%.0f ms (%d events)", b.LiveDuringDrain.P99, b.LiveDuringDrain.Count), yes(b.LiveDuringDrain.P99 < latencyTargetMS))
		}
	}

	var peak float64
	for _, m := range r.Memory {
		if m.Process == "loader" {
			peak = max(peak, m.PeakRSSMB)
		}
	}
	name = fmt.Sprintf("loader peak RSS < %d MB", rssTargetMB)
	if peak > 0 {
		add(name, fmt.Sprintf("%.0f MB", peak), yes(peak < rssTargetMB))
	} else {
		add(name, "no loader ran", nil)
	}
	return out
}

// notMeasured says which of two throughputs a ratio target lacks.
func notMeasured(a, b *Throughput, aName, bName string) string {
	var missing []string
	if a == nil {
		missing = append(missing, aName)
	}
	if b == nil {
		missing = append(missing, bName)
	}
	return strings.Join(missing, " and ") + " not measured with the views attached"
}

// WriteJSON writes r as indented JSON.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// Save writes r to dir/<date>-<host>.json and returns the path.
func (r *Result) Save(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("results directory: %w", err)
	}
	host := strings.NewReplacer("/", "-", " ", "-").Replace(r.Machine.Host)
	if host == "" {
		host = "unknown"
	}
	path := filepath.Join(dir, r.Date.Format("2006-01-02T150405Z")+"-"+host+".json")
	f, err := os.Create(path)
	if err != nil {
		return "", fmt.Errorf("results file: %w", err)
	}
	if err := r.WriteJSON(f); err != nil {
		f.Close()
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return path, f.Close()
}

// WriteTable prints r for people.
func (r *Result) WriteTable(w io.Writer) error {
	m := r.Machine
	fmt.Fprintf(w, "tideline bench — %s\n", r.Date.Format(time.RFC3339))
	fmt.Fprintf(w, "machine: %s, %s, %d cores, %d MB RAM, load average %.2f before / %.2f after\n", m.Host, m.CPU, m.Cores, m.MemoryMB, m.LoadBefore, m.LoadAfter)
	fmt.Fprintf(w, "versions: %s, ClickHouse %s, Kafka: %s", m.GoVersion, m.ClickHouse, m.Kafka)
	if m.Commit != "" {
		fmt.Fprintf(w, ", tideline %.12s", m.Commit)
	}
	fmt.Fprintln(w)
	if p := r.Produced; p != nil {
		fmt.Fprintf(w, "data: %d events (web %d, server %d), %d customers, record %.0f B, flat %.0f B, %s, produced in %.1fs\n",
			p.Events, p.PerLane["web"], p.PerLane["server"], r.Settings.Customers, p.RecordBytes, p.FlatBytes, p.Compression, p.Seconds)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if len(r.Throughput) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(tw, "THROUGHPUT\tVIEWS\tEVENTS/S\tROWS\tSECONDS\tSTARTUP S\tDRAINED\tPEAK RSS MB\tCLIENT CPU µs/ROW\tSERVER CPU µs/ROW\tSERVER CPU WAIT S\tMERGES S\t")
	}
	for _, t := range r.Throughput {
		if t.Error != "" {
			fmt.Fprintf(tw, "%s\t%s\terror: %s\t\t\t\t\t\t\t\t\t\t\n", t.Name, t.Views, oneLine(t.Error))
			continue
		}
		rss := ""
		if t.PeakRSSMB > 0 {
			rss = fmt.Sprintf("%.0f", t.PeakRSSMB)
		}
		client := ""
		if t.ClientCPUSeconds > 0 && t.Rows > 0 {
			client = fmt.Sprintf("%.1f", 1e6*t.ClientCPUSeconds/float64(t.Rows))
		}
		server, wait := "", ""
		if t.Rows > 0 && t.Server.CPUSeconds > 0 {
			server = fmt.Sprintf("%.1f", 1e6*t.Server.CPUSeconds/float64(t.Rows))
			wait = fmt.Sprintf("%.1f", t.Server.CPUWaitSeconds)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%d\t%.1f\t%.2f\t%v\t%s\t%s\t%s\t%s\t%.1f\t\n", t.Name, t.Views, t.EventsPerSec, t.Rows, t.Seconds, t.StartupSeconds, t.Drained, rss, client, server, wait, t.Server.MergeSeconds)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, ra := range r.Ratios {
		fmt.Fprintf(w, "  %s: %.2f\n", ra.Name, ra.Value)
	}
	if l := r.Latency; l != nil {
		fmt.Fprintln(w)
		fmt.Fprintf(w, "LATENCY at %.0f events/s (achieved %.0f) over %.0fs, event time → row visible\n", l.Rate, l.AchievedRate, l.Seconds)
		if l.Error != "" {
			fmt.Fprintf(w, "  error: %s\n", oneLine(l.Error))
		}
		fmt.Fprintln(tw, "  LANE\tEVENTS\tP50 MS\tP95 MS\tP99 MS\tMAX MS\t")
		for _, lane := range []string{"all", "web", "server"} {
			p := l.Visible
			if lane != "all" {
				p = l.ByLane[lane]
			}
			fmt.Fprintf(tw, "  %s\t%d\t%.0f\t%.0f\t%.0f\t%.0f\t\n", lane, p.Count, p.P50, p.P95, p.P99, p.Max)
		}
		for _, st := range []struct {
			name string
			p    *Percentiles
		}{{"→ transition derived", l.Transition}, {"→ webhook received", l.Webhook}} {
			if st.p != nil {
				fmt.Fprintf(tw, "  %s\t%d\t%.0f\t%.0f\t%.0f\t%.0f\t\n", st.name, st.p.Count, st.p.P50, st.p.P95, st.p.P99, st.p.Max)
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if b := r.Backlog; b != nil {
		fmt.Fprintln(w)
		fmt.Fprintf(w, "BACKLOG at %.0f events/s: web lane's loader stopped for %.0fs, %d events behind\n", b.Rate, b.AccumulateSeconds, b.BacklogEvents)
		if b.Error != "" {
			fmt.Fprintf(w, "  error: %s\n", oneLine(b.Error))
		}
		fmt.Fprintf(w, "  drained in %.2fs after resume (first row after %.2fs): %.0f events/s, %.0f× real time\n", b.DrainSeconds, b.FirstRowSeconds, b.DrainEventsPerSec, b.RealTimeMultiple)
		fmt.Fprintf(w, "  server lane (live) event → visible: during the drain p50 %.0f / p95 %.0f / p99 %.0f ms (%d events); before it p99 %.0f ms\n",
			b.LiveDuringDrain.P50, b.LiveDuringDrain.P95, b.LiveDuringDrain.P99, b.LiveDuringDrain.Count, b.LiveBefore.P99)
	}
	if len(r.Memory) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(tw, "PEAK RSS (child processes, VmHWM)\tSCENARIO\tMB\t")
		for _, m := range r.Memory {
			fmt.Fprintf(tw, "%s\t%s\t%.0f\t\n", m.Process, m.Scenario, m.PeakRSSMB)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(r.Targets) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(tw, "TARGET\tGOT\tMET\t")
		for _, t := range r.Targets {
			met := "not measured"
			if t.Met != nil {
				met = map[bool]string{true: "yes", false: "NO"}[*t.Met]
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t\n", t.Target, t.Got, met)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	_, err := fmt.Fprintf(w, "run took %.0fs\n", r.Seconds)
	return err
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
