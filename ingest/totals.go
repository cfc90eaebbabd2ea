package ingest

import (
	"context"
	"fmt"

	"github.com/tideline-dev/tideline/internal/chdb"
)

// Totals are what ClickHouse holds of everything ever ingested: Events
// counts each message once however often it was delivered, DeadLetters
// each dead-lettered record once however often it was written.
type Totals struct {
	Events, DeadLetters uint64
}

// LookByLane is the statement a person runs to see the events loaded per
// lane, duplicates collapsed.
const LookByLane = "SELECT lane, count() FROM events_unique GROUP BY lane"

// PositionsView records every loaded position in event_positions: part of
// loading itself, what backfill plans from, not a downstream view.
const PositionsView = "event_positions_mv"

// ReadTotals counts the events and dead letters in conn's database.
func ReadTotals(ctx context.Context, conn *chdb.Conn) (Totals, error) {
	var t Totals
	if err := conn.QueryRow(ctx, "SELECT uniqExact(message_id) FROM events").Scan(&t.Events); err != nil {
		return Totals{}, fmt.Errorf("count events: %w", err)
	}
	if err := conn.QueryRow(ctx, "SELECT count() FROM dead_letters FINAL").Scan(&t.DeadLetters); err != nil {
		return Totals{}, fmt.Errorf("count dead letters: %w", err)
	}
	return t, nil
}
