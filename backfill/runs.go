package backfill

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/user"
	"strings"
	"syscall"
	"time"

	"github.com/tideline-dev/tideline/internal/chdb"
)

// Run kinds and states, as recorded in backfill_runs.
const (
	KindPlan   = "plan"
	KindDryRun = "dry_run"
	KindApply  = "apply"

	StatePlanned     = "planned"
	StateRunning     = "running"
	StateCompleted   = "completed"
	StateNoop        = "noop"
	StateFailed      = "failed"
	StateInterrupted = "interrupted"
	StateRefused     = "refused"
)

// Apply phases.
const (
	PhaseStart    = "start"
	PhaseReingest = "reingest"
	PhaseLoad     = "load"
	PhaseDerive   = "derive"
	PhaseQualify  = "qualify"
	PhaseDone     = "done"
)

// Run is one row of backfill_runs; its tags name the columns, so reads
// are one conn.Select.
type Run struct {
	RunID             string `ch:"run_id"`
	PlanID            string `ch:"plan_id"`
	Kind              string `ch:"kind"`
	State             string `ch:"state"`
	Phase             string `ch:"phase"`
	Who               string `ch:"who"`
	Host              string `ch:"host"`
	PID               uint32 `ch:"pid"`
	Command           string `ch:"command"`
	Source            string `ch:"source"`
	Lanes             string `ch:"lanes"`
	Campaigns         string `ch:"campaigns"`
	WindowFromMs      uint64 `ch:"window_from_ms"`
	WindowToMs        uint64 `ch:"window_to_ms"`
	StartedAtMs       uint64 `ch:"started_at_ms"`
	FinishedAtMs      uint64 `ch:"finished_at_ms"`
	EventsInWindow    uint64 `ch:"events_in_window"`
	EventsMissing     uint64 `ch:"events_missing"`
	EventsLate        uint64 `ch:"events_late"`
	EventsReingested  uint64 `ch:"events_reingested"`
	EventsRestored    uint64 `ch:"events_restored"`
	CustomersStale    uint64 `ch:"customers_stale"`
	CustomersRederive uint64 `ch:"customers_rederived"`
	Qualifications    uint64 `ch:"qualifications"`
	Fired             uint64 `ch:"fired"`
	FiredLate         uint64 `ch:"fired_late"`
	Skipped           uint64 `ch:"skipped"`
	Error             string `ch:"error"`
	UpdatedAtMs       uint64 `ch:"updated_at_ms"`
}

const runColumns = `run_id, plan_id, kind, state, phase, who, host, pid, command, source, lanes, campaigns,
    window_from_ms, window_to_ms, started_at_ms, finished_at_ms, events_in_window, events_missing, events_late,
    events_reingested, events_restored, customers_stale, customers_rederived, qualifications, fired, fired_late,
    skipped, error, updated_at_ms`

func (r *Run) fields() []any {
	return []any{r.RunID, r.PlanID, r.Kind, r.State, r.Phase, r.Who, r.Host, r.PID, r.Command, r.Source, r.Lanes, r.Campaigns,
		r.WindowFromMs, r.WindowToMs, r.StartedAtMs, r.FinishedAtMs, r.EventsInWindow, r.EventsMissing, r.EventsLate,
		r.EventsReingested, r.EventsRestored, r.CustomersStale, r.CustomersRederive, r.Qualifications, r.Fired, r.FiredLate,
		r.Skipped, r.Error, r.UpdatedAtMs}
}

// Window is the run's window.
func (r *Run) Window() Window {
	return Window{From: time.UnixMilli(int64(r.WindowFromMs)).UTC(), To: time.UnixMilli(int64(r.WindowToMs)).UTC()}
}

// save writes r as its newest version. Versions must grow strictly, so two
// saves in one millisecond still order.
func (r *Run) save(ctx context.Context, conn *chdb.Conn) error {
	r.UpdatedAtMs = max(chdb.NowMs(), r.UpdatedAtMs+1)
	if err := InsertRuns(ctx, conn, []Run{*r}); err != nil {
		return fmt.Errorf("record backfill run %s: %w", r.RunID, err)
	}
	return nil
}

