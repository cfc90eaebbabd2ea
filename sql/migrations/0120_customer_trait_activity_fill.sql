-- Fills customer_activity's 'traits' rows from the events loaded before
-- mv_customer_trait_activity existed; rows collapse by key.
INSERT INTO customer_activity (minute, type, event, customer_id)
SELECT
    toStartOfMinute(event_time) AS minute,
    'traits' AS type,
    '' AS event,
    customer_id
FROM events
WHERE traits NOT IN ('', '{}')
GROUP BY minute, customer_id
