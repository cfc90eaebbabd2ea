-- mv_input_lanes_calls keeps input_lanes current as mv_input_lanes did, and
-- also for screen and group calls, which audiences count: a row per (lane,
-- type, event) for track, page and screen events and (lane, 'group', '')
-- for group calls. It is created before 0234 drops the view it replaces,
-- so no insert goes uncounted; both write the same keys, which collapse.
CREATE MATERIALIZED VIEW IF NOT EXISTS mv_input_lanes_calls TO input_lanes AS
SELECT
    lane,
    k.1 AS input_type,
    k.2 AS input_event,
    min(ingest_time_ms) AS first_seen_ms
FROM events
ARRAY JOIN arrayFilter(x -> x.1 != '', [
    (if(type IN ('track', 'page', 'screen', 'group'), type, ''), event),
    (if(traits NOT IN ('', '{}'), 'traits', ''), ''),
    (if(arrayExists(x -> x != '', [
            context_campaign_source,
            context_campaign_medium,
            context_campaign_name,
            context_campaign_term,
            context_campaign_content,
            context_page_url,
            context_page_path,
            context_page_referrer,
            context_ip,
            context_user_agent,
            context_locale,
            context_timezone,
            context_library_name,
            context_library_version
        ]), 'context', ''), '')
]) AS k
GROUP BY lane, input_type, input_event
