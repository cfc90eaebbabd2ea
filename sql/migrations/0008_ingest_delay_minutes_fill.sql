-- Fills ingest_delay_minutes from the events loaded before
-- ingest_delay_minutes_mv existed. A batch loaded meanwhile counts twice.
INSERT INTO ingest_delay_minutes (lane, minute, rows, delay, worst)
SELECT
    lane,
    toStartOfMinute(toDateTime(intDiv(received_at_ms, 1000))) AS minute,
    countState(),
    quantilesTimingState(0.5, 0.95, 0.99)(toUInt64(greatest(toInt64(ingest_time_ms) - toInt64(received_at_ms), 0))),
    maxState(toUInt64(greatest(toInt64(ingest_time_ms) - toInt64(received_at_ms), 0)))
FROM events
GROUP BY lane, minute
