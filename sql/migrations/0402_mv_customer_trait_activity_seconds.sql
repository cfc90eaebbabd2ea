-- mv_customer_trait_activity_seconds adds to customer_activity_seconds, as
-- type 'traits', the customers whose traits or context attributes an event
-- set in each second of event time: when an audience's evaluation time
-- passes that second, those customers' attribute values as of it may have
-- changed.
CREATE MATERIALIZED VIEW IF NOT EXISTS mv_customer_trait_activity_seconds TO customer_activity_seconds AS
SELECT
    event_time AS second,
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
GROUP BY second, customer_id
