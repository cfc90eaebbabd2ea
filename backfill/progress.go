package backfill

import (
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
)

// Progress shows how an apply advances.
type Progress interface {
	// Phase starts a step of total units of what (0: unknown total).
	Phase(name, what string, total int64) Bar
}

// Bar is one step's progress.
type Bar interface {
	// Set reports done units so far.
	Set(done int64)
	// Note replaces the step's description (e.g. "waiting for live lanes").
	Note(s string)
	// Done ends the step.
	Done()
}

// TerminalProgress draws progress bars with rate and ETA.
type TerminalProgress struct{ W io.Writer }

// Phase implements Progress.
func (t TerminalProgress) Phase(name, what string, total int64) Bar {
	max := total
	if max <= 0 {
		max = -1 // a spinner
	}
	b := progressbar.NewOptions64(max,
		progressbar.OptionSetWriter(t.W),
		progressbar.OptionSetDescription(fmt.Sprintf("%-9s", name)),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString(what),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetWidth(30),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(t.W) }),
	)
	return &termBar{b: b, name: name}
}

type termBar struct {
	b    *progressbar.ProgressBar
	name string
}

func (t *termBar) Set(done int64) { _ = t.b.Set64(done) }
func (t *termBar) Note(s string)  { t.b.Describe(fmt.Sprintf("%-9s %s", t.name, s)) }
func (t *termBar) Done()          { _ = t.b.Finish() }

// LogProgress writes structured progress lines (phase, done, total, rate,
// ETA) every Interval, for logs collected off a terminal.
type LogProgress struct {
	Log      *slog.Logger
	Interval time.Duration
	// Msg is the lines' message (default "backfill progress").
	Msg string
}

// Phase implements Progress.
func (l LogProgress) Phase(name, what string, total int64) Bar {
	iv := l.Interval
	if iv <= 0 {
		iv = 5 * time.Second
	}
	msg := l.Msg
	if msg == "" {
		msg = "backfill progress"
	}
	b := &logBar{log: l.Log, msg: msg, name: name, what: what, total: total, start: time.Now(), every: iv}
	b.log.Info(msg, "phase", name, "state", "started", "total", total, "unit", what)
	return b
}

type logBar struct {
	mu          sync.Mutex
	log         *slog.Logger
	msg         string
	name, what  string
	note        string
	total, done int64
	start, last time.Time
	every       time.Duration
}

func (b *logBar) Set(done int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done = done
	if time.Since(b.last) >= b.every {
		b.last = time.Now()
		b.emit("running")
	}
}

func (b *logBar) Note(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s != b.note {
		b.note = s
		b.emit("running")
	}
}

func (b *logBar) Done() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.emit("done")
}

func (b *logBar) emit(state string) {
	el := time.Since(b.start)
	rate := 0.0
	if el > 0 {
		rate = float64(b.done) / el.Seconds()
	}
	attrs := []any{"phase", b.name, "state", state, "done", b.done, "total", b.total, "unit", b.what,
		"rate_per_s", int64(rate), "elapsed", el.Round(time.Millisecond).String()}
	if state == "running" && rate > 0 && b.total > b.done {
		attrs = append(attrs, "eta", time.Duration(float64(b.total-b.done)/rate*float64(time.Second)).Round(time.Second).String())
	}
	if b.note != "" {
		attrs = append(attrs, "note", b.note)
	}
	b.log.Info(b.msg, attrs...)
}

// noProgress shows nothing.
type noProgress struct{}

// Phase implements Progress.
func (noProgress) Phase(string, string, int64) Bar { return nopBar{} }

type nopBar struct{}

func (nopBar) Set(int64)   {}
func (nopBar) Note(string) {}
func (nopBar) Done()       {}
