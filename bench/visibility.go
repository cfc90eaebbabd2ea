package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/chdb"
)

// visibility watches rows appear in the events table and records, for each
// row, when it was first seen: the latency from its event time to being
// visible to a reader. The loader stamps one ingest_time_ms per lane and
// batch, so a (lane, ingest_time_ms) pair identifies one insert; each new
// pair's event times are read once. A row seen at poll k became visible
// after poll k-1 started, so latencies are upper bounds, at most one poll
// interval (plus the poll's own query time) above the truth.
type visibility struct {
	conn     *chdb.Conn
	interval time.Duration

	mu      sync.Mutex
	seen    map[batchKey]bool
	samples []sample
	visible map[string]int64 // rows seen, by lane
	cursor  uint64
}

type batchKey struct {
	lane     string
	ingestMs uint64
}

// sample is one row: its lane, event time and the time it was first seen (epoch ms).
type sample struct {
	lane      string
	eventMs   uint64
	visibleMs uint64
}

// lookback re-reads batches stamped this long before the newest one seen: a
// batch is stamped before its insert starts, and a large one can become
// visible after a smaller, later-stamped one from another lane.
const lookback = 60 * time.Second

func newVisibility(conn *chdb.Conn, interval time.Duration) *visibility {
	return &visibility{conn: conn, interval: interval, seen: map[batchKey]bool{}, visible: map[string]int64{}}
}

// run polls until ctx ends.
func (v *visibility) run(ctx context.Context) error {
	tick := time.NewTicker(v.interval)
	defer tick.Stop()
	for {
		if err := v.poll(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func (v *visibility) poll(ctx context.Context) error {
	at := chdb.NowMs()
	var fresh []batchKey
	err := ingest.EachLoad(ctx, v.conn, v.cursor, func(lane string, ingestMs uint64) error {
		if k := (batchKey{lane: lane, ingestMs: ingestMs}); !v.seen[k] {
			fresh = append(fresh, k)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("poll visible batches: %w", err)
	}
	for _, k := range fresh {
		if err := v.read(ctx, k, at); err != nil {
			return err
		}
	}
	return nil
}

// read records the rows of one newly visible batch.
func (v *visibility) read(ctx context.Context, k batchKey, at uint64) error {
	var got []sample
	err := ingest.EachLoadedEventTime(ctx, v.conn, k.lane, k.ingestMs, func(ms uint64) error {
		got = append(got, sample{lane: k.lane, eventMs: ms, visibleMs: at})
		return nil
	})
	if err != nil {
		return fmt.Errorf("read visible batch: %w", err)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.seen[k] = true
	v.samples = append(v.samples, got...)
	v.visible[k.lane] += int64(len(got))
	if lb := uint64(lookback.Milliseconds()); k.ingestMs > lb && k.ingestMs-lb > v.cursor {
		v.cursor = k.ingestMs - lb
	}
	return nil
}

// rows returns how many rows of lane have been seen.
func (v *visibility) rows(lane string) int64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.visible[lane]
}

// total returns how many rows have been seen on every lane.
func (v *visibility) total() int64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	var n int64
	for _, c := range v.visible {
		n += c
	}
	return n
}

// latencies returns, per lane and for "all", the distribution of
// visible - event time over rows whose event time is in [from, to).
func (v *visibility) latencies(from, to time.Time) map[string]Percentiles {
	v.mu.Lock()
	defer v.mu.Unlock()
	lo, hi := uint64(from.UnixMilli()), uint64(to.UnixMilli())
	by := map[string][]float64{}
	for _, s := range v.samples {
		if s.eventMs < lo || s.eventMs >= hi {
			continue
		}
		d := float64(int64(s.visibleMs) - int64(s.eventMs))
		by[s.lane] = append(by[s.lane], d)
		by["all"] = append(by["all"], d)
	}
	out := map[string]Percentiles{}
	for lane, ds := range by {
		out[lane] = percentiles(ds)
	}
	return out
}

// firstVisible is when the first row of lane was seen.
func (v *visibility) firstVisible(lane string) (time.Time, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	var first uint64
	for _, s := range v.samples {
		if s.lane == lane && (first == 0 || s.visibleMs < first) {
			first = s.visibleMs
		}
	}
	return time.UnixMilli(int64(first)), first != 0
}
