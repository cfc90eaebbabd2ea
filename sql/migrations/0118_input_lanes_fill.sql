-- Fills input_lanes from the events loaded before mv_input_lanes existed.
-- Rows collapse by key, so running it again, or beside the view, adds nothing.
INSERT INTO input_lanes (lane, input_type, input_event, first_seen_ms)
SELECT
    lane,
    k.1 AS input_type,
    k.2 AS input_event,
    min(ingest_time_ms) AS first_seen_ms
FROM events
ARRAY JOIN arrayFilter(x -> x.1 != '', [
    (if(type IN ('track', 'page'), type, ''), event),
    (if(traits NOT IN ('', '{}'), 'traits', ''), '')
]) AS k
GROUP BY lane, input_type, input_event
