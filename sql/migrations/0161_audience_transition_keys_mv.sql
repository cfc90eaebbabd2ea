-- audience_transition_keys_mv copies every transition into
-- audience_transition_keys as it is written.
CREATE MATERIALIZED VIEW IF NOT EXISTS audience_transition_keys_mv TO audience_transition_keys AS
SELECT audience_id, event_time_ms, cityHash64(customer_id, episode) AS key, kind, derived_at_ms, lane
FROM audience_transitions
