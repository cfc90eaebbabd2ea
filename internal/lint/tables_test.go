package lint

import (
	"go/ast"
	"go/token"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// tableRef finds a table named by a statement: after FROM, JOIN, INTO,
// TABLE, EXISTS or UPDATE, with an optional database prefix.
var tableRef = regexp.MustCompile(`(?i)\b(?:FROM|JOIN|INTO|TABLE|EXISTS|UPDATE)\s+(?:[A-Za-z_][A-Za-z0-9_]*\.)?([A-Za-z_][A-Za-z0-9_]*)`)

// createRef finds the tables and views the migrations create.
var createRef = regexp.MustCompile(`(?i)CREATE\s+(?:TABLE|MATERIALIZED\s+VIEW|VIEW)\s+(?:IF\s+NOT\s+EXISTS\s+)?(?:[A-Za-z_][A-Za-z0-9_]*\.)?([A-Za-z_][A-Za-z0-9_]*)`)

// tableRefs lists, by table, the production packages whose string
// constants name it in a statement or as the whole literal (a table name
// passed to a helper).
func tableRefs(t *testing.T, files []file, tables map[string]bool) map[string]map[string]bool {
	refs := map[string]map[string]bool{}
	add := func(table, pkg string) {
		if !tables[table] {
			return
		}
		if refs[table] == nil {
			refs[table] = map[string]bool{}
		}
		refs[table][pkg] = true
	}
	for _, f := range files {
		if f.test || f.pkg == "sql" || strings.HasPrefix(f.pkg, "sql/") {
			continue
		}
		ast.Inspect(f.ast, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			if err != nil {
				return true
			}
			add(s, f.pkg)
			for _, m := range tableRef.FindAllStringSubmatch(s, -1) {
				add(m[1], f.pkg)
			}
			return true
		})
	}
	return refs
}

// owners maps every table and view the migrations create to the one
// package that writes it and whose exported functions everyone else calls
// to read it. Views written by a materialized view belong with their
// target's owner. A table missing here fails the test: a new table gets an
// owner when it is created.
var owners = map[string]string{
	// The loader's tables: what was received, and how far it got.
	"events": "ingest", "events_unique": "ingest", "dead_letters": "ingest", "loader_progress": "ingest",
	"ingest_delay_minutes": "ingest", "ingest_delay_minutes_mv": "ingest", "input_lanes": "ingest", "mv_input_lanes": "ingest", "mv_input_lanes_calls": "ingest",
	"lane_watermarks": "ingest", "event_positions": "ingest", "event_positions_mv": "ingest", "pipeline_lag": "ingest",
	"late_event_minutes": "ingest", "late_event_minutes_mv": "ingest",

	// Audiences: the materialized customer state and the evaluator's output.
	"audiences": "materialize", "audience_membership": "materialize", "audience_transitions": "materialize",
	"audience_members": "materialize", "audience_size_history": "materialize", "audience_completeness": "materialize",
	"audience_entry_times": "materialize", "audience_entry_times_mv": "materialize", "audience_entry_times_first_mv": "materialize",
	"audience_transition_keys": "materialize", "audience_transition_keys_mv": "materialize", "audience_transition_keys_first_mv": "materialize",
	"membership_transitions": "materialize", "evaluator_state": "materialize", "evaluator_times": "materialize",
	"attribute_catalog": "materialize", "signal_catalog": "materialize",
	"customer_activity": "materialize", "customer_activity_seconds": "materialize", "customer_attribute_history": "materialize", "customer_attributes": "materialize",
	"customer_attributes_current": "materialize", "customer_context": "materialize", "customer_event_buckets": "materialize",
	"customer_identity": "materialize", "customer_profile": "materialize", "customer_signals": "materialize", "customer_touches": "materialize",
	"identity_claims": "materialize", "identity_links": "materialize",
	"mv_context_attribute_history": "materialize", "mv_context_attributes": "materialize", "mv_customer_activity": "materialize", "mv_customer_activity_seconds": "materialize",
	"mv_customer_event_buckets": "materialize", "mv_customer_touches": "materialize", "mv_customer_touches_alias": "materialize",
	"mv_customer_touches_partition": "materialize", "mv_customer_touches_alias_partition": "materialize",
	"mv_customer_trait_activity": "materialize", "mv_customer_trait_activity_seconds": "materialize", "mv_identity_claims": "materialize", "mv_identity_claims_alias": "materialize",
	"mv_identity_links": "materialize", "mv_identity_links_alias": "materialize",

	// Campaigns: the send ledger and the poller's positions and feeds.
	"campaigns": "trigger", "send_ledger": "trigger", "send_ledger_controls": "trigger", "ledger_sends": "trigger",
	"ledger_sends_mv": "trigger", "suppressions": "trigger", "suppressions_unsubscribe_mv": "trigger",
	"trigger_cursors": "trigger", "trigger_dead_letters": "trigger", "trigger_destinations": "trigger",
	"trigger_payloads": "trigger", "trigger_event_feed": "trigger", "trigger_event_feed_mv": "trigger", "trigger_event_feed_context_mv": "trigger",
	"trigger_transition_feed": "trigger", "trigger_transition_feed_mv": "trigger",

	// Backfill runs and their checkpoints.
	"backfill_runs": "backfill", "backfill_checkpoints": "backfill",
}

