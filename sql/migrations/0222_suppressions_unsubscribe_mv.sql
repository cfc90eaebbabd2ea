-- suppressions_unsubscribe_mv adds every `unsubscribe` event to suppressions,
-- versioned by its event time and stamped with its load time.
CREATE MATERIALIZED VIEW IF NOT EXISTS suppressions_unsubscribe_mv TO suppressions AS
SELECT customer_id, toUInt8(1) AS active, 'unsubscribe' AS reason, 'event' AS source,
    event_time_ms AS suppressed_at_ms, event_time_ms AS updated_at_ms, ingest_time_ms AS loaded_at_ms
FROM events
WHERE event = 'unsubscribe'
