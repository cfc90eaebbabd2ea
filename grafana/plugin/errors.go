package plugin

import (
	"errors"
	"fmt"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/tideline-dev/tideline/grafana/query"
	"github.com/tideline-dev/tideline/internal/chdb"
)

// Sentinel errors of the plugin.
var (
	// ErrSettings is a data source configuration that cannot work.
	ErrSettings = errors.New("invalid tideline data source settings")
	// ErrBackfillTableMissing is a backfill_runs query on a database
	// without the backfill's table.
	ErrBackfillTableMissing = errors.New("table " + query.BackfillRunsTable + " does not exist")
	// ErrNotFound is an unknown resource or stream path.
	ErrNotFound = errors.New("not found")
)

// downstream marks an error ClickHouse caused (or a failure to reach it)
// as a downstream error, after making the common ones say what to do.
func downstream(database string, err error) error {
	switch chdb.Code(err) {
	case chdb.CodeUnknownDatabase:
		err = fmt.Errorf("database %s does not exist on the ClickHouse server: run `tideline migrate` or fix the database in the data source settings: %w", database, err)
	case chdb.CodeUnknownTable:
		err = fmt.Errorf("a tideline table is missing in database %s: run `tideline migrate`: %w", database, err)
	}
	return backend.DownstreamError(err)
}
