-- attribute_catalog: the attributes `tideline audiences apply` maintains, the
-- newest row per attribute wins. A row is written once the attribute's view
-- exists and its history was backfilled from events, so an attribute listed
-- here with active = 1 is complete.
CREATE TABLE IF NOT EXISTS attribute_catalog (
    attribute     String COMMENT 'trait key',
    set_once      UInt8  COMMENT '1: the first non-null value is kept; 0: last write wins',
    view_name     String COMMENT 'the materialized view that fills customer_attributes for it',
    active        UInt8  COMMENT '0 once no audience or setting needs it (its view is dropped)',
    applied_at_ms UInt64 COMMENT 'when this row was written, epoch ms'
) ENGINE = ReplacingMergeTree(applied_at_ms)
ORDER BY attribute
