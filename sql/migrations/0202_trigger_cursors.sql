-- trigger_cursors: how far the trigger poller has durably decided each feed,
-- per customer shard. The newest row per (cursor_id, shard) wins. A restarted
-- or newly assigned poller reads again from the position less its overlap
-- window; the ledger makes that re-read harmless.
CREATE TABLE IF NOT EXISTS trigger_cursors (
    cursor_id     String COMMENT 'feed: transitions | events',
    shard         UInt32 COMMENT 'customer shard (cityHash64(customer_id) % shard count)',
    position_ms   UInt64 COMMENT 'every feed row before this position (epoch ms) is decided or waiting in a later position',
    updated_at_ms UInt64 COMMENT 'version of this row, epoch ms'
) ENGINE = ReplacingMergeTree(updated_at_ms)
ORDER BY (cursor_id, shard)
