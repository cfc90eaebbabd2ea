-- event_positions_mv copies the position of every row inserted into events
-- into event_positions, in the same INSERT: a batch ClickHouse acknowledged
-- has its positions recorded.
CREATE MATERIALIZED VIEW IF NOT EXISTS event_positions_mv TO event_positions AS
SELECT kafka_topic, kafka_partition, kafka_offset, customer_id, message_id, lane, received_at_ms, ingest_time_ms
FROM events
