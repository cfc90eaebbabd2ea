-- evaluator_state: the audience evaluator's durable position, newest row per
-- evaluator. It is written after a pass's transitions and memberships, so a
-- crash repeats work (which writes nothing new) and never skips it.
CREATE TABLE IF NOT EXISTS evaluator_state (
    evaluator           String   COMMENT 'evaluator id (materialize.evaluator_id)',
    touch_cursor        DateTime COMMENT 'customer_touches read up to here (re-read with an overlap)',
    as_of_ms            UInt64   COMMENT 'evaluation time T of the last pass: the lane watermark, epoch ms',
    audiences_signature String   COMMENT 'hash of the active audience versions the last pass evaluated',
    updated_at_ms       UInt64   COMMENT 'when this row was written, epoch ms'
) ENGINE = ReplacingMergeTree(updated_at_ms)
ORDER BY evaluator
