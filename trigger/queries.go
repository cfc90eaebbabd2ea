package trigger

import (
	"fmt"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/tideline-dev/tideline/materialize"
)

// The SQL the trigger package runs, in one place. Values are always bound
// parameters (clickhouse-go quotes them client side); sets are bound as
// clickhouse.GroupSet so they render as (a, b, c), which ClickHouse 18.16
// accepts after IN. The only text assembled here is the fixed shard filter.

const ledgerColumns = "ledger_key, campaign_id, customer_id, audience_id, episode, decision, reason, " +
	"qualified_event_time_ms, qualified_ingest_time_ms, derived_at_ms, detected_at_ms, sent_at_ms, " +
	"delivery_state, attempts, last_error, origin, lane, updated_at_ms, detected_at"

// ledgerLatest selects the newest row of each key (the ledger is a
// ReplacingMergeTree by updated_at_ms; argMax gives what FINAL would,
// without depending on merges). The aliases differ from the column names:
// ClickHouse would otherwise substitute the alias inside argMax.
const ledgerLatest = `SELECT ledger_key,
    argMax(campaign_id, updated_at_ms) AS l_campaign,
    argMax(customer_id, updated_at_ms) AS l_customer,
    argMax(audience_id, updated_at_ms) AS l_audience,
    argMax(episode, updated_at_ms) AS l_episode,
    argMax(decision, updated_at_ms) AS l_decision,
    argMax(reason, updated_at_ms) AS l_reason,
    argMax(qualified_event_time_ms, updated_at_ms) AS l_event_ms,
    argMax(qualified_ingest_time_ms, updated_at_ms) AS l_ingest_ms,
    argMax(derived_at_ms, updated_at_ms) AS l_derived_ms,
    argMax(detected_at_ms, updated_at_ms) AS l_detected_ms,
    argMax(sent_at_ms, updated_at_ms) AS l_sent_ms,
    argMax(delivery_state, updated_at_ms) AS l_state,
    argMax(attempts, updated_at_ms) AS l_attempts,
    argMax(last_error, updated_at_ms) AS l_error,
    argMax(origin, updated_at_ms) AS l_origin,
    argMax(lane, updated_at_ms) AS l_lane,
    max(updated_at_ms) AS l_updated_ms
FROM send_ledger`

const (
	// qLedgerByCustomers reads every entry of some customers for some campaigns.
	qLedgerByCustomers = ledgerLatest + `
WHERE campaign_id IN ? AND customer_id IN ?
GROUP BY ledger_key`

	// qLedgerByKeys reads entries by key.
	qLedgerByKeys = ledgerLatest + `
WHERE ledger_key IN ?
GROUP BY ledger_key`

	// qLedgerPending finds fires whose delivery has not ended, detected
	// since a time, past a (detected_at_ms, ledger_key) keyset; %s is the
	// shard filter.
	qLedgerPending = ledgerLatest + `
WHERE detected_at >= toDateTime(?) %s
GROUP BY ledger_key
HAVING l_state IN ('pending', 'failed', 'deferred') AND l_decision IN ('fire', 'fire_late') AND (l_detected_ms, ledger_key) > (?, ?)
ORDER BY l_detected_ms, ledger_key
LIMIT ?`

	// qLedgerByCustomersAll reads every entry of some customers, of every
	// campaign: the global caps count them all.
	qLedgerByCustomersAll = ledgerLatest + `
WHERE customer_id IN ?
GROUP BY ledger_key`

	qInsertLedger = "INSERT INTO send_ledger (" + ledgerColumns + ")"

	qInsertControls = "INSERT INTO send_ledger_controls (ledger_key, campaign_id, customer_id, control, detail, release_at_ms, updated_at_ms, updated_at)"

	qControls = `SELECT ledger_key, argMax(detail, updated_at_ms), argMax(release_at_ms, updated_at_ms)
FROM send_ledger_controls WHERE ledger_key IN ? GROUP BY ledger_key`

	// The newest row per customer decides; an operator lifts a
	// suppression by inserting a row with active = 0.
	suppressionLatest = `SELECT customer_id, argMax(active, updated_at_ms) AS s_active, argMax(reason, updated_at_ms),
    argMax(source, updated_at_ms), argMax(suppressed_at_ms, updated_at_ms), max(loaded_at_ms)
FROM suppressions`

	qSuppressions = suppressionLatest + `
WHERE customer_id IN ?
GROUP BY customer_id`

	qSuppressionsSince = suppressionLatest + `
WHERE customer_id IN (SELECT customer_id FROM suppressions WHERE loaded_at_ms >= ?)
GROUP BY customer_id`

	qInsertPayloads = "INSERT INTO trigger_payloads (ledger_key, campaign_id, payload, created_at_ms, created_at)"

	qPayloads = `SELECT ledger_key, argMax(payload, created_at_ms) FROM trigger_payloads WHERE ledger_key IN ? GROUP BY ledger_key`

	qCursors = `SELECT cursor_id, shard, argMax(position_ms, updated_at_ms), max(updated_at_ms) FROM trigger_cursors GROUP BY cursor_id, shard`

	qInsertCursors = "INSERT INTO trigger_cursors (cursor_id, shard, position_ms, updated_at_ms)"

	// qRunningInserts lists inserts into the ledger and payload tables still
	// running on the server (18.16's system.processes has no database
	// column, so inserts of other databases are listed too; waiting for
	// them as well is harmless).
	qRunningInserts = `SELECT query_id FROM system.processes
WHERE query LIKE 'INSERT INTO send_ledger%' OR query LIKE 'INSERT INTO trigger_payloads%'`

	// qProfiles reads customer_profile's rows for a set of customers
	// (bound with materialize.ProfileArgs) without aggregating every other
	// customer's.
	qProfiles = materialize.ProfilesOf

	qInsertDeadLetters = "INSERT INTO trigger_dead_letters (ledger_key, campaign_id, customer_id, destination_id, destination, " +
		"payload, attempts, last_status, last_error, state, dead_at_ms, updated_at_ms, dead_at)"

	qDeadLetters = `SELECT ledger_key, destination_id,
    argMax(campaign_id, updated_at_ms), argMax(customer_id, updated_at_ms), argMax(destination, updated_at_ms),
    argMax(payload, updated_at_ms), argMax(attempts, updated_at_ms), argMax(last_status, updated_at_ms),
    argMax(last_error, updated_at_ms), argMax(state, updated_at_ms) AS d_state, argMax(dead_at_ms, updated_at_ms),
    max(updated_at_ms)
FROM trigger_dead_letters
GROUP BY ledger_key, destination_id
HAVING d_state = 'dead'
ORDER BY ledger_key`

	qInsertDestinations = "INSERT INTO trigger_destinations (destination_id, campaign_id, destination, disabled, reason, updated_at_ms)"

	qDisabledDestinations = `SELECT destination_id, argMax(disabled, updated_at_ms) AS d_disabled, argMax(reason, updated_at_ms)
FROM trigger_destinations GROUP BY destination_id HAVING d_disabled = 1`

	qCampaignVersions = `SELECT campaign_id, argMax(version, applied_at_ms), argMax(active, applied_at_ms) FROM campaigns GROUP BY campaign_id`

	qAppliedCampaigns = `SELECT campaign_id, argMax(definition, applied_at_ms) AS def FROM campaigns GROUP BY campaign_id HAVING argMax(active, applied_at_ms) = 1 ORDER BY campaign_id`
	qInsertCampaigns  = "INSERT INTO campaigns (campaign_id, name, definition, version, active, applied_at_ms)"

	qFeedPartitions = `SELECT DISTINCT partition FROM system.parts WHERE database = currentDatabase() AND table = ? AND active`
)

