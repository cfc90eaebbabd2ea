package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/workload"
)

// Snapshot is the pipeline's state at one moment: what the status block
// shows on a terminal, the status log line otherwise, and /status serves.
type Snapshot struct {
	At       time.Time    `json:"at"`
	Uptime   float64      `json:"uptime_seconds"`
	Accepted int64        `json:"collector_accepted"`
	Rejected int64        `json:"collector_rejected"`
	Lanes    []LaneStatus `json:"lanes"`
	Readings []Reading    `json:"components"`
	Stopping bool         `json:"stopping"`
}

// LaneStatus is one lane's figures.
type LaneStatus struct {
	Lane     string  `json:"lane"`
	Rate     float64 `json:"rate_per_second"`
	Inserted int64   `json:"inserted"`
	Dead     int64   `json:"dead_lettered"`
	Lag      int64   `json:"lag_records"`
	// WatermarkAge is how far the lane's watermark is behind now (-1: none yet).
	WatermarkAge float64 `json:"watermark_age_seconds"`
}

type status struct {
	cfg     DevConfig
	conn    *chdb.Conn
	loader  *ingest.Loader
	driver  *workload.Driver
	comps   []Component
	reg     prometheus.Gatherer
	started time.Time
	log     *slog.Logger

	mu     sync.Mutex
	last   Snapshot
	prev   map[string]int64
	prevAt time.Time
	drawn  int
}

func newStatus(cfg DevConfig, conn *chdb.Conn, loader *ingest.Loader, driver *workload.Driver, comps []Component, reg prometheus.Gatherer) *status {
	return &status{cfg: cfg, conn: conn, loader: loader, driver: driver, comps: comps, reg: reg, started: time.Now(),
		log: slog.New(slog.NewTextHandler(cfg.Out, nil)), prev: map[string]int64{}}
}

// caughtUp says whether the loader took everything the collector accepted.
func (s *status) caughtUp() bool {
	var sent, accepted, loaded int64
	for _, c := range s.driver.Lanes() {
		sent += c.Sent.Load()
		accepted += c.Accepted.Load()
	}
	for lane, st := range s.loader.Stats() {
		if lane == "web" || lane == "server" {
			loaded += st.Inserted + st.DeadLettered
		}
	}
	return sent > 0 && loaded >= accepted
}

