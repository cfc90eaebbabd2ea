-- backfill_checkpoints: how far an apply of a plan has re-ingested each
-- partition, so a killed apply continues where it stopped instead of
-- producing the same records again. Newest row per key wins.
CREATE TABLE IF NOT EXISTS backfill_checkpoints (
    plan_id         String COMMENT 'plan being applied',
    run_id          String COMMENT 'apply run that wrote this checkpoint',
    kafka_topic     String COMMENT 'original topic of the re-ingested records',
    kafka_partition Int32  COMMENT 'original partition',
    next_offset     Int64  COMMENT 'every missing record of this partition below this original offset was produced to the backfill lane',
    reingested      UInt64 COMMENT 'records of this partition produced so far by applies of this plan',
    updated_at_ms   UInt64 COMMENT 'version of this row, epoch ms'
) ENGINE = ReplacingMergeTree(updated_at_ms)
ORDER BY (plan_id, kafka_topic, kafka_partition)
