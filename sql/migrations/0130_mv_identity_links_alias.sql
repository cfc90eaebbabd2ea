-- mv_identity_links_alias: an alias call links its previousId to its userId
-- under the rule identify links follow (identity_links: the earliest claim
-- of an id by event time, then message id, wins). The previous id is taken
-- as the anonymous id it is in the browser SDKs' alias (previousId defaults
-- to the anonymousId), so its events count for the user.
CREATE MATERIALIZED VIEW IF NOT EXISTS mv_identity_links_alias TO identity_links AS
SELECT
    concat('anon:', previous_id) AS anonymous_customer_id,
    argMinState((user_id, event_time_ms, message_id), (event_time_ms, message_id)) AS link
FROM events
WHERE type = 'alias' AND user_id != '' AND previous_id != ''
GROUP BY anonymous_customer_id
