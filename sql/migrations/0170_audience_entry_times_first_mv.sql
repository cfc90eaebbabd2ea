-- audience_entry_times_first_mv copies every entry into audience_entry_times
-- as it is first written (re-dated rows stay out).
CREATE MATERIALIZED VIEW IF NOT EXISTS audience_entry_times_first_mv TO audience_entry_times AS
SELECT derived_at_ms, audience_id, cityHash64(audience_id, customer_id, episode) AS key, event_time_ms, lane
FROM audience_transitions
WHERE kind = 'entered' AND redated = 0
