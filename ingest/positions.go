package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tideline-dev/tideline/internal/chdb"
)

// LoadedPositions counts the distinct Kafka positions (topic, partition,
// offset) loaded into ClickHouse that match where, a condition on
// event_positions' columns with its arguments ("1" for all of them).
// event_positions keeps every delivery, so a merge of events does not
// change the count.
func LoadedPositions(ctx context.Context, conn *chdb.Conn, where string, args ...any) (uint64, error) {
	var n uint64
	err := conn.QueryRow(ctx, "SELECT uniqExact(kafka_topic, kafka_partition, kafka_offset) FROM event_positions WHERE "+where, args...).Scan(&n)
	return n, err
}

// DeleteLoaded loses loaded rows on purpose, as a disaster drill does: it
// deletes the rows matching where (a condition on the columns events and
// event_positions share, with its arguments) from both tables, with
// mutations, and waits until they are done.
func DeleteLoaded(ctx context.Context, conn *chdb.Conn, where string, args ...any) error {
	for _, table := range []string{"events", "event_positions"} {
		storage, err := conn.Storage(ctx, table)
		if err != nil {
			return err
		}
		if err := conn.Exec(ctx, "ALTER TABLE "+storage+" DELETE WHERE "+where, args...); err != nil {
			return fmt.Errorf("delete rows from %s: %w", table, err)
		}
	}
	for i := 0; i < 600; i++ {
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM system.mutations WHERE database = ? AND table IN ('events', 'event_positions') AND is_done = 0", conn.Database).Scan(&n); err != nil {
			return fmt.Errorf("wait for the delete: %w", err)
		}
		if n == 0 {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("the delete mutation did not finish within a minute")
}
