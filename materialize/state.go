package materialize

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/chdb"
)

// evalState is the evaluator's durable position.
type evalState struct {
	cursor    uint32
	asOf      uint64
	signature string
	// times are the evaluation times by key (eagerKey, timeKey(lanes)).
	times map[string]uint64
	// floors, when set, are times no evaluation may go below: the latest
	// of several shards' positions merged into one (see merge), whose
	// times are the earliest.
	floors map[string]uint64
}

// floor is the time key k's evaluation must not go below.
func (st *evalState) floor(k string) (uint64, bool) {
	if st.floors != nil {
		t, ok := st.floors[k]
		return t, ok
	}
	t, ok := st.times[k]
	return t, ok
}

// merge is the position that covers every one of states: a pass from it
// re-reads and re-evaluates whatever any of them had not done yet (which
// writes nothing new where another had), and never evaluates a shard at a
// time before the one it was already evaluated at. A missing state (a
// shard never evaluated) makes the merge start over with a full sweep.
func merge(states []*evalState) *evalState {
	out := &evalState{times: map[string]uint64{}, floors: map[string]uint64{}}
	for i, st := range states {
		if st == nil {
			return &evalState{times: map[string]uint64{}}
		}
		for k, t := range st.times {
			out.floors[k] = max(out.floors[k], t)
		}
		if i == 0 {
			out.cursor, out.asOf, out.signature = st.cursor, st.asOf, st.signature
			for k, t := range st.times {
				out.times[k] = t
			}
			continue
		}
		out.cursor, out.asOf = min(out.cursor, st.cursor), min(out.asOf, st.asOf)
		if st.signature != out.signature {
			out.signature = ""
		}
		for k, t := range out.times {
			if u, ok := st.times[k]; !ok {
				delete(out.times, k)
			} else {
				out.times[k] = min(t, u)
			}
		}
	}
	return out
}

// loadState reads the positions saved under keys and merges them.
func (e *Evaluator) loadState(ctx context.Context, keys []string) (*evalState, error) {
	byKey := map[string]*evalState{}
	err := e.conn.Each(ctx, `SELECT evaluator, toUInt32(argMax(touch_cursor, updated_at_ms)), argMax(as_of_ms, updated_at_ms), argMax(audiences_signature, updated_at_ms), max(updated_at_ms)
FROM evaluator_state WHERE has(?, evaluator) GROUP BY evaluator`, []any{keys}, func(rows chdb.Rows) error {
		var key string
		var updated uint64
		st := &evalState{times: map[string]uint64{}}
		if err := rows.Scan(&key, &st.cursor, &st.asOf, &st.signature, &updated); err != nil {
			return err
		}
		byKey[key] = st
		e.lastVersion = max(e.lastVersion, updated)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read evaluator_state (is the schema migrated? tideline migrate): %w", err)
	}
	err = e.conn.Each(ctx, `SELECT evaluator, time_key, argMax(as_of_ms, updated_at_ms) FROM evaluator_times WHERE has(?, evaluator) GROUP BY evaluator, time_key`, []any{keys}, func(rows chdb.Rows) error {
		var key, k string
		var t uint64
		if err := rows.Scan(&key, &k, &t); err != nil {
			return err
		}
		if st := byKey[key]; st != nil {
			st.times[k] = t
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read evaluator_times: %w", err)
	}
	if len(keys) == 1 {
		// One position: a missing one is a fresh start.
		if st := byKey[keys[0]]; st != nil {
			return st, nil
		}
		return &evalState{times: map[string]uint64{}}, nil
	}
	states := make([]*evalState, len(keys))
	for i, k := range keys {
		states[i] = byKey[k]
	}
	return merge(states), nil
}

// saveState writes st under every one of keys.
func (e *Evaluator) saveState(ctx context.Context, st *evalState, keys []string) error {
	b, err := e.conn.PrepareBatch(ctx, "INSERT INTO evaluator_state (evaluator, touch_cursor, as_of_ms, audiences_signature, updated_at_ms)")
	if err != nil {
		return fmt.Errorf("prepare evaluator_state insert: %w", err)
	}
	v := e.version()
	for _, key := range keys {
		if err := b.Append(key, time.Unix(int64(st.cursor), 0), st.asOf, st.signature, v); err != nil {
			_ = b.Abort()
			return fmt.Errorf("append evaluator_state: %w", err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("write evaluator_state: %w", err)
	}
	if len(st.times) == 0 {
		return nil
	}
	tb, err := e.conn.PrepareBatch(ctx, "INSERT INTO evaluator_times (evaluator, time_key, as_of_ms, updated_at_ms)")
	if err != nil {
		return fmt.Errorf("prepare evaluator_times insert: %w", err)
	}
	for _, key := range keys {
		for k, t := range st.times {
			if err := tb.Append(key, k, t, v); err != nil {
				_ = tb.Abort()
				return fmt.Errorf("append evaluator_times: %w", err)
			}
		}
	}
	if err := tb.Send(); err != nil {
		return fmt.Errorf("write evaluator_times: %w", err)
	}
	return nil
}

// version is a row version for ReplacingMergeTree tables: now, and always
// above the previous one even if the clock steps back.
func (e *Evaluator) version() uint64 {
	v := max(chdb.NowMs(), e.lastVersion+1)
	e.lastVersion = v
	return v
}

// laneWatermarks reads every lane's watermark; the loader owns them.
var laneWatermarks = ingest.LaneWatermarks

// Watermark is the lowest watermark among lanes: everything those lanes
// received before it is in ClickHouse. A lane without a watermark yet counts
// as 0, since nothing of it is known to be loaded; ok is false until every
// lane has one. The evaluator (per audience, over the lanes that feed it),
// the trigger poller and backfill all decide by this one rule.
func Watermark(ctx context.Context, conn *chdb.Conn, lanes []string) (ms uint64, ok bool, err error) {
	got, err := laneWatermarks(ctx, conn)
	if err != nil {
		return 0, false, err
	}
	ms, _ = laneTime(lanes, got)
	return ms, ms > 0, nil
}

func planSignature(p *Plan) string {
	if len(p.Audiences) == 0 {
		return ""
	}
	parts := make([]string, len(p.Audiences))
	for i, c := range p.Audiences {
		parts[i] = c.Audience.ID + ":" + c.Version
	}
	sort.Strings(parts)
	h := sha256.Sum256([]byte(strings.Join(parts, "\n")))
	return hex.EncodeToString(h[:])[:16]
}

// stateEvery bounds how often the position is written when nothing else
// changed: a restart repeats at most this much work, which writes nothing
// new, and the state table does not get a part every pass.
const stateEvery = 5 * time.Second

func (e *Evaluator) commit(ctx context.Context, next *evalState, wrote bool) error {
	if wrote || next.signature != e.state.signature || time.Since(e.savedAt) >= stateEvery {
		if err := e.saveState(ctx, next, e.stateKeys); err != nil {
			e.touches.reset()
			return err
		}
		e.savedAt = time.Now()
	}
	e.state = next
	return nil
}