// InsertRuns writes runs as they are, each row the version its UpdatedAtMs
// says: a run records itself through it, and a demonstration dataset
// writes its past runs with it.
func InsertRuns(ctx context.Context, conn *chdb.Conn, runs []Run) error {
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO backfill_runs ("+runColumns+")")
	if err != nil {
		return fmt.Errorf("prepare backfill_runs insert: %w", err)
	}
	for i := range runs {
		if err := batch.Append(runs[i].fields()...); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("append backfill run: %w", err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert %d backfill runs: %w", len(runs), err)
	}
	return nil
}

// ListRuns returns the newest version of the most recent runs, newest
// first; kind filters ("" for all).
func ListRuns(ctx context.Context, conn *chdb.Conn, kind string, limit int) ([]Run, error) {
	q := "SELECT " + runColumns + " FROM backfill_runs FINAL WHERE (? = '' OR kind = ?) ORDER BY started_at_ms DESC, run_id LIMIT ?"
	var out []Run
	if err := conn.Select(ctx, &out, q, kind, kind, limit); err != nil {
		return nil, fmt.Errorf("read backfill_runs: %w", err)
	}
	return out, nil
}

// runsOf returns the applies of a plan, newest first.
func runsOf(ctx context.Context, conn *chdb.Conn, planID string) ([]Run, error) {
	q := "SELECT " + runColumns + " FROM backfill_runs FINAL WHERE plan_id = ? AND kind = ? ORDER BY started_at_ms DESC, run_id"
	var out []Run
	if err := conn.Select(ctx, &out, q, planID, KindApply); err != nil {
		return nil, fmt.Errorf("read backfill_runs: %w", err)
	}
	return out, nil
}

// running returns the applies recorded as running.
func running(ctx context.Context, conn *chdb.Conn) ([]Run, error) {
	q := "SELECT " + runColumns + " FROM backfill_runs FINAL WHERE kind = ? AND state = ? ORDER BY started_at_ms, run_id"
	var out []Run
	if err := conn.Select(ctx, &out, q, KindApply, StateRunning); err != nil {
		return nil, fmt.Errorf("read running applies: %w", err)
	}
	return out, nil
}

// Alive reports whether a running apply is still at work: on this host its
// process must exist; elsewhere its heartbeat must be recent.
func (r *Run) Alive(now time.Time, staleAfter time.Duration) bool {
	if r.State != StateRunning {
		return false
	}
	if host, _ := os.Hostname(); host != "" && host == r.Host {
		return processAlive(int(r.PID))
	}
	return now.Sub(time.UnixMilli(int64(r.UpdatedAtMs))) < staleAfter
}

func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if pid == os.Getpid() {
		return true
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	err = p.Signal(syscall.Signal(0))
	return err == nil || strings.Contains(err.Error(), "operation not permitted")
}

// operatorName names who runs a command: user@host.
func operatorName() string {
	name := "unknown"
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	host, _ := os.Hostname()
	return name + "@" + host
}

// newRunID returns a short random id, time-prefixed so ids sort by start.
func newRunID(now time.Time) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}

// newRun starts a run record for this process.
func newRun(kind string, p *Plan, command string, now time.Time) *Run {
	host, _ := os.Hostname()
	inWindow, _, missing, _, _, late := p.Totals()
	r := &Run{
		RunID: newRunID(now), PlanID: p.ID, Kind: kind, Phase: PhaseStart,
		Who: operatorName(), Host: host, PID: uint32(os.Getpid()), Command: command, Source: p.Source,
		Lanes: strings.Join(p.Lanes, ","), Campaigns: strings.Join(p.Campaigns, ","),
		WindowFromMs: uint64(p.Window.FromMs()), WindowToMs: uint64(p.Window.ToMs()),
		StartedAtMs:    uint64(now.UnixMilli()),
		EventsInWindow: uint64(inWindow), EventsMissing: uint64(missing), EventsLate: uint64(late),
		CustomersStale: uint64(len(p.StaleCustomers())), Qualifications: uint64(len(p.Qualifications.Pending)),
	}
	return r
}
