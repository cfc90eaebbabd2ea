-- customer_signals: for each signal an audience uses (an event name with
-- optional property filters and an optional numeric property to sum), the
-- occurrences per customer and hour of event time, as a set of
-- (event_time_ms, message_id, value). One materialized view per signal
-- (mv_signal_<id>, installed by `tideline audiences apply`) fills it. A set
-- ignores a redelivered message, and keeping event times lets the evaluator
-- cut a window at an exact millisecond. Read with groupUniqArrayMerge.
CREATE TABLE IF NOT EXISTS customer_signals (
    customer_id String   COMMENT 'customer id as in events; identities are merged when read',
    signal      String   COMMENT 'signal id (see signal_catalog)',
    bucket      DateTime COMMENT 'start of the hour of event time',
    occurrences AggregateFunction(groupUniqArray, Tuple(UInt64, String, Float64)) COMMENT 'set of (event_time_ms, message_id, value); value is the summed property, 0 for counting signals'
) ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(bucket)
ORDER BY (customer_id, signal, bucket)
