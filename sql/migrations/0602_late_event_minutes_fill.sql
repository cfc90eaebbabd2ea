-- Fills late_event_minutes from the events loaded before
-- late_event_minutes_mv existed. A batch loaded meanwhile counts twice.
INSERT INTO late_event_minutes (lane, minute, lateness, rows)
SELECT
    lane,
    toStartOfMinute(toDateTime(intDiv(received_at_ms, 1000))) AS minute,
    toUInt8(multiIf((greatest(toInt64(received_at_ms) - toInt64(event_time_ms), 0) AS late) < 10000, 0, late < 60000, 1, late < 300000, 2, late < 1800000, 3, late < 7200000, 4, late < 86400000, 5, 6)) AS lateness,
    countState()
FROM events
GROUP BY lane, minute, lateness
