-- customer_activity_seconds: which customers had which track or page event,
-- or set traits or context attributes ('traits'), in each second of event
-- time. The evaluator finds time-driven changes with it: when an evaluation
-- time T moves from T1 to T2, only customers with a relevant event in
-- (T1 - window, T2 - window] can leave or enter a window. It replaces
-- customer_activity, whose minutes made every pass re-evaluate everyone
-- active in the current minute: at a few thousand events per second that
-- was most of each pass.
CREATE TABLE IF NOT EXISTS customer_activity_seconds (
    second      DateTime COMMENT 'the second of event time',
    type        String   COMMENT 'track | page | traits',
    event       String   COMMENT 'event name ('''' for traits)',
    customer_id String   COMMENT 'customer id as in events'
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(second)
ORDER BY (second, type, event, customer_id)
