-- trigger_transition_feed: audience transitions in the order they were
-- derived, for the poller to read past its cursor with a primary-key range
-- (audience_transitions is ordered by audience and customer, so reading it by
-- derived_at_ms would scan it whole on every poll). Filled by
-- trigger_transition_feed_mv; daily partitions older than the poller's
-- feed_retention are dropped by the poller.
CREATE TABLE IF NOT EXISTS trigger_transition_feed (
    derived_at_ms  UInt64   COMMENT 'when the evaluator derived the transition, epoch ms (the feed position)',
    audience_id    String   COMMENT 'audience id',
    customer_id    String   COMMENT 'customer id',
    episode        UInt32   COMMENT 'entry number, from 1',
    kind           String   COMMENT 'entered | exited',
    event_time_ms  UInt64   COMMENT 'event time that caused it, epoch ms',
    ingest_time_ms UInt64   COMMENT 'ingest time of the causing event, epoch ms',
    message_id     String   COMMENT 'message that caused it',
    lane           String   COMMENT 'lane of the causing event',
    derived_at     DateTime COMMENT 'derived_at_ms in seconds, for partitioning'
) ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(derived_at)
ORDER BY (derived_at_ms, audience_id, customer_id, episode, kind)
