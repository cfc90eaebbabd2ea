-- suppressions: customers who must receive nothing. An operator loads rows
-- (INSERT INTO suppressions (customer_id, active, reason, source,
-- suppressed_at_ms, updated_at_ms)), and every `unsubscribe` event adds one
-- through suppressions_unsubscribe_mv. The newest row per customer by
-- updated_at_ms decides, so a row with active = 0 lifts a suppression and a
-- replayed old unsubscribe does not override a newer lift. Campaigns check
-- it when they decide and again before they send.
CREATE TABLE IF NOT EXISTS suppressions (
    customer_id      String COMMENT 'customer id',
    active           UInt8  COMMENT '1: suppressed, 0: lifted',
    reason           String COMMENT 'why, e.g. unsubscribe, complaint, legal hold',
    source           String COMMENT 'operator | event',
    suppressed_at_ms UInt64 COMMENT 'when the customer asked (the event time), epoch ms',
    updated_at_ms    UInt64 COMMENT 'version: the event time of an unsubscribe, the time of an operator change',
    loaded_at_ms     UInt64 DEFAULT toUInt64(toUnixTimestamp(now())) * 1000 COMMENT 'when the row was written, epoch ms: pollers read new rows past it'
) ENGINE = ReplacingMergeTree(updated_at_ms)
ORDER BY customer_id
