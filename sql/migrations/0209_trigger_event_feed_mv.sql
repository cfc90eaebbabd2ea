-- trigger_event_feed_mv copies every named event into the poller's feed.
CREATE MATERIALIZED VIEW IF NOT EXISTS trigger_event_feed_mv TO trigger_event_feed AS
SELECT ingest_time_ms, customer_id, message_id, event, properties, event_time_ms, lane,
    toDateTime(intDiv(ingest_time_ms, 1000)) AS ingest_time
FROM events
WHERE event != ''
