-- audience_transition_keys: audience_transitions narrowed to what the
-- dashboards count, in event-time order, so a panel's time range is a
-- primary-key range and a transition is one UInt64 instead of a
-- (customer_id, episode) string tuple. Copies of a transition (a replayed
-- evaluation) share its event time, so they fall in the same hour and bucket
-- and readers count distinct keys per hour or bucket, which is exact. A
-- 64-bit hash makes two transitions of one audience, kind and hour collide
-- with a probability near n^2 / 2^65 (about 1e-7 for a million). Filled by
-- audience_transition_keys_mv.
CREATE TABLE IF NOT EXISTS audience_transition_keys (
    audience_id   String COMMENT 'audience id',
    event_time_ms UInt64 COMMENT 'event time of the transition, epoch ms (as in audience_transitions)',
    key           UInt64 COMMENT 'cityHash64(customer_id, episode): the transition within its audience and kind',
    kind          String COMMENT 'entered | exited',
    derived_at_ms UInt64 COMMENT 'when the evaluator derived this copy, epoch ms; the newest copy wins a merge',
    lane          String COMMENT 'lane of the causing event'
) ENGINE = ReplacingMergeTree(derived_at_ms)
PARTITION BY toYYYYMM(toDateTime(intDiv(event_time_ms, 1000)))
ORDER BY (audience_id, event_time_ms, key, kind)