// readers may name any table: the Grafana data source's one SQL builder
// reads what dashboards show and writes nothing.
var readers = map[string]bool{"grafana/query": true}

// exceptions are today's references from packages that do not own the
// table. Each is a debt: read through the owner's exported functions
// instead, then delete the line (the test fails on a stale exception, so
// the list only shrinks).
var exceptions = map[string][]string{
	// Backfill plans by reading what was loaded and delivered; the drill
	// and the report check the same; the archive writes events back; bench
	// and the dashboards' seed fill and count them.
	"events": {"backfill", "backfill/archive", "backfill/drill", "backfill/report", "bench", "cmd/tideline",
		"grafana/frames", "grafana/internal/seed", "materialize", "trigger"},
	"event_positions": {"backfill", "backfill/drill"},
	"dead_letters":    {"grafana/frames", "grafana/internal/seed"},
	"loader_progress": {"grafana/internal/seed"},

	// Backfill re-evaluates audiences and re-decides campaigns over history.
	"audiences":             {"cmd/tideline", "grafana/internal/seed"},
	"audience_transitions":  {"backfill", "grafana/internal/seed"},
	"audience_completeness": {"grafana/internal/seed"},

	"send_ledger":          {"grafana/internal/seed"},
	"campaigns":            {"backfill", "cmd/tideline", "grafana/internal/seed"},
	"trigger_dead_letters": {"grafana/internal/seed"},

	"backfill_runs": {"grafana/internal/seed"},
}

// TestTableOwners: a table is named only by its owner package and sql/
// (production code; tests may query any table to check an outcome).
func TestTableOwners(t *testing.T) {
	tables := migrationTables(t)
	for tb := range tables {
		if owners[tb] == "" {
			t.Errorf("table %s has no owner: add it to owners in %s", tb, "internal/lint/tables_test.go")
		}
	}
	for tb := range owners {
		if !tables[tb] {
			t.Errorf("owners names %s, which no migration creates: remove it", tb)
		}
	}
	refs := tableRefs(t, moduleFiles(t), tables)
	for _, tb := range slices.Sorted(maps.Keys(tables)) {
		allowed := map[string]bool{}
		for _, p := range exceptions[tb] {
			allowed[p] = true
		}
		for _, pkg := range slices.Sorted(maps.Keys(refs[tb])) {
			if pkg == owners[tb] || readers[pkg] || allowed[pkg] {
				continue
			}
			t.Errorf("package %s names table %s, owned by %s: call the owner's exported functions instead", pkg, tb, owners[tb])
		}
		for _, pkg := range exceptions[tb] {
			if !refs[tb][pkg] {
				t.Errorf("package %s no longer names table %s: delete the exception", pkg, tb)
			}
		}
	}
}
