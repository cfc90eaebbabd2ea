-- ingest_delay_minutes_mv aggregates every insert into events into
-- ingest_delay_minutes.
CREATE MATERIALIZED VIEW IF NOT EXISTS ingest_delay_minutes_mv TO ingest_delay_minutes AS
SELECT
    lane,
    toStartOfMinute(toDateTime(intDiv(received_at_ms, 1000))) AS minute,
    countState() AS rows,
    quantilesTimingState(0.5, 0.95, 0.99)(toUInt64(greatest(toInt64(ingest_time_ms) - toInt64(received_at_ms), 0))) AS delay,
    maxState(toUInt64(greatest(toInt64(ingest_time_ms) - toInt64(received_at_ms), 0))) AS worst
FROM events
GROUP BY lane, minute
