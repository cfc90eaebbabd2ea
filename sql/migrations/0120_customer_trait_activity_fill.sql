-- Fills customer_activity from the events loaded before
-- mv_customer_trait_activity existed: the 'traits' rows that view writes, and
-- again the track and page rows of mv_customer_activity, so that the table
-- reads as if both views had always been there. Rows collapse by key, so
-- running it again, or beside the views, adds nothing.
INSERT INTO customer_activity (minute, type, event, customer_id)
SELECT minute, type, event, customer_id
FROM
(
    SELECT toStartOfMinute(event_time) AS minute, type, event, customer_id
    FROM events
    WHERE type IN ('track', 'page')
    GROUP BY minute, type, event, customer_id
    UNION ALL
    SELECT toStartOfMinute(event_time) AS minute, 'traits' AS type, '' AS event, customer_id
    FROM events
    WHERE traits NOT IN ('', '{}')
    GROUP BY minute, customer_id
)
