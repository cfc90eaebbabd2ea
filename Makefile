# The commands a newcomer needs. Every target works from a fresh clone.
GO ?= go

.PHONY: dev test test-cluster build services cluster stop-services plugin dashboards fuzz bench

## dev: run everything locally with a demo workload (Ctrl-C stops)
dev:
	scripts/clickhouse.sh start
	$(GO) run ./cmd/tideline dev

## test: the whole test suite against real ClickHouse and Kafka (what CI runs)
test:
	scripts/test.sh

## test-cluster: the whole test suite again with every test database on the local ClickHouse cluster
## in cluster mode (much slower than make test: every migration is DDL ON CLUSTER)
test-cluster:
	TIDELINE_TEST_CLUSTER_MODE=1 scripts/test.sh

## build: the tideline binary in bin/
build:
	$(GO) build -ldflags "-X main.commit=$$(git rev-parse HEAD 2>/dev/null)" -o bin/tideline ./cmd/tideline

## services: start the local ClickHouse and Apache Kafka
services:
	scripts/clickhouse.sh start
	scripts/kafka.sh start

## cluster: start the local ClickHouse cluster (ZooKeeper, 2 shards x 2 replicas on loopback)
cluster:
	scripts/cluster.sh start

## stop-services: stop them
stop-services:
	-scripts/cluster.sh stop
	-scripts/kafka.sh stop
	-scripts/clickhouse.sh stop

## fuzz: run every fuzz target (FUZZTIME=2m by default)
fuzz:
	scripts/fuzz.sh $(FUZZTIME)

## plugin: the Grafana plugin in grafana/app/dist (frontend, backend for linux/amd64, linux/arm64 and
## darwin/arm64 built by grafana/app/Magefile.go) and its archive, checked with levitate and the plugin validator
plugin:
	bash scripts/grafana-frontend.sh

## dashboards: regenerate grafana/dashboards/*.json from their Go code
dashboards:
	$(GO) run ./grafana/dashboards/gen

## bench: throughput, latency, backlog drain and memory against the Kafka engine and the insert ceiling (BENCHMARKS.md)
bench:
	scripts/clickhouse.sh start
	$(GO) run ./cmd/tideline bench
