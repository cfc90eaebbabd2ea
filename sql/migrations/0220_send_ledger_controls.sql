-- send_ledger_controls: what a campaign-safety control recorded about a
-- ledger entry, kept beside send_ledger (whose columns are fixed): the
-- release time of a fire deferred by quiet hours (its ledger state is
-- 'deferred' until then), the window of a global cap, the reason of a
-- suppression, a template error. Written before the entry's ledger row, so
-- a deferred entry is never visible without its release time. The newest
-- row per key wins.
CREATE TABLE IF NOT EXISTS send_ledger_controls (
    ledger_key    String   COMMENT 'send_ledger.ledger_key (the webhook id)',
    campaign_id   String   COMMENT 'campaign id',
    customer_id   String   COMMENT 'customer id',
    control       String   COMMENT 'quiet_hours | capped_global | suppressed | no_consent | template_error',
    detail        String   COMMENT 'the cap window, the suppression reason, the quiet hours and zone, the error',
    release_at_ms UInt64   COMMENT 'when a deferred fire may be sent, epoch ms (0: not deferred)',
    updated_at_ms UInt64   COMMENT 'version of this row, epoch ms',
    updated_at    DateTime COMMENT 'updated_at_ms in seconds, for partitioning'
) ENGINE = ReplacingMergeTree(updated_at_ms)
PARTITION BY toYYYYMM(updated_at)
ORDER BY ledger_key
