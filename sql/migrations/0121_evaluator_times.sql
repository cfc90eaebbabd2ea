-- evaluator_times: the evaluation times of the evaluator's last pass, newest
-- row per (evaluator, time_key). 'eager' is the freshest lane watermark, at
-- which conditions that more data cannot falsify are decided; 'lanes:<a,b>'
-- is the smallest watermark of those lanes, the time up to which audiences
-- fed by exactly them are complete. Each is the previous time of the next
-- pass, which finds the customers whose windows moved in between.
CREATE TABLE IF NOT EXISTS evaluator_times (
    evaluator     String COMMENT 'evaluator id (materialize.evaluator_id)',
    time_key      String COMMENT 'eager, or lanes:<sorted lanes>',
    as_of_ms      UInt64 COMMENT 'evaluation time of the last pass, epoch ms',
    updated_at_ms UInt64 COMMENT 'when this row was written, epoch ms'
) ENGINE = ReplacingMergeTree(updated_at_ms)
ORDER BY (evaluator, time_key)
