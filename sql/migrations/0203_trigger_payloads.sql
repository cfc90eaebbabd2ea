-- trigger_payloads: the webhook body of every fire, written with its ledger
-- entry (or, if that write was lost, before the entry's first send), so a
-- delivery retried after a crash or by `tideline trigger redeliver` sends the
-- same bytes under the same webhook id. The newest row per key wins.
CREATE TABLE IF NOT EXISTS trigger_payloads (
    ledger_key    String   COMMENT 'webhook id (send_ledger.ledger_key)',
    campaign_id   String   COMMENT 'campaign id',
    payload       String   COMMENT 'the JSON body as signed and sent',
    created_at_ms UInt64   COMMENT 'when the payload was built, epoch ms',
    created_at    DateTime COMMENT 'created_at_ms in seconds, for partitioning'
) ENGINE = ReplacingMergeTree(created_at_ms)
PARTITION BY toYYYYMM(created_at)
ORDER BY ledger_key
