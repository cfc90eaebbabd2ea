package plugin

import (
	"errors"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/grafana/grafana-plugin-sdk-go/backend"
)

// Sentinel errors of the plugin.
var (
	// ErrSettings is a data source configuration that cannot work.
	ErrSettings = errors.New("invalid tideline data source settings")
	// ErrBackfillTableMissing is a backfill_runs query on a database
	// without the backfill's table.
	ErrBackfillTableMissing = errors.New("table backfill_runs does not exist")
	// ErrNotFound is an unknown resource or stream path.
	ErrNotFound = errors.New("not found")
)

// ClickHouse error codes the plugin turns into clearer messages.
const (
	codeUnknownTable    = 60
	codeUnknownDatabase = 81
)

// exceptionCode is the ClickHouse server error code inside err, 0 if none.
func exceptionCode(err error) int32 {
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		return ex.Code
	}
	return 0
}

// downstream marks an error ClickHouse caused (or a failure to reach it)
// as a downstream error, after making the common ones say what to do.
func downstream(database string, err error) error {
	switch exceptionCode(err) {
	case codeUnknownDatabase:
		err = fmt.Errorf("database %s does not exist on the ClickHouse server: run `tideline migrate` or fix the database in the data source settings: %w", database, err)
	case codeUnknownTable:
		err = fmt.Errorf("a tideline table is missing in database %s: run `tideline migrate`: %w", database, err)
	}
	return backend.DownstreamError(err)
}
