// Package report writes the incident report of a backfill window: a
// self-contained HTML page (and Markdown for a status page) with charts of
// per-lane lag and watermark age over the window, events received versus
// loaded per interval, the missing offset ranges, customers stale over
// time, pending qualifications by decision and reason, and what each apply
// did. It reads a plan file (or a run recorded in backfill_runs) and the
// events table; it changes nothing.
//
// The series are computed from what ClickHouse holds: each loaded event's
// receive time and the time its first surviving copy was inserted. An
// event's lag is the difference; a lane's watermark at an instant is the
// receive time of its oldest event received but not yet loaded then, so
// its age is how far loading was behind. Events still missing from
// ClickHouse appear in the plan's ranges, not in these series.
package report
