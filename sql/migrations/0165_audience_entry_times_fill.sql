-- Fills audience_entry_times with the entries written before
-- audience_entry_times_mv existed. An entry written meanwhile is copied
-- twice, which readers count once.
INSERT INTO audience_entry_times (derived_at_ms, audience_id, key, event_time_ms, lane)
SELECT derived_at_ms, audience_id, cityHash64(audience_id, customer_id, episode), event_time_ms, lane
FROM audience_transitions
WHERE kind = 'entered'
