// Package ingest moves events from clients into ClickHouse.
//
// The collector is an HTTP API shaped like the Segment tracking spec
// (/v1/track, /v1/identify, /v1/page, /v1/batch). It authenticates write keys,
// validates and normalises each event, corrects its timestamp with sentAt,
// and answers 2xx only after Kafka acknowledged the records (acks=all,
// idempotent producer, keyed by customer).
//
// The loader is a franz-go consumer group per lane. It decodes records into
// columnar batches, inserts them into ClickHouse over the native protocol,
// and commits offsets only after ClickHouse acknowledged the insert. Records
// it cannot accept go to the dead-letter table and topic with the reason, so
// accepted + dead-lettered = consumed. After each flush it records, per
// partition, the committed offset and the event-time watermark.
package ingest
