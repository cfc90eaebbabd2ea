-- customer_attributes: every customer's attribute values as aggregate states,
-- one row per (customer, attribute) after merges. One materialized view per
-- maintained attribute (mv_attr_<name>, installed by `tideline audiences
-- apply`) fills it from identify traits and track/page context.traits.
-- Read last_value with argMaxMerge: the value with the greatest (event time,
-- message id) wins, so a late older event never overwrites a newer one. Read
-- first_value with argMinMerge for set_once attributes: the first non-null
-- value. Both states hold (value, is_null, event_time_ms, ingest_time_ms,
-- message_id); a redelivered message ranks by its first ingest, so replays
-- change nothing.
CREATE TABLE IF NOT EXISTS customer_attributes (
    customer_id String COMMENT 'customer id as in events (userId, or anon:<anonymousId>); identities are merged when read',
    attribute   String COMMENT 'trait key',
    last_value  AggregateFunction(argMax, Tuple(String, UInt8, UInt64, UInt64, String), Tuple(UInt64, String, UInt64)) COMMENT 'argMax state of (value, is_null, event_time_ms, ingest_time_ms, message_id) by (event_time_ms, message_id, bitNot(ingest_time_ms))',
    first_value AggregateFunction(argMin, Tuple(String, UInt8, UInt64, UInt64, String), Tuple(UInt8, UInt64, String, UInt64)) COMMENT 'argMin state of the same tuple by (is_null, event_time_ms, message_id, ingest_time_ms): the first non-null value'
) ENGINE = AggregatingMergeTree()
ORDER BY (customer_id, attribute)
