package query

import (
	"fmt"
	"strings"
	"time"
)

// Statement is one SQL statement with its bound arguments, in order.
type Statement struct {
	// Name says which part of the answer the statement gives (e.g. "deltas",
	// "names"); the plugin scans each by name.
	Name string
	SQL  string
	Args []any
}

// Statement names, shared with the plugin that scans them.
const (
	StmtSizeDeltas     = "size_deltas"
	StmtAudienceNames  = "audience_names"
	StmtTransitions    = "transitions"
	StmtDeriveLatency  = "derive_latency"
	StmtSendLatency    = "send_latency"
	StmtOutcomes       = "outcomes"
	StmtCampaignNames  = "campaign_names"
	StmtLaneWatermarks = "lane_watermarks"
	StmtIngestDelay    = "ingest_delay"
	StmtDeadLetters    = "dead_letters"
	StmtBackfillRuns   = "backfill_runs"
	StmtLive           = "live"
	StmtCompleteness   = "completeness"
	// StmtDeliveryDeadLetters counts trigger dead letters per campaign.
	StmtDeliveryDeadLetters = "delivery_dead_letters"
	StmtLateEvents          = "late_events"
	StmtIngestDelaySeries   = "ingest_delay_series"
)

// Quantiles are the latency levels every latency statement computes, in
// the order of its array result.
var Quantiles = []float64{0.5, 0.95, 0.99}

// quantilesSQL is Quantiles as the parameters of quantilesTiming.
// quantileTiming is exact for values under 30 s, rounds larger ones to 16 ms,
// uses bounded memory and is deterministic, which suits millisecond latencies
// better than a sampled reservoir.
const quantilesSQL = "quantilesTiming(0.5, 0.95, 0.99)"

// quantilesMergeSQL merges quantilesSQL's states (ingest_delay_minutes).
const quantilesMergeSQL = "quantilesTimingMerge(0.5, 0.95, 0.99)"

// distinctEntered and distinctExited count the transitions of a group of
// audience_transition_keys rows, not its rows. A replayed evaluation writes a
// transition again until a merge collapses the copies; the copies come from
// the same event and so share event_time_ms, which puts them in the same
// bucket, where counting distinct keys per kind counts each transition once,
// as FINAL would. On ClickHouse 18.16 FINAL reads and merges in one thread and
// was 5-10 times slower.
const (
	distinctEntered = "uniqExactIf(key, kind = 'entered')"
	distinctExited  = "uniqExactIf(key, kind = 'exited')"
)

// baselineBucketMs groups the transitions before a panel's range by hour for
// counting: copies share an hour as they share a bucket, and a hash set per
// hour stays small, where one set of every key in the history was several
// times slower to fill.
const baselineBucketMs = uint64(time.Hour / time.Millisecond)

// uniqueEntries opens a subquery that keeps the newest copy of each entry,
// as FINAL would, for the queries that need a copy's values and not only a
// count. Callers add WHERE conditions, then the GROUP BY.
const uniqueEntries = `
    SELECT key,
        argMax(event_time_ms, derived_at_ms) AS t_event_ms,
        max(derived_at_ms) AS t_derived_ms,
        argMax(lane, derived_at_ms) AS t_lane
    FROM audience_entry_times`

// uniqueLedger is uniqueEntries for send_ledger: one row per ledger
// key. Only the delivery progress changes between a key's rows: its state
// is the newest row's, sent_at only goes from 0 to the delivery time (so
// the max), and the rest never change (so any copy's).
const uniqueLedger = `
    SELECT campaign_id, ledger_key,
        any(decision) AS l_decision,
        any(reason) AS l_reason,
        argMax(delivery_state, updated_at_ms) AS l_state,
        max(sent_at_ms) AS l_sent_ms,
        any(qualified_event_time_ms) AS l_event_ms,
        any(derived_at_ms) AS l_derived_ms,
        any(lane) AS l_lane
    FROM send_ledger`

// failedStates are the delivery states that count a fire as failed.
var failedStates = []string{"failed", "dead", "disabled"}

