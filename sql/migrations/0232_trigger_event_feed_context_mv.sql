-- trigger_event_feed_context_mv copies every named event, with its
-- context, into the poller's feed.
CREATE MATERIALIZED VIEW IF NOT EXISTS trigger_event_feed_context_mv TO trigger_event_feed AS
SELECT ingest_time_ms, customer_id, message_id, event, properties, event_time_ms, lane,
    toDateTime(intDiv(ingest_time_ms, 1000)) AS ingest_time, context, context_ip
FROM events
WHERE event != ''
