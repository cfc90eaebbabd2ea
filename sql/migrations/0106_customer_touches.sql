-- customer_touches: one row per inserted event row (two for an identify that
-- links an anonymous id), stamped with the server's clock when the insert
-- was processed. The evaluator reads it past a cursor on touched_at, with an
-- overlap, to find the customers whose state an insert may have changed.
-- It is a log, not a result: the evaluator drops partitions older than its
-- touch_retention.
CREATE TABLE IF NOT EXISTS customer_touches (
    touched_at     DateTime COMMENT 'server time the insert was processed (now() in the view)',
    customer_id    String   COMMENT 'customer id the row touches',
    alias          UInt8    COMMENT '1 for the anon:<anonymousId> row of a linking identify',
    message_id     String   COMMENT 'message id of the event',
    type           String   COMMENT 'track | identify | page',
    event          String   COMMENT 'event name',
    has_traits     UInt8    COMMENT '1 when the event carries traits (it may change attributes)',
    link           UInt8    COMMENT '1 for an identify with both userId and anonymousId',
    event_time_ms  UInt64   COMMENT 'event time, epoch ms',
    ingest_time_ms UInt64   COMMENT 'ingest time of this delivery, epoch ms',
    lane           String   COMMENT 'lane the event was loaded from'
) ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(touched_at)
ORDER BY (touched_at, customer_id)
