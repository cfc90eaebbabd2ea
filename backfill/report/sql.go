package report

// The report's statements, all read-only. Each event counts once (grouped by
// message id, with its earliest surviving insert), so the series do not
// change when ClickHouse merges duplicates away, except that a merge may
// drop the earliest copy of a redelivered event and move its load time to
// the copy kept. They run on ClickHouse 18.16 and current releases.

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
