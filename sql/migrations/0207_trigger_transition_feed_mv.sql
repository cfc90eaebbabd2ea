-- trigger_transition_feed_mv copies every transition into the poller's feed.
CREATE MATERIALIZED VIEW IF NOT EXISTS trigger_transition_feed_mv TO trigger_transition_feed AS
SELECT derived_at_ms, audience_id, customer_id, episode, kind, event_time_ms, ingest_time_ms, message_id, lane, derived_at
FROM audience_transitions
