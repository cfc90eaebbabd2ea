-- events: every accepted event, one row per delivery into ClickHouse.
-- A redelivered record (at-least-once ingest, a replayed batch, a backfill)
-- writes the same message again; ReplacingMergeTree collapses rows with the
-- same (customer_id, message_id) in the same month on merge, and every reader
-- that counts uses events_unique or uniqExact(message_id), never count().
CREATE TABLE IF NOT EXISTS events (
    message_id     String   COMMENT 'client-supplied messageId; the deduplication key',
    type           String   COMMENT 'track | identify | page',
    customer_id    String   COMMENT 'userId when present, else anon:<anonymousId>',
    user_id        String   COMMENT 'userId as sent ('''' when absent)',
    anonymous_id   String   COMMENT 'anonymousId as sent ('''' when absent)',
    event          String   COMMENT 'event name for track, page name for page, '''' for identify',
    properties     String   COMMENT 'properties object as JSON',
    traits         String   COMMENT 'traits object as JSON (identify, or context.traits)',
    event_time     DateTime COMMENT 'event time (UTC, seconds), corrected with sentAt',
    event_time_ms  UInt64   COMMENT 'event time, epoch milliseconds',
    sent_at_ms     UInt64   COMMENT 'sentAt from the client, epoch ms (0 when absent)',
    received_at_ms UInt64   COMMENT 'when the collector received the event, epoch ms',
    ingest_time_ms UInt64   COMMENT 'when the loader inserted this row, epoch ms',
    source         String   COMMENT 'write-key source name',
    lane           String   COMMENT 'web | server | backfill',
    kafka_topic    String   COMMENT 'topic the row was consumed from',
    kafka_partition Int32   COMMENT 'partition the row was consumed from',
    kafka_offset   Int64    COMMENT 'offset the row was consumed from'
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(event_time)
ORDER BY (customer_id, message_id)
