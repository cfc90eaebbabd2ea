-- Fills event_positions from the events loaded before event_positions_mv
-- existed. Positions that merges had already collapsed are gone; a batch
-- loaded meanwhile is recorded twice, which changes nothing (readers count
-- distinct positions).
INSERT INTO event_positions (kafka_topic, kafka_partition, kafka_offset, customer_id, message_id, lane, received_at_ms, ingest_time_ms)
SELECT kafka_topic, kafka_partition, kafka_offset, customer_id, message_id, lane, received_at_ms, ingest_time_ms
FROM events
