package materialize

import (
	"context"
	"strconv"
	"time"
)

// houseEvery is how often old customer_touches partitions are dropped.
const houseEvery = time.Hour

// keepHouse runs housekeeping now and every houseEvery until ctx is done.
func (e *Evaluator) keepHouse(ctx context.Context) {
	t := time.NewTicker(houseEvery)
	defer t.Stop()
	for {
		e.housekeeping(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// housekeeping drops customer_touches partitions older than the retention.
// Failures are logged: they cost disk, not correctness.
func (e *Evaluator) housekeeping(ctx context.Context) {
	if !e.doesChores() {
		return
	}
	cutoff := time.Now().Add(-e.cfg.TouchRetention).UTC().Format("20060102")
	parts, err := e.conn.Strings(ctx, "SELECT DISTINCT partition FROM system.parts WHERE database = currentDatabase() AND table = 'customer_touches' AND active")
	if err != nil {
		e.log.Warn("list customer_touches partitions", "err", err)
		return
	}
	var old []uint64
	for _, p := range parts {
		n, err := strconv.ParseUint(p, 10, 32)
		if err == nil && p < cutoff {
			old = append(old, n)
		}
	}
	if len(old) == 0 {
		return
	}
	for _, p := range old {
		if err := e.conn.AlterStorage(ctx, "customer_touches", "DROP PARTITION "+strconv.FormatUint(p, 10)); err != nil {
			e.log.Warn("drop old customer_touches partition", "partition", p, "err", err)
			continue
		}
		e.log.Info("dropped old customer_touches partition", "partition", p)
	}
}
