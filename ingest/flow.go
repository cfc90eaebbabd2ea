package ingest

import (
	"context"

	"github.com/tideline-dev/tideline/internal/chdb"
)

// The flow of a window of receive time, as the incident report draws it:
// when its events were received and when they were loaded, per lane. Each
// event counts once (grouped by message id, with its earliest surviving
// insert), so the series do not change when ClickHouse merges duplicates
// away, except that a merge may drop the earliest copy of a redelivered
// event and move its load time to the copy kept.

// lastLoadSQL is when the window's last event was inserted.
const lastLoadSQL = `SELECT max(ingest_time_ms) FROM events
WHERE received_at_ms >= ? AND received_at_ms < ?`

// flowSQL counts the window's events per lane, receive interval and load
// interval, with the oldest receive time and the lag sum and maximum. A row
// the backfill re-ingested counts for the lane of the topic it was first
// written to (its kafka_topic), so a lane's watermark covers its records
// however they were loaded.
const flowSQL = `SELECT l, intDiv(r, ?) AS rb, intDiv(i, ?) AS ib, count() AS n, min(r) AS min_r,
    sum(i - r) AS lag_sum, max(i - r) AS lag_max
FROM (
    SELECT multiIf(lane != 'backfill', lane, kafka_topic LIKE '%events.web', 'web',
                   kafka_topic LIKE '%events.server', 'server', lane) AS l,
        message_id, any(received_at_ms) AS r, min(ingest_time_ms) AS i
    FROM events
    WHERE received_at_ms >= ? AND received_at_ms < ?
    GROUP BY l, message_id
) AS e
WHERE i >= r
GROUP BY l, rb, ib
ORDER BY l, rb, ib`

// staleSQL counts customers by the interval their first late event was
// received and the interval their last late event was loaded.
const staleSQL = `SELECT intDiv(f, ?) AS fb, intDiv(t, ?) AS tb, count() AS customers
FROM (
    SELECT customer_id, min(r) AS f, max(i) AS t
    FROM (
        SELECT customer_id, message_id, any(received_at_ms) AS r, min(ingest_time_ms) AS i
        FROM events
        WHERE received_at_ms >= ? AND received_at_ms < ?
        GROUP BY customer_id, message_id
    ) AS e
    WHERE i > r + ?
    GROUP BY customer_id
) AS c
GROUP BY fb, tb`

// LastLoad is when the last event received in [fromMs, toMs) was loaded
// (0 when none was).
func LastLoad(ctx context.Context, conn *chdb.Conn, fromMs, toMs int64) (uint64, error) {
	var last uint64
	err := conn.QueryRow(ctx, lastLoadSQL, fromMs, toMs).Scan(&last)
	return last, err
}

// FlowCell is the events of one lane received in one interval and loaded
// in another (intervals are numbered from the epoch in steps of the
// bucket): how many, the oldest receive time, and the sum and maximum of
// their load lag in milliseconds.
type FlowCell struct {
	Lane                         string
	ReceivedBucket, LoadedBucket uint64
	Events, MinReceivedMs        uint64
	LagSumMs, LagMaxMs           int64
}

// Flow counts the events received in [fromMs, toMs) by lane, receive
// interval and load interval, bucketMs wide. A row the backfill
// re-ingested counts for the lane of the topic it was first written to.
func Flow(ctx context.Context, conn *chdb.Conn, bucketMs uint64, fromMs, toMs int64) ([]FlowCell, error) {
	var out []FlowCell
	err := conn.Each(ctx, flowSQL, []any{bucketMs, bucketMs, fromMs, toMs}, func(rows chdb.Rows) error {
		var c FlowCell
		if err := rows.Scan(&c.Lane, &c.ReceivedBucket, &c.LoadedBucket, &c.Events, &c.MinReceivedMs, &c.LagSumMs, &c.LagMaxMs); err != nil {
			return err
		}
		out = append(out, c)
		return nil
	})
	return out, err
}

// LateCell is how many customers had their first late event received in
// interval FirstBucket and their last late event loaded in LastBucket.
type LateCell struct {
	FirstBucket, LastBucket, Customers uint64
}

// LateCustomers counts the customers with events received in
// [fromMs, toMs) and loaded more than lateAfterMs later, by the intervals
// (bucketMs wide) of their first late receive and last late load.
func LateCustomers(ctx context.Context, conn *chdb.Conn, bucketMs uint64, fromMs, toMs int64, lateAfterMs uint64) ([]LateCell, error) {
	var out []LateCell
	err := conn.Each(ctx, staleSQL, []any{bucketMs, bucketMs, fromMs, toMs, lateAfterMs}, func(rows chdb.Rows) error {
		var c LateCell
		if err := rows.Scan(&c.FirstBucket, &c.LastBucket, &c.Customers); err != nil {
			return err
		}
		out = append(out, c)
		return nil
	})
	return out, err
}
