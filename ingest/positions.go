package ingest

import (
	"context"
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
		if err := conn.Delete(ctx, table, where, time.Minute, args...); err != nil {
			return err
		}
	}
	return nil
}
