-- customer_attribute_history: every value each maintained attribute was
-- sent, per customer, as a set of (event_time_ms, message_id, value,
-- is_null). A view beside customer_attributes' fills it (installed by
-- `tideline audiences apply`). The evaluator reads it to know an attribute's
-- value as of any moment and since when its current value holds: a value
-- sent again unchanged does not move that moment, and a set ignores a
-- redelivered message, so neither duplicates nor arrival order change what
-- it answers. Read with groupUniqArrayMerge.
CREATE TABLE IF NOT EXISTS customer_attribute_history (
    customer_id String COMMENT 'customer id as in events; identities are merged when read',
    attribute   String COMMENT 'trait key',
    changes     AggregateFunction(groupUniqArray, Tuple(UInt64, String, String, UInt8)) COMMENT 'set of (event_time_ms, message_id, value, is_null) of every message that sent the trait'
) ENGINE = AggregatingMergeTree()
ORDER BY (customer_id, attribute)
