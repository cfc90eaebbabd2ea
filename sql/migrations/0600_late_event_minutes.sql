-- late_event_minutes: per lane, minute of receipt and lateness class, how
-- many events the collector received how long after their event time
-- (received_at_ms - event_time_ms), as count states the incident dashboard
-- merges over any range instead of scanning events. Classes (ms): 0 under
-- 10 s, 1 under 1 min, 2 under 5 min, 3 under 30 min, 4 under 2 h, 5 under
-- 24 h, 6 the rest (grafana/query LatenessBoundsMs). Every inserted row
-- counts, a redelivered one included, like ingest_delay_minutes. Filled by
-- late_event_minutes_mv.
CREATE TABLE IF NOT EXISTS late_event_minutes (
    lane     String                   COMMENT 'web | server | backfill',
    minute   DateTime                 COMMENT 'minute of received_at_ms',
    lateness UInt8                    COMMENT 'lateness class of received_at_ms - event_time_ms (see above)',
    rows     AggregateFunction(count) COMMENT 'rows inserted'
) ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(minute)
ORDER BY (lane, minute, lateness)
