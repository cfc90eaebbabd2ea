package bench

import (
	"context"
	"fmt"
	"math"
	"slices"
	"syscall"
	"time"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/chdb"
)

// Throughput is one sustained-rate measurement.
type Throughput struct {
	// Name says what was measured, e.g. "tideline loader".
	Name string `json:"name"`
	// Views is "attached" or "detached".
	Views string `json:"views"`
	// Rows is how many rows became visible in the window.
	Rows int64 `json:"rows"`
	// Seconds is the window: from starting the consumer (or the first
	// insert) to the moment the last row became visible.
	Seconds float64 `json:"seconds"`
	// EventsPerSec is Rows / Seconds.
	EventsPerSec float64 `json:"events_per_sec"`
	// StartupSeconds is the time from start to the first visible row.
	StartupSeconds float64 `json:"startup_seconds"`
	// Drained is true when every produced row became visible before the
	// deadline; false means the window ended at the deadline.
	Drained bool `json:"drained"`
	// PeakRSSMB is the consuming process's peak RSS, the largest of them
	// with more than one loader process (tideline loader only).
	PeakRSSMB float64 `json:"peak_rss_mb,omitempty"`
	// ClientCPUSeconds is the CPU time of the inserting process: the
	// loader children (summed), or the bench itself for the ceiling (none
	// for the peer).
	ClientCPUSeconds float64 `json:"client_cpu_seconds,omitempty"`
	// Server is what ClickHouse's query threads spent meanwhile.
	Server ServerCPU `json:"server"`
	Error  string    `json:"error,omitempty"`
}

// ServerCPU is ClickHouse's own accounting of its query threads (system.events):
// the CPU time inserts and the views they feed took, the time those threads
// waited for a core, and the wall time of background merges (summed over
// the merge threads, so it can exceed the window).
type ServerCPU struct {
	CPUSeconds     float64 `json:"cpu_seconds"`
	CPUWaitSeconds float64 `json:"cpu_wait_seconds"`
	MergeSeconds   float64 `json:"merge_seconds"`
}

// localEvents is the counters of the server conn is connected to.
const localEvents = "system.events"

// serverEvents reads the counters ServerCPU is the difference of from
// source: localEvents, or a remote() over every node's system.events,
// summed over the nodes.
func serverEvents(ctx context.Context, conn *chdb.Conn, source string) (map[string]uint64, error) {
	out := map[string]uint64{}
	err := conn.Each(ctx, "SELECT event, sum(value) FROM "+source+" WHERE event IN ('UserTimeMicroseconds', 'SystemTimeMicroseconds', 'OSCPUWaitMicroseconds', 'MergesTimeMilliseconds') GROUP BY event", nil,
		func(rows chdb.Rows) error {
			var name string
			var v uint64
			if err := rows.Scan(&name, &v); err != nil {
				return err
			}
			out[name] = v
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("read server counters: %w", err)
	}
	return out, nil
}

// serverSince is the CPU accounting of source (see serverEvents) since
// before was read. The counters are server-wide: other work on the same
// servers counts too.
func serverSince(ctx context.Context, conn *chdb.Conn, source string, before map[string]uint64) ServerCPU {
	after, err := serverEvents(ctx, conn, source)
	if err != nil || before == nil {
		return ServerCPU{}
	}
	d := func(k string) float64 { return float64(after[k] - before[k]) }
	return ServerCPU{
		CPUSeconds:     (d("UserTimeMicroseconds") + d("SystemTimeMicroseconds")) / 1e6,
		CPUWaitSeconds: d("OSCPUWaitMicroseconds") / 1e6,
		MergeSeconds:   d("MergesTimeMilliseconds") / 1e3,
	}
}

// cpuSeconds is this process's user and system CPU time so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// countRows is how many rows the events table of conn's database holds.
func countRows(ctx context.Context, conn *chdb.Conn) (int64, error) {
	n, err := ingest.CountRows(ctx, conn)
	if err != nil {
		return 0, fmt.Errorf("count events: %w", err)
	}
	return n, nil
}

// drainPoll is how often a throughput window samples the row count; the
// window's end is known to this resolution.
const drainPoll = 100 * time.Millisecond

// watchDrain samples the events count from start until want rows are
// visible or deadline passes, and fills t's window. alive reports a failed
// consumer, which ends the watch early.
func watchDrain(ctx context.Context, conn *chdb.Conn, t *Throughput, want int64, start, deadline time.Time, alive func() error) error {
	var last int64
	var firstAt, lastAt time.Time
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	for {
		n, err := countRows(ctx, conn)
		if err != nil {
			return err
		}
		now := time.Now()
		if n > 0 && firstAt.IsZero() {
			firstAt = now
		}
		if n != last {
			last, lastAt = n, now
		}
		if n >= want {
			t.Drained = true
			break
		}
		if !now.Before(deadline) {
			lastAt = now
			break
		}
		if err := pause(ctx, alive, tick.C); err != nil {
			return err
		}
	}
	t.Rows = last
	t.Seconds = lastAt.Sub(start).Seconds()
	if !firstAt.IsZero() {
		t.StartupSeconds = firstAt.Sub(start).Seconds()
	}
	if t.Seconds > 0 {
		t.EventsPerSec = float64(t.Rows) / t.Seconds
	}
	return nil
}

// Percentiles summarise a latency distribution in milliseconds.
type Percentiles struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P95   float64 `json:"p95_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

// percentiles uses the nearest-rank definition: p is the smallest value
// with at least p% of the samples at or below it.
func percentiles(ms []float64) Percentiles {
	if len(ms) == 0 {
		return Percentiles{}
	}
	s := slices.Clone(ms)
	slices.Sort(s)
	rank := func(p float64) float64 {
		i := int(math.Ceil(p/100*float64(len(s)))) - 1
		return s[max(i, 0)]
	}
	return Percentiles{Count: len(s), P50: rank(50), P95: rank(95), P99: rank(99), Max: s[len(s)-1]}
}
