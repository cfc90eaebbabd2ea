#!/usr/bin/env bash
# The test suite, as CI runs it: starts the local ClickHouse, the local
# ClickHouse cluster (scripts/cluster.sh) and Apache Kafka
# (installing what is missing) and a current ClickHouse in-process (chdb-core,
# for sql/conformance), checks the plugin frontend, then runs every Go
# test against the real servers. A service that fails to start fails the run.
#
#   scripts/test.sh [go test args...]     e.g. scripts/test.sh -run TestOracle ./materialize/
#
# With TIDELINE_TEST_CLUSTER_MODE=1 (make test-cluster) every test database
# is on the local cluster in cluster mode: the whole suite in that mode.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "starting ClickHouse"
scripts/clickhouse.sh start
step "starting Apache Kafka (KRaft)"
scripts/kafka.sh start
step "starting the local ClickHouse cluster (ZooKeeper, 2 shards x 2 replicas)"
scripts/cluster.sh start
export TIDELINE_TEST_KAFKA=127.0.0.1:${TIDELINE_KAFKA_PORT:-19092}
export TIDELINE_TEST_CLICKHOUSE=127.0.0.1:${TIDELINE_CH_TCP_PORT:-19000}
TIDELINE_TEST_CLUSTER=$(scripts/cluster.sh addrs)
export TIDELINE_TEST_CLUSTER

# The incident report's and the browser SDK's tests render pages in
# headless Chromium.
if ! command -v chromium >/dev/null 2>&1; then
	step "installing Chromium (Debian's chromium) for the browser tests"
	SUDO=""
	if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
	$SUDO apt-get update -qq
	$SUDO apt-get install -y -qq chromium
fi

step "current ClickHouse in-process (chdb-core) for sql/conformance"
echo "ClickHouse $(scripts/chdb.sh version) embedded through chdb"

if [ -f grafana/app/package.json ]; then
	step "Grafana plugin frontend: typecheck, unit tests, build"
	bash scripts/grafana-frontend.sh
fi

step "go vet"
go vet ./...

step "go test"
if [ $# -eq 0 ]; then
	set -- ./...
fi
timeout=30m
if [ "${TIDELINE_TEST_CLUSTER_MODE:-}" = 1 ]; then
	timeout=180m
fi
if [ "$*" = ./... ]; then
	# The cluster failover scenario SIGKILLs servers of the shared local
	# cluster: it runs alone, after everything else that uses the cluster.
	go test -count=1 -timeout "$timeout" -skip 'TestClusterReplicaKilled' "$@"
else
	go test -count=1 -timeout "$timeout" "$@"
fi

if [ "$*" = ./... ]; then
	if [ "${TIDELINE_TEST_CLUSTER_MODE:-}" != 1 ]; then
		# The oracle, the sharded evaluators and the replay tests again,
		# unchanged, with every test database on the local cluster in
		# cluster mode (about 5 minutes on 2 cores; the oracle's first seed
		# only, as the seeds vary the stream, not the mode). `make
		# test-cluster` runs the whole suite there.
		step "go test: oracle, sharded evaluators and replay on the local cluster (cluster mode)"
		TIDELINE_TEST_CLUSTER_MODE=1 TIDELINE_TEST_SEEDS=1 go test -count=1 -timeout 20m \
			-run 'TestOracle|TestShardedEvaluators|TestReplayChangesNothing|TestIncidentReplay' ./materialize/ ./backfill/
	fi
	step "go test: a cluster replica killed (alone on the local cluster)"
	go test -count=1 -timeout 10m -run 'TestClusterReplicaKilled' ./reliability/
fi
