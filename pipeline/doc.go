// Package pipeline assembles tideline's components. It sits above the
// domain packages (ingest, materialize, trigger) and below the commands:
// every place that runs more than one component (`tideline dev`, the
// backfill drill, the bench's children, the integration tests) builds each
// one here, from the component's own Config and one Env that carries the
// ClickHouse connection, the brokers, the metrics registry and the logger.
//
// RunDev is `tideline dev`: it starts (or reuses) the local ClickHouse through
// the repo's script, runs the embedded broker (or uses real Kafka), applies
// migrations, serves the collector, runs the loader and the downstream
// components, drives the demo workload through the HTTP API, shows a live
// status, and stops in data-flow order so that nothing the collector
// accepted is lost.
package pipeline
