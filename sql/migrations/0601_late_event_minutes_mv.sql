-- late_event_minutes_mv counts every insert into events into
-- late_event_minutes by lateness class.
CREATE MATERIALIZED VIEW IF NOT EXISTS late_event_minutes_mv TO late_event_minutes AS
SELECT
    lane,
    toStartOfMinute(toDateTime(intDiv(received_at_ms, 1000))) AS minute,
    toUInt8(multiIf((greatest(toInt64(received_at_ms) - toInt64(event_time_ms), 0) AS late) < 10000, 0, late < 60000, 1, late < 300000, 2, late < 1800000, 3, late < 7200000, 4, late < 86400000, 5, 6)) AS lateness,
    countState() AS rows
FROM events
GROUP BY lane, minute, lateness