// snapshot measures the pipeline now.
func (s *status) snapshot(ctx context.Context) Snapshot {
	now := time.Now()
	snap := Snapshot{At: now.UTC(), Uptime: now.Sub(s.started).Seconds()}
	counts := collectorCounts(s.reg)
	for _, lane := range []string{"web", "server"} {
		snap.Accepted += counts[lane]["accepted"]
		snap.Rejected += counts[lane]["rejected"]
	}
	stats := s.loader.Stats()
	s.mu.Lock()
	for _, lane := range []string{"web", "server", "backfill"} {
		st, ok := stats[lane]
		if !ok {
			continue
		}
		ls := LaneStatus{Lane: lane, Inserted: st.Inserted, Dead: st.DeadLettered, Lag: st.Lag, WatermarkAge: -1}
		if st.WatermarkMs > 0 {
			ls.WatermarkAge = now.Sub(time.UnixMilli(int64(st.WatermarkMs))).Seconds()
		}
		if !s.prevAt.IsZero() {
			ls.Rate = float64(st.Inserted-s.prev[lane]) / now.Sub(s.prevAt).Seconds()
		}
		s.prev[lane] = st.Inserted
		snap.Lanes = append(snap.Lanes, ls)
	}
	s.prevAt = now
	s.mu.Unlock()
	for _, c := range s.comps {
		if c.Status == nil {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		snap.Readings = append(snap.Readings, c.Status(sctx)...)
		cancel()
	}
	return snap
}

// show measures and shows the status: a block redrawn in place on a
// terminal, one structured log line otherwise.
func (s *status) show(ctx context.Context) {
	snap := s.snapshot(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last = snap
	if !s.cfg.Terminal {
		s.log.Info("status", snap.attrs()...)
		return
	}
	lines := snap.Block()
	var b strings.Builder
	if s.drawn > 0 {
		// Back to the block's first line, then overwrite each line.
		fmt.Fprintf(&b, "\033[%dA", s.drawn)
	}
	for _, l := range lines {
		b.WriteString("\r\033[K")
		b.WriteString(l)
		b.WriteByte('\n')
	}
	// A block shorter than the last one leaves no stale lines below.
	b.WriteString("\033[J")
	s.drawn = len(lines)
	fmt.Fprint(s.cfg.Out, b.String())
}

// finish marks the status as stopping, so /status says so while dev drains.
func (s *status) finish() {
	s.mu.Lock()
	s.last.Stopping = true
	s.mu.Unlock()
}

func (s *status) serveHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	snap := s.last
	s.mu.Unlock()
	if snap.At.IsZero() {
		snap = s.snapshot(r.Context())
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(snap)
}

// Block is the status as a few short lines, each under 80 columns for
// the default audiences and campaigns.
func (s Snapshot) Block() []string {
	lines := []string{
		fmt.Sprintf("tideline dev  up %s  accepted %d  rejected %d", time.Duration(s.Uptime*float64(time.Second)).Truncate(time.Second), s.Accepted, s.Rejected),
		fmt.Sprintf("  %-9s %8s %9s %8s %11s", "lane", "ev/s", "lag", "wm age", "inserted"),
	}
	for _, l := range s.Lanes {
		age := "-"
		if l.WatermarkAge >= 0 {
			age = fmt.Sprintf("%.1fs", l.WatermarkAge)
		}
		lines = append(lines, fmt.Sprintf("  %-9s %8.0f %9d %8s %11d", l.Lane, l.Rate, l.Lag, age, l.Inserted))
	}
	var groups []string
	byGroup := map[string][]string{}
	for _, r := range s.Readings {
		if _, ok := byGroup[r.Group]; !ok {
			groups = append(groups, r.Group)
		}
		byGroup[r.Group] = append(byGroup[r.Group], fmt.Sprintf("%s %d", r.Name, r.Value))
	}
	for _, g := range groups {
		lines = append(lines, wrap(fmt.Sprintf("  %-9s ", g), byGroup[g], blockWidth)...)
	}
	return lines
}

// blockWidth keeps the block on one screen line per row of an 80-column terminal.
const blockWidth = 79

// wrap lays items out after head, two spaces apart, continuing on
// indented lines so none is longer than width.
func wrap(head string, items []string, width int) []string {
	var lines []string
	line := head
	for i, it := range items {
		if i > 0 && len(line)+2+len(it) > width {
			lines = append(lines, line)
			line = strings.Repeat(" ", len(head))
		} else if i > 0 {
			line += "  "
		}
		line += it
	}
	return append(lines, line)
}

// attrs are the snapshot as flat log attributes (lane.web.lag=...).
func (s Snapshot) attrs() []any {
	out := []any{"uptime", time.Duration(s.Uptime * float64(time.Second)).Truncate(time.Second).String(), "accepted", s.Accepted, "rejected", s.Rejected}
	for _, l := range s.Lanes {
		out = append(out, slog.Group(l.Lane, "rate", int64(l.Rate), "lag", l.Lag, "wm_age_s", float64(int64(l.WatermarkAge*10))/10, "inserted", l.Inserted))
	}
	for _, r := range s.Readings {
		out = append(out, r.Group+"."+r.Name, r.Value)
	}
	return out
}

// collectorCounts reads the collector's accepted and rejected events per
// lane from its metrics, the count of what it answered 2xx (or refused).
func collectorCounts(g prometheus.Gatherer) map[string]map[string]int64 {
	out := map[string]map[string]int64{}
	mfs, err := g.Gather()
	if err != nil {
		return out
	}
	for _, mf := range mfs {
		if mf.GetName() != "tideline_collector_events_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var lane, outcome string
			for _, lp := range m.GetLabel() {
				switch lp.GetName() {
				case "lane":
					lane = lp.GetValue()
				case "outcome":
					outcome = lp.GetValue()
				}
			}
			if out[lane] == nil {
				out[lane] = map[string]int64{}
			}
			out[lane][outcome] += int64(m.GetCounter().GetValue())
		}
	}
	return out
}
