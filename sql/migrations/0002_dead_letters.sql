-- dead_letters: records the loader could not accept, with the reason and the
-- raw payload. Keyed by the Kafka position, so a replayed batch collapses.
CREATE TABLE IF NOT EXISTS dead_letters (
    kafka_topic     String  COMMENT 'topic the record was consumed from',
    kafka_partition Int32   COMMENT 'partition of the record',
    kafka_offset    Int64   COMMENT 'offset of the record',
    lane            String  COMMENT 'lane of the topic (web | server | backfill | collector)',
    reason          String  COMMENT 'why the record was rejected',
    field           String  COMMENT 'the offending field, when one is to blame',
    raw             String  COMMENT 'the record value as received',
    received_at_ms  UInt64  COMMENT 'when the loader saw the record, epoch ms',
    received_at     DateTime COMMENT 'received_at_ms in seconds, for partitioning'
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(received_at)
ORDER BY (kafka_topic, kafka_partition, kafka_offset)
