-- mv_customer_touches_alias_partition replaces mv_customer_touches_alias,
-- with the partition of each row: an alias touches both the user and the
-- linked previous id as a linking identify does, so the evaluator
-- re-evaluates both.
CREATE MATERIALIZED VIEW IF NOT EXISTS mv_customer_touches_alias_partition TO customer_touches AS
SELECT
    now() AS touched_at,
    touched.1 AS customer_id,
    touched.2 AS alias,
    message_id,
    type,
    event,
    toUInt8(traits NOT IN ('', '{}')) AS has_traits,
    toUInt8(1) AS link,
    event_time_ms,
    ingest_time_ms,
    lane,
    kafka_partition
FROM events
ARRAY JOIN [(user_id, toUInt8(0)), (concat('anon:', previous_id), toUInt8(1))] AS touched
WHERE type = 'alias' AND user_id != '' AND previous_id != ''
