-- What is the p95 qualification latency (event time to tideline deriving the
-- entry) per lane and hour over the last 7 days? Entries caused by a window
-- ending rather than an event are left out.
SELECT
    lane,
    toStartOfHour(derived_at) AS hour,
    count() AS entries,
    quantile(0.95)(qualification_latency_ms) AS p95_latency_ms
FROM membership_transitions
WHERE kind = 'entered' AND cause = 'event' AND derived_at >= now() - 7 * 86400
GROUP BY lane, hour
ORDER BY lane, hour
