-- pipeline_lag: per stage, lane and minute over the last 24 hours, how far
-- behind event time each step ran: 'ingest' (event time to the loader's
-- insert, per event), 'derive' (insert to the evaluator's transition) and
-- 'qualify' (event time to the transition), as p50, p95 and max in ms.
-- Time-driven transitions (no causing event) are left out of derive and
-- qualify.
CREATE VIEW IF NOT EXISTS pipeline_lag AS
SELECT
    'ingest' AS stage,
    lane,
    toStartOfMinute(touched_at) AS minute,
    uniqExact(message_id) AS rows,
    quantile(0.5)(toInt64(ingest_time_ms) - toInt64(event_time_ms)) AS p50_ms,
    quantile(0.95)(toInt64(ingest_time_ms) - toInt64(event_time_ms)) AS p95_ms,
    max(toInt64(ingest_time_ms) - toInt64(event_time_ms)) AS max_ms
FROM customer_touches
WHERE alias = 0 AND touched_at >= now() - 86400
GROUP BY lane, minute
UNION ALL
SELECT
    stage,
    lane,
    toStartOfMinute(derived_at) AS minute,
    count() AS rows,
    quantile(0.5)(lag) AS p50_ms,
    quantile(0.95)(lag) AS p95_ms,
    max(lag) AS max_ms
FROM
(
    SELECT lane, derived_at, stage, lag
    FROM audience_transitions FINAL
    ARRAY JOIN
        ['derive', 'qualify'] AS stage,
        [toInt64(derived_at_ms) - toInt64(ingest_time_ms), toInt64(derived_at_ms) - toInt64(event_time_ms)] AS lag
    WHERE message_id != '' AND derived_at >= now() - 86400
)
GROUP BY stage, lane, minute
