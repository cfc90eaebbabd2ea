-- trigger_event_feed: named events (track and page) in the order they were
-- loaded, for event-triggered campaigns to read past a cursor on
-- ingest_time_ms with a primary-key range (events is ordered by customer).
-- Filled by trigger_event_feed_mv; daily partitions older than the poller's
-- feed_retention are dropped by the poller.
CREATE TABLE IF NOT EXISTS trigger_event_feed (
    ingest_time_ms UInt64   COMMENT 'when the loader inserted the event, epoch ms (the feed position)',
    customer_id    String   COMMENT 'customer id',
    message_id     String   COMMENT 'message id',
    event          String   COMMENT 'event name (track event or page name)',
    properties     String   COMMENT 'properties object as JSON',
    event_time_ms  UInt64   COMMENT 'event time, epoch ms',
    lane           String   COMMENT 'web | server | backfill',
    ingest_time    DateTime COMMENT 'ingest_time_ms in seconds, for partitioning'
) ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(ingest_time)
ORDER BY (ingest_time_ms, event, customer_id, message_id)
