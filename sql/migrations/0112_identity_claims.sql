-- identity_claims: every (user, anonymous id) pair an identify claimed,
-- ordered by user so the evaluator can find a user's anonymous ids. Whether a
-- claim won is decided by identity_links.
CREATE TABLE IF NOT EXISTS identity_claims (
    user_id               String COMMENT 'userId of the identify',
    anonymous_customer_id String COMMENT 'anon:<anonymousId> it claimed'
) ENGINE = ReplacingMergeTree()
ORDER BY (user_id, anonymous_customer_id)
