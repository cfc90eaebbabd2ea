#!/usr/bin/env bash
# Runs every `go test -fuzz` target in the module, one after the other, and
# prints each one's executions and result.
#
#   scripts/fuzz.sh [fuzztime] [target-regexp]
#
#   scripts/fuzz.sh                 2 minutes per target (make fuzz)
#   scripts/fuzz.sh 30m             the long run
#   scripts/fuzz.sh 1000000x        a fixed number of executions per target
#   scripts/fuzz.sh 5m Collector    only the targets matching the regexp
#
# A failing input is written by Go to <package>/testdata/fuzz/<Target>/ and
# from then on runs as a regression test in the ordinary `go test`: commit it
# with the fix. The seed corpora in those directories are run by every
# `go test`, fuzzing or not. Some targets start an embedded Kafka broker
# (kfake) of their own; none needs ClickHouse.
#
# Settings: FUZZ_PARALLEL (workers per target, default GOMAXPROCS),
# FUZZ_MINIMIZE (time to minimise a new interesting input, default 10s:
# Go's 60s default stalls a run on the large seeds for minutes).
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime=${1:-2m}
filter=${2:-.}
minimize=${FUZZ_MINIMIZE:-10s}
parallel=()
[ -n "${FUZZ_PARALLEL:-}" ] && parallel=(-parallel "$FUZZ_PARALLEL")

# `go test -list` prints a package's matching tests, then "ok <package>".
targets=()
names=()
while IFS= read -r line; do
	case $line in
	Fuzz*) names+=("$line") ;;
	ok*)
		pkg=$(awk '{print $2}' <<<"$line")
		for n in "${names[@]}"; do
			[[ $n =~ $filter ]] && targets+=("$pkg $n")
		done
		names=()
		;;
	esac
done < <(go test -list '^Fuzz' ./...)

if [ ${#targets[@]} -eq 0 ]; then
	echo "fuzz.sh: no fuzz target matches ${filter}" >&2
	exit 1
fi

failed=0
summary=()
for t in "${targets[@]}"; do
	read -r pkg name <<<"$t"
	printf '\n==> %s %s (-fuzztime %s)\n' "$pkg" "$name" "$fuzztime"
	log=$(mktemp)
	start=$(date +%s)
	if go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime "$minimize" "${parallel[@]}" "$pkg" 2>&1 | tee "$log"; then
		result=PASS
	else
		result=FAIL
		failed=1
	fi
	execs=$(grep -o 'execs: [0-9]*' "$log" | tail -1 | awk '{print $2}')
	summary+=("$(printf '%-4s %-28s %-52s %12s execs in %ss' "$result" "$name" "$pkg" "${execs:-?}" "$(($(date +%s) - start))")")
	rm -f "$log"
done

printf '\n==> summary (%s per target, %s)\n' "$fuzztime" "$(date -u +%Y-%m-%dT%H:%MZ)"
printf '%s\n' "${summary[@]}"
exit $failed
