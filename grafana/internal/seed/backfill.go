package seed

import (
	"context"
	"fmt"

	"github.com/tideline-dev/tideline/internal/chdb"
)

// BackfillRunsDDL is the backfill_runs table with the columns the plugin
// reads. The backfill's own migration creates the real one; tests create
// this when that migration is not applied, so they never depend on it.
const BackfillRunsDDL = `CREATE TABLE IF NOT EXISTS backfill_runs (
    run_id            String COMMENT 'backfill run id',
    plan_id           String COMMENT 'plan the run applies',
    state             String COMMENT 'run state',
    started_at_ms     UInt64 COMMENT 'start, epoch ms',
    finished_at_ms    UInt64 COMMENT 'end, epoch ms (0 while running)',
    window_from_ms    UInt64 COMMENT 'start of the reconciled window, epoch ms',
    window_to_ms      UInt64 COMMENT 'end of the reconciled window, epoch ms',
    events_reingested UInt64 COMMENT 'events re-ingested',
    fired             UInt64 COMMENT 'campaign sends fired',
    skipped           UInt64 COMMENT 'campaign sends skipped',
    updated_at_ms     UInt64 COMMENT 'version of this row, epoch ms'
) ENGINE = ReplacingMergeTree(updated_at_ms)
ORDER BY run_id`

// EnsureBackfillRuns creates backfill_runs when no migration did.
func EnsureBackfillRuns(ctx context.Context, conn *chdb.Conn) error {
	if err := conn.Exec(ctx, BackfillRunsDDL); err != nil {
		return fmt.Errorf("create backfill_runs: %w", err)
	}
	return nil
}