// Build returns the statements that answer r, after validating it.
func Build(r Request) ([]Statement, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	step := uint64(r.Step().Milliseconds())
	from, to := r.FromMs(), r.ToMs()
	switch r.QueryType {
	case AudienceSize:
		// Every transition before To counts: those before From make the
		// baseline (bucket 0), counted per hour and summed, the rest their
		// bucket. The running sum per audience is taken by the caller (no
		// window functions on 18.16).
		var b sqlBuilder
		b.add(`SELECT audience_id, if(before, toUInt64(0), b) AS bucket_ms, sum(d) AS delta
FROM (
    SELECT audience_id,
        event_time_ms < ? AS before,
        if(before, intDiv(event_time_ms, ?), intDiv(event_time_ms, ?) * ?) AS b,
        toInt64(`+distinctEntered+`) - toInt64(`+distinctExited+`) AS d
    FROM audience_transition_keys
    WHERE event_time_ms < ?`, from, baselineBucketMs, step, step, to)
		b.in("audience_id", r.Audiences)
		b.add(`
    GROUP BY audience_id, before, b
)
GROUP BY audience_id, bucket_ms
ORDER BY audience_id, bucket_ms`)
		return []Statement{b.stmt(StmtSizeDeltas), audienceNames()}, nil

	case Transitions:
		var b sqlBuilder
		b.add(`SELECT audience_id,
    intDiv(event_time_ms, ?) * ? AS bucket_ms,
    `+distinctEntered+` AS entered,
    `+distinctExited+` AS exited
FROM audience_transition_keys
WHERE event_time_ms >= ? AND event_time_ms < ?`, step, step, from, to)
		b.in("audience_id", r.Audiences)
		b.add(`
GROUP BY audience_id, bucket_ms
ORDER BY audience_id, bucket_ms`)
		return []Statement{b.stmt(StmtTransitions), audienceNames()}, nil

	case QualificationLatency:
		// Qualification latency is derived_at - event time of entries; send
		// latency is sent_at - qualified event time of delivered ledger
		// entries. Both are bucketed by derivation time, so the two series
		// of a lane line up. The newest copy of a transition has the highest
		// derived_at_ms, so filtering copies by From before grouping and the
		// newest by To after it selects exactly what FINAL would.
		var d sqlBuilder
		d.add(`SELECT t_lane AS lane,
    intDiv(t_derived_ms, ?) * ? AS bucket_ms,
    count() AS n,
    `+quantilesSQL+`(toUInt64(greatest(toInt64(t_derived_ms) - toInt64(t_event_ms), 0))) AS q
FROM (`+uniqueEntries+`
    WHERE derived_at_ms >= ?`, step, step, from)
		d.in("lane", r.Lanes)
		d.add(`
    GROUP BY key
    HAVING t_derived_ms < ?
)
GROUP BY lane, bucket_ms
ORDER BY lane, bucket_ms`, to)
		// A delivered key's derived_at, event time and lane never change;
		// sent_at only goes from 0 to the delivery time.
		var s sqlBuilder
		s.add(`SELECT l_lane AS lane,
    intDiv(l_derived_ms, ?) * ? AS bucket_ms,
    count() AS n,
    `+quantilesSQL+`(toUInt64(greatest(toInt64(l_sent_ms) - toInt64(l_event_ms), 0))) AS q
FROM (
    SELECT key,
        max(sent_at_ms) AS l_sent_ms,
        any(qualified_event_time_ms) AS l_event_ms,
        any(derived_at_ms) AS l_derived_ms,
        any(lane) AS l_lane
    FROM ledger_sends
    WHERE derived_at_ms >= ? AND derived_at_ms < ?`, step, step, from, to)
		s.in("lane", r.Lanes)
		s.add(`
    GROUP BY key
)
GROUP BY lane, bucket_ms
ORDER BY lane, bucket_ms`)
		return []Statement{d.stmt(StmtDeriveLatency), s.stmt(StmtSendLatency)}, nil

	case CampaignOutcomes:
		return []Statement{outcomes(r.Campaigns, from, to), campaignNames()}, nil

	case PipelineLag:
		// Ingest delay is what Kafka and the loader add: from the collector
		// receiving an event to its row landing in ClickHouse. Each delivery
		// of a redelivered event is its own ingest. It is filtered by
		// receipt, not event time: a late event (the incident this exists
		// for) is received now with an old event time. The states are per
		// minute, so the range widens to whole minutes.
		var e sqlBuilder
		e.add(`SELECT lane,
    countMerge(rows) AS n,
    `+quantilesMergeSQL+`(delay) AS q,
    maxMerge(worst) AS worst
FROM ingest_delay_minutes
WHERE minute >= toDateTime(?) AND minute < toDateTime(?)`, from/60_000*60, (to+59_999)/60_000*60)
		e.in("lane", r.Lanes)
		e.add(`
GROUP BY lane
ORDER BY lane`)
		return []Statement{laneWatermarks(r.Lanes), e.stmt(StmtIngestDelay), deadLetters(r.Lanes, from, to)}, nil

	case BackfillRuns:
		// argMax by updated_at_ms rather than FINAL: the newest row of a run
		// wins whatever engine the backfill's table uses.
		var b sqlBuilder
		b.add(`SELECT run_id,
    argMax(plan_id, updated_at_ms) AS r_plan,
    argMax(state, updated_at_ms) AS r_state,
    argMax(started_at_ms, updated_at_ms) AS r_started,
    argMax(finished_at_ms, updated_at_ms) AS r_finished,
    argMax(window_from_ms, updated_at_ms) AS r_window_from,
    argMax(window_to_ms, updated_at_ms) AS r_window_to,
    argMax(events_reingested, updated_at_ms) AS r_events,
    argMax(fired, updated_at_ms) AS r_fired,
    argMax(skipped, updated_at_ms) AS r_skipped,
    max(updated_at_ms) AS r_updated
FROM backfill_runs
GROUP BY run_id
HAVING r_started < ? AND (r_finished = 0 OR r_finished >= ?)
ORDER BY r_started DESC, run_id
LIMIT ?`, to, from, backfillRows)
		return []Statement{b.stmt(StmtBackfillRuns)}, nil

	case LiveQualifications:
		return []Statement{live(r.Audiences, from, to, LiveRows), audienceNames()}, nil

	case AudienceCompleteness:
		return []Statement{completeness(r.Audiences), audienceNames()}, nil

	case IngestDelay:
		// Per minute of receipt, like pipeline_lag's: buckets of whole
		// minutes over the range widened to whole minutes.
		mstep := uint64(r.MinuteStep().Milliseconds())
		var b sqlBuilder
		b.add(`SELECT lane,
    intDiv(toUInt64(minute) * 1000, ?) * ? AS bucket_ms,
    countMerge(rows) AS n,
    `+quantilesMergeSQL+`(delay) AS q,
    maxMerge(worst) AS w
FROM ingest_delay_minutes
WHERE minute >= toDateTime(?) AND minute < toDateTime(?)`, mstep, mstep, from/60_000*60, (to+59_999)/60_000*60)
		b.in("lane", r.Lanes)
		b.add(`
GROUP BY lane, bucket_ms
ORDER BY lane, bucket_ms`)
		return []Statement{b.stmt(StmtIngestDelaySeries)}, nil

	case LateEvents:
		// Kept per minute of receipt, like the ingest delay: the range
		// widens to whole minutes.
		var b sqlBuilder
		b.add(`SELECT lane, lateness, countMerge(rows) AS n
FROM late_event_minutes
WHERE minute >= toDateTime(?) AND minute < toDateTime(?)`, from/60_000*60, (to+59_999)/60_000*60)
		b.in("lane", r.Lanes)
		b.add(`
GROUP BY lane, lateness
ORDER BY lane, lateness`)
		return []Statement{b.stmt(StmtLateEvents)}, nil

	case AlertMetric:
		switch r.Metric {
		case WatermarkAge, ConsumerLag:
			return []Statement{laneWatermarks(r.Lanes)}, nil
		case DeadLetterRate:
			return []Statement{deadLetters(r.Lanes, from, to)}, nil
		case DeliveryFailures:
			return []Statement{outcomes(r.Campaigns, from, to), campaignNames()}, nil
		case DeliveryDeadLetters:
			return []Statement{deliveryDeadLetters(r.Campaigns, from, to), campaignNames()}, nil
		case EvaluatorLag, AudienceHeldBack:
			return []Statement{completeness(r.Audiences), audienceNames()}, nil
		}
		return nil, fmt.Errorf("%w %q", ErrUnknownMetric, r.Metric)
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownType, r.QueryType)
}

