-- loader_progress: per lane and partition, the offset the loader committed and
-- the event-time watermark ("data complete up to T") that offset implies.
-- The newest row per (kafka_topic, kafka_partition) wins.
CREATE TABLE IF NOT EXISTS loader_progress (
    lane             String  COMMENT 'web | server | backfill',
    kafka_topic      String  COMMENT 'topic',
    kafka_partition  Int32   COMMENT 'partition',
    committed_offset Int64   COMMENT 'next offset to consume (Kafka commit semantics)',
    high_watermark   Int64   COMMENT 'partition end offset seen at the last fetch',
    watermark_ms     UInt64  COMMENT 'every event received before this time (epoch ms) is loaded',
    updated_at_ms    UInt64  COMMENT 'when this row was written, epoch ms'
) ENGINE = ReplacingMergeTree(updated_at_ms)
ORDER BY (kafka_topic, kafka_partition)
