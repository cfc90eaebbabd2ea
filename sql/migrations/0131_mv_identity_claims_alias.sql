-- mv_identity_claims_alias: the (user, previous id) pair of every alias call,
-- as mv_identity_claims records identify's pairs.
CREATE MATERIALIZED VIEW IF NOT EXISTS mv_identity_claims_alias TO identity_claims AS
SELECT
    user_id,
    concat('anon:', previous_id) AS anonymous_customer_id
FROM events
WHERE type = 'alias' AND user_id != '' AND previous_id != ''
GROUP BY user_id, anonymous_customer_id