// shardFilter restricts a query to the customers of some shards:
// cityHash64 is ClickHouse's CityHash 1.0.2, which go-faster/city's CH64
// reproduces, so the poller computes the same shard in Go. The filter is
// empty when every shard is owned.
func shardFilter(count int, owned []int32) (string, []any) {
	if len(owned) == 0 || len(owned) >= count {
		return "", nil
	}
	set := make([]any, len(owned))
	for i, s := range owned {
		set[i] = uint64(s)
	}
	return "AND cityHash64(customer_id) % ? IN ?", []any{uint64(count), clickhouse.GroupSet{Value: set}}
}

// feedQuery builds the read of one feed past a keyset position: rows whose
// (position, key...) tuple is greater than the given one, in that order.
// Tuple comparison keeps paging exact when thousands of rows share one
// position (the loader stamps a whole batch with one ingest time).
func feedQuery(f *feed, shard string, countOnly bool) string {
	keys := strings.Join(append([]string{f.posCol}, f.keyCols...), ", ")
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(f.keyCols)+1), ", ")
	if countOnly {
		// The overlap check: how many distinct rows lie between a lower
		// position and the keyset position.
		return fmt.Sprintf("SELECT uniqExact(%s) FROM %s WHERE %s >= ? AND (%s) <= (%s) AND %s IN ? %s",
			keys, f.table, f.posCol, keys, marks, f.nameCol, shard)
	}
	// Rows past the keyset position, up to an upper position bound (now):
	// a row stamped ahead of this host's clock waits until its time, so a
	// skewed clock cannot push the position past rows still to come.
	return fmt.Sprintf("SELECT %s FROM %s WHERE %s >= ? AND %s <= ? AND (%s) > (%s) AND %s IN ? %s ORDER BY %s LIMIT ?",
		strings.Join(f.selectCols, ", "), f.table, f.posCol, f.posCol, keys, marks, f.nameCol, shard, keys)
}

// windowQuery reads the rows between a keyset position and an upper keyset
// (the overlap window behind the reader's position), in order.
func windowQuery(f *feed, shard string) string {
	keys := strings.Join(append([]string{f.posCol}, f.keyCols...), ", ")
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(f.keyCols)+1), ", ")
	return fmt.Sprintf("SELECT %s FROM %s WHERE %s >= ? AND (%s) > (%s) AND (%s) <= (%s) AND %s IN ? %s ORDER BY %s LIMIT ?",
		strings.Join(f.selectCols, ", "), f.table, f.posCol, keys, marks, keys, marks, f.nameCol, shard, keys)
}
