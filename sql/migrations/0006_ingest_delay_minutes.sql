-- ingest_delay_minutes: per lane and minute of receive time, how long events
-- took from the collector to ClickHouse (ingest_time_ms - received_at_ms), as
-- aggregate states a dashboard merges over any range of minutes instead of
-- scanning events. Every inserted row counts, a redelivered one included: it
-- measures the loader's work, not distinct events. Filled by
-- ingest_delay_minutes_mv.
CREATE TABLE IF NOT EXISTS ingest_delay_minutes (
    lane   String COMMENT 'web | server | backfill',
    minute DateTime COMMENT 'minute of received_at_ms',
    rows   AggregateFunction(count) COMMENT 'rows inserted',
    delay  AggregateFunction(quantilesTiming(0.5, 0.95, 0.99), UInt64) COMMENT 'p50, p95, p99 of ingest_time_ms - received_at_ms, in ms',
    worst  AggregateFunction(max, UInt64) COMMENT 'largest ingest_time_ms - received_at_ms, in ms'
) ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(minute)
ORDER BY (lane, minute)
