# The commands a newcomer needs. Every target works from a fresh clone.
GO ?= go

.PHONY: dev test build services stop-services kafka plugin fuzz

## dev: run everything locally with a demo workload (Ctrl-C stops)
dev:
	scripts/clickhouse.sh start
	$(GO) run ./cmd/tideline dev

## test: the whole test suite against real ClickHouse and Kafka (what CI runs)
test:
	scripts/test.sh

## build: the tideline binary in bin/
build:
	$(GO) build -o bin/tideline ./cmd/tideline

## services: start the local ClickHouse and Apache Kafka
services:
	scripts/clickhouse.sh start
	scripts/kafka.sh start

## stop-services: stop them
stop-services:
	-scripts/kafka.sh stop
	-scripts/clickhouse.sh stop

## fuzz: run every fuzz target (FUZZTIME=2m by default)
fuzz:
	scripts/fuzz.sh $(FUZZTIME)
