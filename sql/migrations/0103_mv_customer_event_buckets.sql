-- mv_customer_event_buckets keeps customer_event_buckets current.
CREATE MATERIALIZED VIEW IF NOT EXISTS mv_customer_event_buckets TO customer_event_buckets AS
SELECT
    customer_id,
    type,
    event,
    toStartOfHour(event_time) AS bucket,
    uniqExactState(message_id) AS messages,
    minState(event_time_ms) AS first_seen_ms,
    maxState(event_time_ms) AS last_seen_ms
FROM events
GROUP BY customer_id, type, event, bucket
