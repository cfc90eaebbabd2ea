-- audience_transition_keys_first_mv copies every transition into
-- audience_transition_keys as it is first written (re-dated rows stay out:
-- one transition, one time bucket).
CREATE MATERIALIZED VIEW IF NOT EXISTS audience_transition_keys_first_mv TO audience_transition_keys AS
SELECT audience_id, event_time_ms, cityHash64(customer_id, episode) AS key, kind, derived_at_ms, lane
FROM audience_transitions
WHERE redated = 0
