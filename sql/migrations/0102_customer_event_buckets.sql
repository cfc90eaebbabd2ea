-- customer_event_buckets: per customer, event type and name, and hour of
-- event time: how many distinct messages, and the first and last event time.
-- Filled by mv_customer_event_buckets. uniqExact over message ids, min and
-- max are all unchanged by a redelivered message, so replays change nothing.
-- Read with uniqExactMerge(messages), minMerge(first_seen_ms), maxMerge(last_seen_ms).
CREATE TABLE IF NOT EXISTS customer_event_buckets (
    customer_id   String   COMMENT 'customer id as in events',
    type          String   COMMENT 'track | identify | page',
    event         String   COMMENT 'event name (page name for page, '''' for identify)',
    bucket        DateTime COMMENT 'start of the hour of event time',
    messages      AggregateFunction(uniqExact, String) COMMENT 'distinct message ids in the bucket',
    first_seen_ms AggregateFunction(min, UInt64) COMMENT 'earliest event time in the bucket, epoch ms',
    last_seen_ms  AggregateFunction(max, UInt64) COMMENT 'latest event time in the bucket, epoch ms'
) ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(bucket)
ORDER BY (customer_id, type, event, bucket)
