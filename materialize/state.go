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
}

func (e *Evaluator) loadState(ctx context.Context) (*evalState, error) {
	st := &evalState{times: map[string]uint64{}}
	err := e.conn.Each(ctx, `SELECT toUInt32(argMax(touch_cursor, updated_at_ms)), argMax(as_of_ms, updated_at_ms), argMax(audiences_signature, updated_at_ms), max(updated_at_ms)
FROM evaluator_state WHERE evaluator = ? GROUP BY evaluator`, []any{e.cfg.EvaluatorID}, func(rows chdb.Rows) error {
		var updated uint64
		if err := rows.Scan(&st.cursor, &st.asOf, &st.signature, &updated); err != nil {
			return err
		}
		e.lastVersion = max(e.lastVersion, updated)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read evaluator_state (is the schema migrated? tideline migrate): %w", err)
	}
	trows, err := e.conn.Query(ctx, `SELECT time_key, argMax(as_of_ms, updated_at_ms) FROM evaluator_times WHERE evaluator = ? GROUP BY time_key`, e.cfg.EvaluatorID)
	if err != nil {
		return nil, fmt.Errorf("read evaluator_times: %w", err)
	}
	defer trows.Close()
	for trows.Next() {
		var k string
		var t uint64
		if err := trows.Scan(&k, &t); err != nil {
			return nil, fmt.Errorf("scan evaluator_times: %w", err)
		}
		st.times[k] = t
	}
	return st, trows.Err()
}

func (e *Evaluator) saveState(ctx context.Context, st *evalState) error {
	b, err := e.conn.PrepareBatch(ctx, "INSERT INTO evaluator_state (evaluator, touch_cursor, as_of_ms, audiences_signature, updated_at_ms)")
	if err != nil {
		return fmt.Errorf("prepare evaluator_state insert: %w", err)
	}
	if err := b.Append(e.cfg.EvaluatorID, time.Unix(int64(st.cursor), 0), st.asOf, st.signature, e.version()); err != nil {
		_ = b.Abort()
		return fmt.Errorf("append evaluator_state: %w", err)
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
	v := e.version()
	for k, t := range st.times {
		if err := tb.Append(e.cfg.EvaluatorID, k, t, v); err != nil {
			_ = tb.Abort()
			return fmt.Errorf("append evaluator_times: %w", err)
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
		if err := e.saveState(ctx, next); err != nil {
			e.touches.reset()
			return err
		}
		e.savedAt = time.Now()
	}
	e.state = next
	return nil
}
