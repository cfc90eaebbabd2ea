-- event_positions: the Kafka position of every row ever inserted into events,
-- one row per delivery. events collapses the deliveries of one message on
-- merge, and with them every position but one; this table is a plain
-- MergeTree, which never collapses, so what it says was loaded does not
-- change when ClickHouse merges. backfill plan and apply read positions here,
-- and look messages up in events. Filled by event_positions_mv in the same
-- INSERT as events. Partitioned by month of ingest: it is kept as long as its
-- partitions are (longer than Kafka's retention); drop old months with
-- ALTER TABLE event_positions DROP PARTITION YYYYMM.
CREATE TABLE IF NOT EXISTS event_positions (
    kafka_topic     String COMMENT 'topic of the record (for a re-ingest, the topic the event was first produced to)',
    kafka_partition Int32  COMMENT 'partition of the record',
    kafka_offset    Int64  COMMENT 'offset of the record',
    customer_id     String COMMENT 'customer of the event, as in events',
    message_id      String COMMENT 'messageId of the event, as in events',
    lane            String COMMENT 'lane that loaded it: web | server | backfill',
    received_at_ms  UInt64 COMMENT 'when the collector received the event, epoch ms',
    ingest_time_ms  UInt64 COMMENT 'when the loader inserted this delivery, epoch ms'
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(toDateTime(intDiv(ingest_time_ms, 1000)))
ORDER BY (kafka_topic, kafka_partition, kafka_offset)
