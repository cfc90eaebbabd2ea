-- Fills input_lanes with the screen and group calls loaded before
-- mv_input_lanes_calls existed (and everything else again, as the view
-- computes it). Rows collapse by key, so running it again, or beside the
-- view, adds nothing.
INSERT INTO input_lanes (lane, input_type, input_event, first_seen_ms)
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
