-- mv_customer_trait_activity adds to customer_activity, as type 'traits', the
-- customers whose traits or context attributes an event set in each minute
-- of event time: when an audience's evaluation time passes a minute, those
-- customers' attribute values as of that time may have changed.
CREATE MATERIALIZED VIEW IF NOT EXISTS mv_customer_trait_activity TO customer_activity AS
SELECT
    toStartOfMinute(event_time) AS minute,
    'traits' AS type,
    '' AS event,
    customer_id
FROM events
WHERE traits NOT IN ('', '{}') OR arrayExists(x -> x != '', [
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
    ])
GROUP BY minute, customer_id
