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
