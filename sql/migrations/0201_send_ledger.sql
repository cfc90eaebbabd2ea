-- send_ledger: one entry per (campaign, customer, qualification episode),
-- shared by the poller and the backfill. ledger_key is a deterministic hash
-- of that triple and is the webhook id. Later rows for the same key record
-- delivery progress; the decision and reason of a key never change once
-- written. Read with FINAL (or argMax by updated_at_ms).
CREATE TABLE IF NOT EXISTS send_ledger (
    ledger_key               String COMMENT 'webhook id: hash of (campaign_id, customer_id, episode)',
    campaign_id              String COMMENT 'campaign id',
    customer_id              String COMMENT 'customer id',
    audience_id              String COMMENT 'audience of an audience-triggered campaign ('''' for event triggers)',
    episode                  String COMMENT 'qualification episode: the audience episode number, or the triggering message id',
    decision                 String COMMENT 'fire | fire_late | skip',
    reason                   String COMMENT 'why: fresh, late, stale, capped, not_reeligible, ...',
    qualified_event_time_ms  UInt64 COMMENT 'event time of the qualification, epoch ms',
    qualified_ingest_time_ms UInt64 COMMENT 'ingest time of the qualifying event, epoch ms',
    derived_at_ms            UInt64 COMMENT 'when the qualification was derived, epoch ms',
    detected_at_ms           UInt64 COMMENT 'when the poller or backfill decided, epoch ms',
    sent_at_ms               UInt64 COMMENT 'when delivery succeeded (0 until then), epoch ms',
    delivery_state           String COMMENT 'pending | delivered | failed | dead | disabled | skipped',
    attempts                 UInt32 COMMENT 'delivery attempts so far',
    last_error               String COMMENT 'last delivery error',
    origin                   String COMMENT 'poller | backfill',
    lane                     String COMMENT 'lane of the qualifying event',
    updated_at_ms            UInt64 COMMENT 'version of this row, epoch ms',
    detected_at              DateTime COMMENT 'detected_at_ms in seconds, for partitioning'
) ENGINE = ReplacingMergeTree(updated_at_ms)
PARTITION BY toYYYYMM(detected_at)
ORDER BY (campaign_id, customer_id, ledger_key)
