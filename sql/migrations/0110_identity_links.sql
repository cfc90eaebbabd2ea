-- identity_links: which user an anonymous id belongs to, from identify calls
-- carrying both userId and anonymousId. When several users claim one
-- anonymous id, the claim with the smallest (event time, message id) wins,
-- whatever order the claims arrive in. Read with argMinMerge(link).
CREATE TABLE IF NOT EXISTS identity_links (
    anonymous_customer_id String COMMENT 'anon:<anonymousId>, the customer id of the anonymous events',
    link AggregateFunction(argMin, Tuple(String, UInt64, String), Tuple(UInt64, String)) COMMENT 'argMin state of (user_id, event_time_ms, message_id) by (event_time_ms, message_id)'
) ENGINE = AggregatingMergeTree()
ORDER BY anonymous_customer_id
