-- customer_activity: which customers had which track or page event in each
-- minute of event time. The evaluator finds time-driven changes with it: when
-- the evaluation time T moves from T1 to T2, only customers with a relevant
-- event in (T1 - window, T2 - window] can leave or enter a window.
CREATE TABLE IF NOT EXISTS customer_activity (
    minute      DateTime COMMENT 'start of the minute of event time',
    type        String   COMMENT 'track | page',
    event       String   COMMENT 'event name',
    customer_id String   COMMENT 'customer id as in events'
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, type, event, customer_id)
