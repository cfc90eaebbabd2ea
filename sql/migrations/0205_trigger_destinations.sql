-- trigger_destinations: destinations disabled by a 410 Gone answer (and
-- re-enabled by `tideline trigger redeliver --reenable`). The newest row per
-- destination wins; a destination without a row is enabled.
CREATE TABLE IF NOT EXISTS trigger_destinations (
    destination_id String COMMENT 'hash of (campaign, kind, target)',
    campaign_id    String COMMENT 'campaign id',
    destination    String COMMENT 'webhook:<url> or kafka:<topic>',
    disabled       UInt8  COMMENT '1 while disabled',
    reason         String COMMENT 'why it was disabled or re-enabled',
    updated_at_ms  UInt64 COMMENT 'version of this row, epoch ms'
) ENGINE = ReplacingMergeTree(updated_at_ms)
ORDER BY destination_id
