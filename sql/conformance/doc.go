// Package conformance holds the test that proves tideline's SQL on both
// ClickHouse versions it must run on: the 18.16 server these machines can
// install and a current ClickHouse (26.9, new analyzer), embedded in-process
// through PyPI's chdb-core in a virtual environment scripts/chdb.sh makes.
// Every migration, the audience views, one fixed data set loaded through
// them, and every golden of generated SQL (audiences, campaigns, the Grafana
// plugin's queries) run on both, and each statement must return the same rows.
// Backfill's statements, built at run time, are compared as it sends them:
// it plans and applies over the data set on 18.16 through a connection that
// reports each statement, which then runs on current ClickHouse too.
package conformance
