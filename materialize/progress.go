package materialize

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/tideline-dev/tideline/internal/chdb"
)

// EvaluatedTo is the evaluation time of the last pass the evaluator of cfg
// (its evaluator_id; with sharding group, every one of its shards) saved,
// the earliest over the shards, and 0 while one has none: every decision
// that waits on the lanes' watermarks is made up to it.
func EvaluatedTo(ctx context.Context, conn *chdb.Conn, cfg Config) (uint64, error) {
	keys := cfg.positionKeys()
	var asOf []uint64
	err := conn.Each(ctx, "SELECT argMax(as_of_ms, updated_at_ms) FROM evaluator_state WHERE has(?, evaluator) GROUP BY evaluator", []any{keys}, func(rows chdb.Rows) error {
		var t uint64
		if err := rows.Scan(&t); err != nil {
			return err
		}
		asOf = append(asOf, t)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("read the position of evaluator %s: %w", cfg.EvaluatorID, err)
	}
	if len(asOf) < len(keys) {
		// A shard no evaluator has saved a position for yet.
		return 0, nil
	}
	return slices.Min(asOf), nil
}

// CaughtUp tells whether the evaluator of cfg ran a pass that
// started after the last touch settled, so every transition the touches
// cause exists. A pass's saved evaluation time is the freshest lane
// watermark when it started, never later than its start: a pass saved with
// one past the settled touch started after it (a pass merely saved after
// it may have started before, on a busy machine).
func CaughtUp(ctx context.Context, conn *chdb.Conn, cfg Config) (bool, error) {
	var last uint64
	if err := conn.QueryRow(ctx, "SELECT toUInt64(max(touched_at)) * 1000 FROM customer_touches").Scan(&last); err != nil {
		return false, fmt.Errorf("read the last touch: %w", err)
	}
	asOf, err := EvaluatedTo(ctx, conn, cfg)
	if err != nil {
		return false, err
	}
	// touched_at has whole seconds: the touch may be up to 1 s later.
	return asOf > last+1000+uint64(cfg.TouchSettle.Milliseconds()), nil
}

// Entries counts the entries into audienceID: one per customer and
// episode, however often a transition was written again.
func Entries(ctx context.Context, conn *chdb.Conn, audienceID string) (uint64, error) {
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT uniqExact(customer_id, episode) FROM audience_transitions WHERE audience_id = ? AND kind = 'entered'", audienceID).Scan(&n); err != nil {
		return 0, fmt.Errorf("count the entries into %s: %w", audienceID, err)
	}
	return n, nil
}

// Transitions counts the transitions recorded, each once however often it
// was written.
func Transitions(ctx context.Context, conn *chdb.Conn) (uint64, error) {
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM audience_transitions FINAL").Scan(&n); err != nil {
		return 0, fmt.Errorf("count transitions: %w", err)
	}
	return n, nil
}

// CauseDelays are derived_at − event time, in milliseconds, of the
// transitions an event caused whose event time is in [fromMs, toMs).
func CauseDelays(ctx context.Context, conn *chdb.Conn, fromMs, toMs uint64) ([]float64, error) {
	var ds []float64
	err := conn.Each(ctx, `SELECT event_time_ms, derived_at_ms FROM audience_transitions FINAL
WHERE message_id != '' AND event_time_ms >= ? AND event_time_ms < ?`, []any{fromMs, toMs},
		func(rows chdb.Rows) error {
			var ev, derived uint64
			if err := rows.Scan(&ev, &derived); err != nil {
				return err
			}
			ds = append(ds, float64(int64(derived)-int64(ev)))
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("read transitions: %w", err)
	}
	return ds, nil
}

// LookMembers names what a person reads to see who is in which audience
// and why.
const LookMembers = "SELECT * FROM audience_members, membership_transitions"

// HasProfile tells whether conn's database has the customer_profile view
// (a migration creates it; an older schema lacks it).
func HasProfile(ctx context.Context, conn *chdb.Conn) (bool, error) {
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = 'customer_profile'").Scan(&n); err != nil {
		return false, fmt.Errorf("look for the customer_profile view: %w", err)
	}
	return n > 0, nil
}

// Retouch marks customers touched now on lane, as an insert into events
// would, so the evaluator's next passes re-evaluate them.
func Retouch(ctx context.Context, conn *chdb.Conn, customers []string, lane string) error {
	now := chdb.NowMs()
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO customer_touches (touched_at, customer_id, alias, message_id, type, event, has_traits, link, event_time_ms, ingest_time_ms, lane)")
	if err != nil {
		return fmt.Errorf("mark customers for re-evaluation: %w", err)
	}
	at := time.UnixMilli(int64(now))
	for _, c := range customers {
		if err := batch.Append(at, c, uint8(0), "", "", "", uint8(0), uint8(0), uint64(0), now, lane); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("mark customers for re-evaluation: %w", err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("mark customers for re-evaluation: %w", err)
	}
	return nil
}
