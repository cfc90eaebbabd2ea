-- mv_customer_activity keeps customer_activity current.
CREATE MATERIALIZED VIEW IF NOT EXISTS mv_customer_activity TO customer_activity AS
SELECT
    toStartOfMinute(event_time) AS minute,
    type,
    event,
    customer_id
FROM events
WHERE type IN ('track', 'page')
GROUP BY minute, type, event, customer_id
