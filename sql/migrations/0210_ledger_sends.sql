-- ledger_sends: the send_ledger rows that record a delivery (sent_at_ms > 0),
-- in the order the qualifications were derived, for the send-latency panel,
-- which reads a range of derivation times (send_ledger is ordered by
-- campaign and customer). A key can have more than one such row (a later
-- progress row); readers group by key. Filled by
-- ledger_sends_mv.
CREATE TABLE IF NOT EXISTS ledger_sends (
    derived_at_ms           UInt64 COMMENT 'when the qualification was derived, epoch ms',
    campaign_id             String COMMENT 'campaign id',
    key                     UInt64 COMMENT 'cityHash64(ledger_key): the ledger entry',
    qualified_event_time_ms UInt64 COMMENT 'event time of the qualification, epoch ms',
    sent_at_ms              UInt64 COMMENT 'when delivery succeeded, epoch ms',
    lane                    String COMMENT 'lane of the qualifying event'
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(toDateTime(intDiv(derived_at_ms, 1000)))
ORDER BY (derived_at_ms, key)
