-- What do we know about customer alice: every attribute, its value, when it
-- was set (event time and ingest time) and by which message?
SELECT attribute, value, event_time, ingest_time_ms, message_id, set_once
FROM customer_attributes_current
WHERE customer_id = 'alice'
ORDER BY attribute
