-- audience_entry_times: every entry into an audience in the order it was
-- derived, for the qualification-latency panel, which reads a range of
-- derivation times (audience_transitions is ordered by audience and
-- customer, audience_transition_keys by event time). A replayed evaluation
-- adds a copy with a later derived_at_ms; readers keep the newest copy of
-- each key. Filled by audience_entry_times_mv.
CREATE TABLE IF NOT EXISTS audience_entry_times (
    derived_at_ms UInt64 COMMENT 'when the evaluator derived this copy, epoch ms',
    audience_id   String COMMENT 'audience id',
    key           UInt64 COMMENT 'cityHash64(audience_id, customer_id, episode): the entry',
    event_time_ms UInt64 COMMENT 'event time of the entry, epoch ms',
    lane          String COMMENT 'lane of the causing event'
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(toDateTime(intDiv(derived_at_ms, 1000)))
ORDER BY (derived_at_ms, key)
