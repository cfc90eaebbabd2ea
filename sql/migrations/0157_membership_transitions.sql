-- membership_transitions: every entry and exit, with readable times and the
-- lags between them: ingest_lag_ms (event to ingest), derive_lag_ms (ingest
-- to derivation) and qualification_latency_ms (event to derivation). cause
-- is 'event' when an event caused it, 'time' when a window ended.
CREATE VIEW IF NOT EXISTS membership_transitions AS
SELECT
    audience_id,
    customer_id,
    episode,
    kind,
    if(message_id = '', 'time', 'event') AS cause,
    event_time_ms,
    toDateTime(intDiv(event_time_ms, 1000)) AS event_time,
    ingest_time_ms,
    derived_at_ms,
    derived_at,
    message_id,
    lane,
    if(ingest_time_ms = 0, toInt64(0), toInt64(ingest_time_ms) - toInt64(event_time_ms)) AS ingest_lag_ms,
    if(ingest_time_ms = 0, toInt64(0), toInt64(derived_at_ms) - toInt64(ingest_time_ms)) AS derive_lag_ms,
    toInt64(derived_at_ms) - toInt64(event_time_ms) AS qualification_latency_ms
FROM audience_transitions FINAL
