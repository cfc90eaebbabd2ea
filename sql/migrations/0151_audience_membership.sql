-- audience_membership: each customer's current membership per audience,
-- written by the evaluator; the newest row per (audience_id, customer_id) wins.
CREATE TABLE IF NOT EXISTS audience_membership (
    audience_id            String COMMENT 'audience id',
    customer_id            String COMMENT 'customer id (resolved identity)',
    member                 UInt8  COMMENT '1 while the customer is in the audience',
    episode                UInt32 COMMENT 'number of the current or last entry, from 1',
    changed_event_time_ms  UInt64 COMMENT 'event time of the event that caused the last change, epoch ms',
    changed_ingest_time_ms UInt64 COMMENT 'ingest time of that event, epoch ms',
    derived_at_ms          UInt64 COMMENT 'when the evaluator derived the last change, epoch ms',
    updated_at_ms          UInt64 COMMENT 'version of this row, epoch ms'
) ENGINE = ReplacingMergeTree(updated_at_ms)
ORDER BY (audience_id, customer_id)
