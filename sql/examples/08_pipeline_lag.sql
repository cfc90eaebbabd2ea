-- How far behind event time was each stage, per lane, over the last hour?
-- (ingest: event to insert; derive: insert to transition; qualify: event to
-- transition.)
SELECT stage, lane, sum(rows) AS rows, max(p95_ms) AS worst_minute_p95_ms, max(max_ms) AS max_ms
FROM pipeline_lag
WHERE minute >= now() - 3600
GROUP BY stage, lane
ORDER BY stage, lane