// LivePoll selects the transitions derived at or after cursorMs, oldest
// first, at most PollLimit: one poll of the live stream. No FINAL: the
// stream deduplicates by the key (audience_id, customer_id, episode, kind).
func LivePoll(audiences []string, cursorMs uint64) Statement {
	return live(audiences, cursorMs, 0, PollLimit)
}

// live selects transitions derived in [fromMs, toMs) (toMs 0: no end). The
// panel's query wants the newest rows; a poll wants the oldest past its
// cursor, so that a backlog is read in order.
func live(audiences []string, fromMs, toMs uint64, limit int) Statement {
	var b sqlBuilder
	cols := "derived_at_ms, audience_id, customer_id, kind, episode, event_time_ms, ingest_time_ms, lane"
	if toMs > 0 {
		// The newest rows first (a top-N sort, cheap), then one per key:
		// replayed copies are few, so liveOversample times the limit leaves
		// enough distinct transitions.
		b.add(`SELECT `+cols+`
FROM (
    SELECT `+cols+`
    FROM audience_transitions
    WHERE derived_at >= toDateTime(?) AND derived_at_ms >= ? AND derived_at_ms < ?`, fromMs/1000, fromMs, toMs)
		b.in("audience_id", audiences)
		b.add(`
    ORDER BY derived_at_ms DESC
    LIMIT ?
)
ORDER BY derived_at_ms DESC, audience_id, customer_id, episode, kind
LIMIT 1 BY audience_id, customer_id, episode, kind
LIMIT ?`, limit*liveOversample, limit)
		return b.stmt(StmtLive)
	}
	b.add(`SELECT `+cols+`
FROM audience_transitions
WHERE derived_at >= toDateTime(?) AND derived_at_ms >= ?`, fromMs/1000, fromMs)
	b.in("audience_id", audiences)
	b.add(`
ORDER BY derived_at_ms ASC, audience_id, customer_id, episode, kind
LIMIT ?`, limit)
	return b.stmt(StmtLive)
}

