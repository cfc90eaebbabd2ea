-- mv_identity_claims keeps identity_claims current.
CREATE MATERIALIZED VIEW IF NOT EXISTS mv_identity_claims TO identity_claims AS
SELECT
    user_id,
    concat('anon:', anonymous_id) AS anonymous_customer_id
FROM events
WHERE type = 'identify' AND user_id != '' AND anonymous_id != ''
GROUP BY user_id, anonymous_customer_id
