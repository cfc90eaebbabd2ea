package seed

import (
	"context"
	"fmt"

	"github.com/tideline-dev/tideline/internal/chdb"
	tsql "github.com/tideline-dev/tideline/sql"
)

// backfillRunsMigration is the migration that creates backfill_runs.
const backfillRunsMigration = 300

// EnsureBackfillRuns creates backfill_runs, with the backfill's own
// migration, where it is missing: the plugin treats the table as optional,
// and its tests drop it and create it again.
func EnsureBackfillRuns(ctx context.Context, conn *chdb.Conn) error {
	ms, err := tsql.Migrations()
	if err != nil {
		return err
	}
	for _, m := range ms {
		if m.Version == backfillRunsMigration {
			if err := conn.Exec(ctx, m.Statement); err != nil {
				return fmt.Errorf("create backfill_runs: %w", err)
			}
			return nil
		}
	}
	return fmt.Errorf("no migration %d creates backfill_runs", backfillRunsMigration)
}
