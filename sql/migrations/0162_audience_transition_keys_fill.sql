-- Fills audience_transition_keys with the transitions written before
-- audience_transition_keys_mv existed. A transition written meanwhile is
-- copied twice, which readers count once.
INSERT INTO audience_transition_keys (audience_id, event_time_ms, key, kind, derived_at_ms, lane)
SELECT audience_id, event_time_ms, cityHash64(customer_id, episode), kind, derived_at_ms, lane
FROM audience_transitions
