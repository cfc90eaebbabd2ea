-- mv_identity_links keeps identity_links current.
CREATE MATERIALIZED VIEW IF NOT EXISTS mv_identity_links TO identity_links AS
SELECT
    concat('anon:', anonymous_id) AS anonymous_customer_id,
    argMinState((user_id, event_time_ms, message_id), (event_time_ms, message_id)) AS link
FROM events
WHERE type = 'identify' AND user_id != '' AND anonymous_id != ''
GROUP BY anonymous_customer_id
