-- audience_transitions: the history of entries and exits. One row per
-- (audience_id, customer_id, episode, kind): a replayed evaluation writes the
-- same key again and collapses. Readers past a cursor use derived_at_ms with an
-- overlap window, and deduplicate by the key.
CREATE TABLE IF NOT EXISTS audience_transitions (
    audience_id    String COMMENT 'audience id',
    customer_id    String COMMENT 'customer id (resolved identity)',
    episode        UInt32 COMMENT 'entry number, from 1; the exit of an episode shares its number',
    kind           String COMMENT 'entered | exited',
    event_time_ms  UInt64 COMMENT 'event time that caused it (for time-driven exits, when the condition lapsed), epoch ms',
    ingest_time_ms UInt64 COMMENT 'ingest time of the causing event, epoch ms',
    derived_at_ms  UInt64 COMMENT 'when the evaluator derived it, epoch ms',
    message_id     String COMMENT 'message that caused it ('''' when time-driven)',
    lane           String COMMENT 'lane of the causing event',
    derived_at     DateTime COMMENT 'derived_at_ms in seconds, for partitioning'
) ENGINE = ReplacingMergeTree(derived_at_ms)
PARTITION BY toYYYYMM(derived_at)
ORDER BY (audience_id, customer_id, episode, kind)
