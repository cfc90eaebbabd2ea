-- audiences: the audience definitions `tideline audiences apply` installed,
-- newest version per id. Read by the evaluator, the Grafana plugin and analysts.
CREATE TABLE IF NOT EXISTS audiences (
    audience_id   String COMMENT 'audience id from its YAML file',
    name          String COMMENT 'human name',
    definition    String COMMENT 'the YAML definition as applied',
    condition_sql String COMMENT 'the compiled ClickHouse condition',
    version       String COMMENT 'hash of the definition',
    active        UInt8  COMMENT '0 once removed from the definitions folder',
    applied_at_ms UInt64 COMMENT 'when this version was applied, epoch ms'
) ENGINE = ReplacingMergeTree(applied_at_ms)
ORDER BY audience_id
