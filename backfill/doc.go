// Package backfill reconciles an incident window: it finds what a
// processing delay or a loss left undone and does it, exactly once.
//
// A plan compares, per lane and partition, the Kafka offsets of a window
// (found with offsets-for-times) with the offsets present in ClickHouse and
// lists the missing ones as exact ranges; it measures how late the loaded
// events were; it replays the window's raw events to find customers whose
// attributes or audience memberships differ from what was materialized; and
// it lists qualifications that have no send-ledger entry with what each
// campaign's staleness policy would decide now. A plan changes nothing.
//
// Apply executes a plan: it re-ingests the missing records through the
// events.backfill lane (which the loader pauses while live lanes lag),
// keeping each record's original Kafka position in headers so the loaded row
// is found where the plan looked for it; it re-derives the customers whose
// state differs; and it hands the missing qualifications to the trigger's
// decision function and the shared send ledger, so a qualification already
// decided is never sent again. Progress is checkpointed in ClickHouse, so a
// killed apply continues where it stopped, and an apply of a plan that is
// already done changes nothing. Every plan and apply is recorded in
// backfill_runs.
//
// When Kafka no longer holds a window, the archive sub-package's Parquet or
// Arrow IPC export of the events table is the source instead.
package backfill
