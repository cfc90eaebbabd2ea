-- backfill_runs: every backfill action (plan, dry run, apply), who ran it,
-- on what window and with what result. An apply rewrites its row as it
-- progresses (updated_at_ms is also its heartbeat); the newest row per run_id
-- wins, so read with FINAL or argMax by updated_at_ms.
CREATE TABLE IF NOT EXISTS backfill_runs (
    run_id              String COMMENT 'id of this action',
    plan_id             String COMMENT 'id of the plan (hash of its findings)',
    kind                String COMMENT 'plan | dry_run | apply',
    state               String COMMENT 'planned | running | completed | noop | failed | interrupted | refused',
    phase               String COMMENT 'step an apply is in or stopped at: reingest | load | derive | qualify | done',
    who                 String COMMENT 'operator as user@host',
    host                String COMMENT 'host the command ran on',
    pid                 UInt32 COMMENT 'process id, to tell a killed apply from a live one on the same host',
    command             String COMMENT 'command line as run',
    source              String COMMENT 'kafka, or the archive file events were re-ingested from',
    lanes               String COMMENT 'lanes covered, comma-separated',
    campaigns           String COMMENT 'campaigns covered, comma-separated ('''' for all)',
    window_from_ms      UInt64 COMMENT 'window start (Kafka record time, inclusive), epoch ms',
    window_to_ms        UInt64 COMMENT 'window end (exclusive), epoch ms',
    started_at_ms       UInt64 COMMENT 'when the action started, epoch ms',
    finished_at_ms      UInt64 COMMENT 'when it ended (0 while running), epoch ms',
    events_in_window    UInt64 COMMENT 'Kafka records in the window',
    events_missing      UInt64 COMMENT 'records in Kafka (or the archive) but not in ClickHouse',
    events_late         UInt64 COMMENT 'records loaded later than the lateness threshold',
    events_reingested   UInt64 COMMENT 'records this apply produced to the backfill lane',
    events_restored     UInt64 COMMENT 'missing records found in ClickHouse after this apply',
    customers_stale     UInt64 COMMENT 'customers whose attributes or memberships differed from a replay',
    customers_rederived UInt64 COMMENT 'customers this apply re-evaluated',
    qualifications      UInt64 COMMENT 'qualifications in the window without a ledger entry',
    fired               UInt64 COMMENT 'ledger entries written with decision fire',
    fired_late          UInt64 COMMENT 'ledger entries written with decision fire_late',
    skipped             UInt64 COMMENT 'ledger entries written with decision skip',
    error               String COMMENT 'why the action failed or was refused',
    updated_at_ms       UInt64 COMMENT 'version of this row and heartbeat of a running apply, epoch ms'
) ENGINE = ReplacingMergeTree(updated_at_ms)
ORDER BY run_id