// outcomes counts a campaign's ledger entries detected in [from, to) by
// decision, reason and whether their delivery failed, one per ledger key.
func outcomes(campaigns []string, from, to uint64) Statement {
	var b sqlBuilder
	b.add(`SELECT campaign_id, l_decision AS decision, l_reason AS reason, l_state IN (`+placeholders(len(failedStates))+`) AS failed, count() AS n
FROM (`+uniqueLedger+`
    WHERE detected_at_ms >= ? AND detected_at_ms < ?`, append(anys(failedStates), from, to)...)
	b.in("campaign_id", campaigns)
	b.add(`
    GROUP BY campaign_id, ledger_key
)
GROUP BY campaign_id, decision, reason, failed
ORDER BY campaign_id, decision, reason, failed`)
	return b.stmt(StmtOutcomes)
}

// laneWatermarks reads the lane_watermarks view.
func laneWatermarks(lanes []string) Statement {
	var w sqlBuilder
	w.add(`SELECT lane, watermark_ms, toInt64(consumer_lag) AS lag, updated_at_ms
FROM lane_watermarks
WHERE 1`)
	w.in("lane", lanes)
	w.add(`
ORDER BY lane`)
	return w.stmt(StmtLaneWatermarks)
}

// deadLetters counts per lane the records dead-lettered in [from, to),
// by Kafka position, the table's key, so a replayed batch's copies count
// once.
func deadLetters(lanes []string, from, to uint64) Statement {
	var dl sqlBuilder
	dl.add(`SELECT lane, uniqExact(kafka_topic, kafka_partition, kafka_offset) AS n
FROM dead_letters
WHERE received_at_ms >= ? AND received_at_ms < ?`, from, to)
	dl.in("lane", lanes)
	dl.add(`
GROUP BY lane
ORDER BY lane`)
	return dl.stmt(StmtDeadLetters)
}

// deliveryDeadLetters counts per campaign the deliveries given up in
// [from, to) whose newest row is still dead (not redelivered since), one
// per (ledger key, destination), the table's key, so neither replayed
// copies nor a merge change the count.
func deliveryDeadLetters(campaigns []string, from, to uint64) Statement {
	var b sqlBuilder
	b.add(`SELECT d_campaign AS campaign_id, count() AS n
FROM (
    SELECT ledger_key, destination_id,
        any(campaign_id) AS d_campaign,
        argMax(state, updated_at_ms) AS d_state
    FROM trigger_dead_letters
    WHERE dead_at >= toDateTime(?) AND dead_at_ms >= ? AND dead_at_ms < ?`, from/1000, from, to)
	b.in("campaign_id", campaigns)
	b.add(`
    GROUP BY ledger_key, destination_id
    HAVING d_state = 'dead'
)
GROUP BY campaign_id
ORDER BY campaign_id`)
	return b.stmt(StmtDeliveryDeadLetters)
}

