-- signal_catalog: the signals `tideline audiences apply` maintains, newest
-- row per signal. Written once the signal's view exists and its history was
-- backfilled, like attribute_catalog.
CREATE TABLE IF NOT EXISTS signal_catalog (
    signal         String COMMENT 'signal id: a hash of its definition',
    type           String COMMENT 'event type matched: track | page',
    event          String COMMENT 'event name matched',
    value_property String COMMENT 'numeric property summed ('''' for counting signals)',
    filters        String COMMENT 'the property filters, as ClickHouse SQL over properties',
    view_name      String COMMENT 'the materialized view that fills customer_signals for it',
    active         UInt8  COMMENT '0 once no audience uses it (its view is dropped)',
    applied_at_ms  UInt64 COMMENT 'when this row was written, epoch ms'
) ENGINE = ReplacingMergeTree(applied_at_ms)
ORDER BY signal
