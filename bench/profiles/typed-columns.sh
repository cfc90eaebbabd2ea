#!/bin/bash
# Server CPU per row of the views that parse JSON, against the same views
# reading key/value columns the loader would fill at load:
#   bench/profiles/typed-columns.sh <database with every view> <database with none> [repetitions]
# Both databases come from one run of
#   tideline bench --scenarios throughput --events 300000 --keep
# The detached database's events get five array columns (trait_keys,
# trait_values, trait_nulls, prop_keys, prop_values: each top-level key of
# traits and properties, its value as the views read it, and whether it is
# null), filled for the copied events outside the measured inserts. Each
# insert is the copied events in blocks of 8192 rows (the loader's), once
# with no view beyond the detached database's own, then with one view
# attached alone: the JSON views as the attached database has them, and
# each read from the columns. CPU is ClickHouse's own accounting of the
# insert's threads (system.query_log).
set -euo pipefail
A=$1; D=$2; REPS=${3:-3}
BLOCK=${BLOCK:-8192} # rows per block the views see
CH="clickhouse-client --port ${CLICKHOUSE_PORT:-19000}"
RUN=$RANDOM

# value and is-null of key k of JSON column c, as materialize reads them
value() { echo "if(substring(visitParamExtractRaw($1, '$2'), 1, 1) = '\"', visitParamExtractString($1, '$2'), visitParamExtractRaw($1, '$2'))"; }
isnull() { echo "toUInt8(visitParamExtractRaw($1, '$2') = 'null')"; }
# arrays of c's keys present, their values and is-null flags
arrays() { # $1 column, $2.. keys
	local c=$1; shift
	local ks=() hs=() vs=() ns=()
	for k in "$@"; do
		ks+=("'$k'"); hs+=("toUInt8(visitParamHas($c, '$k'))"); vs+=("$(value "$c" "$k")"); ns+=("$(isnull "$c" "$k")")
	done
	local IFS=,
	echo "arrayFilter((x, h) -> h = 1, [${ks[*]}], [${hs[*]}]), arrayFilter((x, h) -> h = 1, [${vs[*]}], [${hs[*]}]), arrayFilter((x, h) -> h = 1, [${ns[*]}], [${hs[*]}])"
}
keys() { $CH -q "SELECT DISTINCT arrayJoin(extractAll($1, '\"([A-Za-z_0-9]+)\":')) FROM $A.events ORDER BY 1" | tr '\n' ' '; }

if [ "$($CH -q "SELECT count() FROM system.columns WHERE database='$D' AND table='events' AND name='trait_keys'")" = 0 ]; then
	$CH -q "ALTER TABLE $D.events ADD COLUMN trait_keys Array(String), ADD COLUMN trait_values Array(String), ADD COLUMN trait_nulls Array(UInt8), ADD COLUMN prop_keys Array(String), ADD COLUMN prop_values Array(String)"
fi
# shellcheck disable=SC2046
tsel=$(arrays traits $(keys traits))
# shellcheck disable=SC2046
psel=$(arrays properties $(keys properties))
cols=$($CH -q "DESCRIBE TABLE $A.events" | cut -f1 | paste -sd, -)
$CH -q "DROP TABLE IF EXISTS $D.src"
$CH -q "CREATE TABLE $D.src ENGINE = Memory AS
SELECT $cols, t.1 AS trait_keys, t.2 AS trait_values, t.3 AS trait_nulls, p.1 AS prop_keys, p.2 AS prop_values
FROM (SELECT *, ($tsel) AS t, ($psel) AS p FROM $A.events)"
N=$($CH -q "SELECT count() FROM $D.src")
tables=$($CH -q "SELECT name FROM system.tables WHERE database='$D' AND engine LIKE '%MergeTree%'")