// completeness selects the evaluator's newest record of each audience's
// completeness. It is the state now, whatever the panel's range: the
// newest row wins by updated_at_ms, as the table's ReplacingMergeTree keeps
// after a merge, so the answer does not change when ClickHouse merges.
func completeness(audiences []string) Statement {
	var b sqlBuilder
	b.add(`SELECT audience_id,
    argMax(lanes, updated_at_ms) AS c_lanes,
    argMax(direction, updated_at_ms) AS c_direction,
    argMax(complete_ms, updated_at_ms) AS c_complete,
    argMax(eager_ms, updated_at_ms) AS c_eager,
    argMax(held_by, updated_at_ms) AS c_held_by,
    max(updated_at_ms) AS c_updated
FROM audience_completeness
WHERE 1`)
	b.in("audience_id", audiences)
	b.add(`
GROUP BY audience_id
ORDER BY audience_id`)
	return b.stmt(StmtCompleteness)
}

// liveOversample is how many raw rows per shown row the live panel's query
// reads before deduplicating.
const liveOversample = 5

// PollLimit bounds the rows one stream poll reads; a larger backlog is read
// over the following polls.
const PollLimit = 5000

func audienceNames() Statement {
	return Statement{Name: StmtAudienceNames, SQL: "SELECT audience_id, name, active FROM audiences FINAL ORDER BY audience_id"}
}

func campaignNames() Statement {
	return Statement{Name: StmtCampaignNames, SQL: "SELECT campaign_id, name, active FROM campaigns FINAL ORDER BY campaign_id"}
}

// The entity lists the data source serves, as resources (the query
// editor's pickers) and as variable queries.
const (
	ResourceAudiences = "audiences"
	ResourceCampaigns = "campaigns"
)

// EntityList is the statement behind the audiences and campaigns resources:
// the active entities, for the query editor's pickers.
func EntityList(campaigns bool) Statement {
	if campaigns {
		return Statement{Name: StmtCampaignNames, SQL: "SELECT campaign_id, name FROM campaigns FINAL WHERE active = 1 ORDER BY name, campaign_id"}
	}
	return Statement{Name: StmtAudienceNames, SQL: "SELECT audience_id, name FROM audiences FINAL WHERE active = 1 ORDER BY name, audience_id"}
}

// sqlBuilder accumulates SQL text written in this package and the values
// bound to its placeholders. Only constant text and placeholders go into
// the SQL; values only into args.
type sqlBuilder struct {
	sql  strings.Builder
	args []any
}

func (b *sqlBuilder) add(sql string, args ...any) {
	b.sql.WriteString(sql)
	b.args = append(b.args, args...)
}

// in filters column on values when any are given; column is always a
// constant of this package.
func (b *sqlBuilder) in(column string, values []string) {
	if len(values) == 0 {
		return
	}
	b.add("\n    AND "+column+" IN ("+placeholders(len(values))+")", anys(values)...)
}

func (b *sqlBuilder) stmt(name string) Statement {
	return Statement{Name: name, SQL: b.sql.String(), Args: b.args}
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

func anys(values []string) []any {
	out := make([]any, len(values))
	for i, v := range values {
		out[i] = v
	}
	return out
}

// RequiredTables are the tables and views the query types read; a database
// without one of them cannot answer some panel.
var RequiredTables = []string{
	"audience_completeness", "audience_entry_times", "audience_membership", "audience_transition_keys", "audience_transitions",
	"audiences", "campaigns", "dead_letters", "events", "ingest_delay_minutes", "lane_watermarks", "late_event_minutes",
	"ledger_sends", "loader_progress", "schema_migrations", "send_ledger", "trigger_dead_letters",
}

// BackfillRunsTable is the table the BackfillRuns type reads; it appears
// with the backfill's migration.
const BackfillRunsTable = "backfill_runs"

// OptionalTables are read by one query type each and reported when absent,
// without failing the check.
var OptionalTables = []string{BackfillRunsTable}

// TablesIn lists the tables and views of a database (health check).
func TablesIn(database string) Statement {
	return Statement{Name: "tables", SQL: "SELECT name FROM system.tables WHERE database = ? ORDER BY name", Args: []any{database}}
}
