-- trigger_dead_letters: deliveries that exhausted their retries (or met a
-- disabled destination), with the last error. `tideline trigger redeliver`
-- sends them again under the same webhook id and marks them redelivered.
-- The newest row per (ledger_key, destination_id) wins.
CREATE TABLE IF NOT EXISTS trigger_dead_letters (
    ledger_key     String   COMMENT 'webhook id',
    campaign_id    String   COMMENT 'campaign id',
    customer_id    String   COMMENT 'customer id',
    destination_id String   COMMENT 'hash of (campaign, kind, target)',
    destination    String   COMMENT 'webhook:<url> or kafka:<topic>',
    payload        String   COMMENT 'the JSON body that was being sent',
    attempts       UInt32   COMMENT 'attempts made',
    last_status    UInt16   COMMENT 'last HTTP status (0 for a timeout, a connection error or Kafka)',
    last_error     String   COMMENT 'last error',
    state          String   COMMENT 'dead | redelivered',
    dead_at_ms     UInt64   COMMENT 'when the delivery was given up, epoch ms',
    updated_at_ms  UInt64   COMMENT 'version of this row, epoch ms',
    dead_at        DateTime COMMENT 'dead_at_ms in seconds, for partitioning'
) ENGINE = ReplacingMergeTree(updated_at_ms)
PARTITION BY toYYYYMM(dead_at)
ORDER BY (ledger_key, destination_id)