run() { # $1: label, $2: the columns to insert (all when absent)
	local c=${2:-*}
	for r in $(seq "$REPS"); do
		for t in $tables; do $CH -q "TRUNCATE TABLE $D.$t"; done
		$CH --log_queries=1 --query_id "typed-$RUN-$1-$r" --min_insert_block_size_rows="$BLOCK" --max_block_size=8192 \
			-q "INSERT INTO $D.events ${2:+($c)} SELECT $c FROM $D.src"
	done
}
# measure $1 (label) with view DDL $2 attached alone
# and print a checksum of the states it left, which the JSON view and its
# column-reading twin must agree on
with() {
	$CH -q "$2"
	run "$1"
	$CH -q "DROP TABLE $D.tmp_view"
	echo "$1 states checksum: $($CH -q "SELECT
    (SELECT sum(cityHash64(customer_id, attribute, toString(l), toString(f))) FROM (SELECT customer_id, attribute, argMaxMerge(last_value) AS l, argMinMerge(first_value) AS f FROM $D.customer_attributes GROUP BY customer_id, attribute))
  + (SELECT sum(cityHash64(customer_id, attribute, toString(arraySort(c)))) FROM (SELECT customer_id, attribute, groupUniqArrayMerge(changes) AS c FROM $D.customer_attribute_history GROUP BY customer_id, attribute))
  + (SELECT sum(cityHash64(customer_id, signal, bucket, toString(arraySort(o)))) FROM (SELECT customer_id, signal, bucket, groupUniqArrayMerge(occurrences) AS o FROM $D.customer_signals GROUP BY customer_id, signal, bucket))")"
}
json_ddl() { # the attached database's view $1, as tmp_view in $D
	$CH -q "SELECT create_table_query FROM system.tables WHERE database='$A' AND name='$1'" |
		sed "s/\\\\'/'/g; s/$A\./$D./g; s/VIEW $D\.$1 /VIEW $D.tmp_view /"
}
# the JSON view's text with traits (or properties) lookups read from the arrays
typed_ddl() { # $1 view, $2 json column, $3 array prefix
	json_ddl "$1" | sed -E \
		-e "s/if\(substring\(visitParamExtractRaw\($2, ('[^']+')\), 1, 1\) = '\"', visitParamExtractString\($2, '[^']+'\), visitParamExtractRaw\($2, '[^']+'\)\)/$3_values[indexOf($3_keys, \1)]/g" \
		-e "s/toUInt8\(visitParamExtractRaw\($2, ('[^']+')\) = 'null'\)/$3_nulls[indexOf($3_keys, \1)]/g" \
		-e "s/toUInt8\(visitParamHas\($2, ('[^']+')\)\)/toUInt8(has($3_keys, \1))/g" \
		-e "s/, $2, /, $3_keys, $3_values, $([ "$3" = trait ] && echo "trait_nulls, ")/" \
		-e "s/WHERE $2 NOT IN \('', '\{\}'\)/WHERE notEmpty($3_keys)/"
}

run none:json "$cols"
run none:columns
for v in $($CH -q "SELECT name FROM system.tables WHERE database='$A' AND name LIKE 'mv\\_attribute%' ORDER BY name"); do
	with "${v%_*}:json" "$(json_ddl "$v")"
	with "${v%_*}:columns" "$(typed_ddl "$v" traits trait)"
done
v=$($CH -q "SELECT name FROM system.tables WHERE database='$A' AND name LIKE 'mv\\_signals%'")
with "mv_signals:json" "$(json_ddl "$v")"
with "mv_signals:columns" "$(typed_ddl "$v" properties prop)"
$CH -q "DROP TABLE $D.src"
$CH -q "SYSTEM FLUSH LOGS"
$CH -q "SELECT label, count() AS reps, round(median(cpu) / $N, 2) AS cpu_us_per_row, round(quantileExact(0.25)(cpu) / $N, 2) AS q1, round(quantileExact(0.75)(cpu) / $N, 2) AS q3
FROM
(
    SELECT splitByChar('-', query_id)[3] AS label,
        arraySum(arrayFilter((v, n) -> n IN ('UserTimeMicroseconds', 'SystemTimeMicroseconds'), ProfileEvents.Values, ProfileEvents.Names)) AS cpu
    FROM system.query_log
    WHERE type = 2 AND event_date >= yesterday() AND startsWith(query_id, 'typed-$RUN-')
)
GROUP BY label ORDER BY label FORMAT PrettyCompactMonoBlock"
echo "$N rows per insert"
