package backfill

import (
	"context"
	"fmt"

	"github.com/tideline-dev/tideline/internal/chdb"
)

type cpKey struct {
	topic     string
	partition int32
}

type cpVal struct {
	next       int64
	reingested uint64
	dirty      bool
}

// checkpoints track, per original partition, the offset below which every
// missing record of a plan was produced to the backfill lane.
type checkpoints struct {
	planID, runID string
	m             map[cpKey]*cpVal
	lastMs        uint64 // versions grow strictly, so argMax never sees a tie
}

func loadCheckpoints(ctx context.Context, conn *chdb.Conn, planID, runID string) (*checkpoints, error) {
	cp := &checkpoints{planID: planID, runID: runID, m: map[cpKey]*cpVal{}}
	err := conn.Each(ctx, "SELECT kafka_topic, kafka_partition, argMax(next_offset, updated_at_ms), argMax(reingested, updated_at_ms) FROM backfill_checkpoints WHERE plan_id = ? GROUP BY kafka_topic, kafka_partition", []any{planID}, func(rows chdb.Rows) error {
		var k cpKey
		var v cpVal
		if err := rows.Scan(&k.topic, &k.partition, &v.next, &v.reingested); err != nil {
			return err
		}
		cp.m[k] = &v
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read checkpoints of plan %s: %w", planID, err)
	}
	return cp, nil
}

// next is where re-ingest of a partition continues (0: from the start).
func (c *checkpoints) next(topic string, p int32) int64 {
	if v := c.m[cpKey{topic, p}]; v != nil {
		return v.next
	}
	return 0
}

// reingested is the number of records produced by every apply of the plan.
func (c *checkpoints) reingested() uint64 {
	var n uint64
	for _, v := range c.m {
		n += v.reingested
	}
	return n
}

// advance notes that a record at offset was produced (not yet acknowledged:
// save only after the producer flushed).
func (c *checkpoints) advance(topic string, p int32, offset int64) {
	k := cpKey{topic, p}
	v := c.m[k]
	if v == nil {
		v = &cpVal{}
		c.m[k] = v
	}
	v.next = max(v.next, offset+1)
	v.reingested++
	v.dirty = true
}

// save writes the changed checkpoints.
func (c *checkpoints) save(ctx context.Context, conn *chdb.Conn) error {
	var dirty []cpKey
	for k, v := range c.m {
		if v.dirty {
			dirty = append(dirty, k)
		}
	}
	if len(dirty) == 0 {
		return nil
	}
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO backfill_checkpoints (plan_id, run_id, kafka_topic, kafka_partition, next_offset, reingested, updated_at_ms)")
	if err != nil {
		return fmt.Errorf("save checkpoints: %w", err)
	}
	now := max(chdb.NowMs(), c.lastMs+1)
	c.lastMs = now
	for _, k := range dirty {
		v := c.m[k]
		if err := batch.Append(c.planID, c.runID, k.topic, k.partition, v.next, v.reingested, now); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("save checkpoints: %w", err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("save checkpoints: %w", err)
	}
	for _, k := range dirty {
		c.m[k].dirty = false
	}
	return nil
}
