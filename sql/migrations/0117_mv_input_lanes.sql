-- mv_input_lanes keeps input_lanes current: per inserted block, each lane's
-- track and page event names and whether it carried traits.
CREATE MATERIALIZED VIEW IF NOT EXISTS mv_input_lanes TO input_lanes AS
SELECT
    lane,
    k.1 AS input_type,
    k.2 AS input_event,
    min(ingest_time_ms) AS first_seen_ms
FROM events
ARRAY JOIN arrayFilter(x -> x.1 != '', [
    (if(type IN ('track', 'page'), type, ''), event),
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
