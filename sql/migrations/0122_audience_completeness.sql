-- audience_completeness: per audience, up to when its result is complete and
-- which lane holds it back, newest row per audience. The evaluator writes it
-- every pass that changes it; `tideline audiences list` and the pipeline
-- panel read it.
CREATE TABLE IF NOT EXISTS audience_completeness (
    audience_id    String        COMMENT 'audience id',
    lanes          Array(String) COMMENT 'lanes that can change the audience (its lanes: override, else what the lanes have carried)',
    direction      String        COMMENT 'what late data can do to it: fixed | rising | falling | either (see README)',
    complete_ms    UInt64        COMMENT 'smallest watermark of its lanes: decisions late data could falsify are made up to here, epoch ms',
    eager_ms       UInt64        COMMENT 'freshest lane watermark: decisions late data cannot falsify are made up to here, epoch ms',
    held_by        String        COMMENT 'the lane whose watermark is complete_ms ('''' when none is behind the freshest)',
    updated_at_ms  UInt64        COMMENT 'when this row was written, epoch ms'
) ENGINE = ReplacingMergeTree(updated_at_ms)
ORDER BY audience_id
