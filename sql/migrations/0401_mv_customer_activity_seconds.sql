-- mv_customer_activity_seconds keeps the track and page rows of
-- customer_activity_seconds current.
CREATE MATERIALIZED VIEW IF NOT EXISTS mv_customer_activity_seconds TO customer_activity_seconds AS
SELECT
    event_time AS second,
    type,
    event,
    customer_id
FROM events
WHERE type IN ('track', 'page')
GROUP BY second, type, event, customer_id
