-- mv_customer_touches_partition keeps customer_touches current, with the
-- partition of each row; it replaces mv_customer_touches. The customer id is
-- rebuilt from user_id and anonymous_id (as the loader builds it) so that a
-- linking identify can touch both ids.
CREATE MATERIALIZED VIEW IF NOT EXISTS mv_customer_touches_partition TO customer_touches AS
SELECT
    now() AS touched_at,
    touched.1 AS customer_id,
    touched.2 AS alias,
    message_id,
    type,
    event,
    toUInt8(traits NOT IN ('', '{}')) AS has_traits,
    toUInt8(type = 'identify' AND user_id != '' AND anonymous_id != '') AS link,
    event_time_ms,
    ingest_time_ms,
    lane,
    kafka_partition
FROM events
ARRAY JOIN
    if(type = 'identify' AND user_id != '' AND anonymous_id != '',
       [(user_id, toUInt8(0)), (concat('anon:', anonymous_id), toUInt8(1))],
       [(if(user_id != '', user_id, concat('anon:', anonymous_id)), toUInt8(0))]) AS touched
