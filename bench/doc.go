// Package bench measures the pipeline on the machine it runs on, in one
// bounded run: the loader's sustained throughput from Kafka into ClickHouse
// (with the materialized views attached and detached), the same data
// consumed by ClickHouse's own Kafka table engine (the peer a user would
// pick instead), the same rows inserted as pre-built columnar batches (the
// ceiling of any client), end-to-end latency at a fixed rate, the drain of
// an accumulated backlog while a live lane keeps flowing, and the peak RSS of
// every tideline process involved.
//
// The loader and the collector run as child processes of the tideline binary
// (`tideline bench child`), so their memory and CPU profiles are their own
// and not the bench's, which also hosts the embedded broker and the data
// generator. Figures land in a Result, printed as a table or JSON and kept in
// bench/results so runs can be compared over time.
package bench
