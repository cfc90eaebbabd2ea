#!/bin/bash
# Server CPU per row of each view of events, one view attached at a time:
#   bench/profiles/view-costs.sh <database with every view> <database with none> [repetitions]
# Both databases come from one run of
#   tideline bench --scenarios throughput --events 300000 --keep
# (bench_<run>_tideline_attached and bench_<run>_tideline_detached). The
# attached database's events are inserted into the detached one in blocks of
# 8192 rows (the loader's), once with no view beyond the detached database's
# own and then with each view of the attached database alone; CPU is
# ClickHouse's own accounting of the insert's threads (system.query_log).
set -euo pipefail
A=$1; D=$2; REPS=${3:-3}
CH="clickhouse-client --port ${CLICKHOUSE_PORT:-19000}"
RUN=$RANDOM
$CH -q "DROP TABLE IF EXISTS $D.src"
$CH -q "CREATE TABLE $D.src ENGINE = Memory AS SELECT * FROM $A.events"
N=$($CH -q "SELECT count() FROM $D.src")
views=$($CH -q "SELECT name FROM system.tables WHERE database='$A' AND engine='MaterializedView' AND create_table_query LIKE '%FROM $A.events%' AND name NOT IN (SELECT name FROM system.tables WHERE database='$D') ORDER BY name")
tables=$($CH -q "SELECT name FROM system.tables WHERE database='$D' AND engine LIKE '%MergeTree%'")
run() { # $1: label
	for r in $(seq "$REPS"); do
		for t in $tables; do $CH -q "TRUNCATE TABLE $D.$t"; done
		$CH --log_queries=1 --query_id "viewcost-$RUN-$1-$r" --min_insert_block_size_rows=8192 --max_block_size=8192 \
			-q "INSERT INTO $D.events SELECT * FROM $D.src"
	done
}
run none
for v in $views; do
	ddl=$($CH -q "SELECT create_table_query FROM system.tables WHERE database='$A' AND name='$v'" | sed "s/\\\\'/'/g; s/$A\./$D./g")
	$CH -q "$ddl"
	run "$v"
	$CH -q "DROP TABLE $D.$v"
done
$CH -q "DROP TABLE $D.src"
$CH -q "SYSTEM FLUSH LOGS"
$CH -q "SELECT label, count() AS reps, round(median(cpu) / $N, 2) AS cpu_us_per_row, round(min(cpu) / $N, 2) AS min, round(max(cpu) / $N, 2) AS max
FROM
(
    SELECT splitByChar('-', query_id)[3] AS label,
        arraySum(arrayFilter((v, n) -> n IN ('UserTimeMicroseconds', 'SystemTimeMicroseconds'), ProfileEvents.Values, ProfileEvents.Names)) AS cpu
    FROM system.query_log
    WHERE type = 2 AND event_date >= yesterday() AND startsWith(query_id, 'viewcost-$RUN-')
)
GROUP BY label ORDER BY cpu_us_per_row DESC FORMAT PrettyCompactMonoBlock"
echo "$N rows per insert"
