-- mv_customer_trait_activity adds to customer_activity, as type 'traits', the
-- customers whose traits an event set in each minute of event time: when an
-- audience's evaluation time passes a minute, those customers' attribute
-- values as of that time may have changed.
CREATE MATERIALIZED VIEW IF NOT EXISTS mv_customer_trait_activity TO customer_activity AS
SELECT
    toStartOfMinute(event_time) AS minute,
    'traits' AS type,
    '' AS event,
    customer_id
FROM events
WHERE traits NOT IN ('', '{}')
GROUP BY minute, customer_id
