-- campaigns: the campaign definitions the poller runs, newest version per id.
CREATE TABLE IF NOT EXISTS campaigns (
    campaign_id   String COMMENT 'campaign id from its YAML file',
    name          String COMMENT 'human name',
    definition    String COMMENT 'the YAML definition as applied',
    version       String COMMENT 'hash of the definition',
    active        UInt8  COMMENT '0 once removed',
    applied_at_ms UInt64 COMMENT 'when this version was applied, epoch ms'
) ENGINE = ReplacingMergeTree(applied_at_ms)
ORDER BY campaign_id
