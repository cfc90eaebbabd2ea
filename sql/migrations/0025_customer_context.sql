-- customer_context: per customer id (as in events), where it came from and
-- what it last used: first and last campaign (by event time), last page, ip,
-- user agent, locale, timezone and SDK, and every group it joined. Duplicated
-- deliveries change no value (argMin/argMax, distinct groups).
CREATE VIEW IF NOT EXISTS customer_context AS
SELECT
    customer_id,
    argMinIf(context_campaign_source, (event_time_ms, message_id), context_campaign_name != '' OR context_campaign_source != '') AS first_campaign_source,
    argMinIf(context_campaign_medium, (event_time_ms, message_id), context_campaign_name != '' OR context_campaign_source != '') AS first_campaign_medium,
    argMinIf(context_campaign_name, (event_time_ms, message_id), context_campaign_name != '' OR context_campaign_source != '') AS first_campaign_name,
    argMaxIf(context_campaign_source, (event_time_ms, message_id), context_campaign_name != '' OR context_campaign_source != '') AS last_campaign_source,
    argMaxIf(context_campaign_medium, (event_time_ms, message_id), context_campaign_name != '' OR context_campaign_source != '') AS last_campaign_medium,
    argMaxIf(context_campaign_name, (event_time_ms, message_id), context_campaign_name != '' OR context_campaign_source != '') AS last_campaign_name,
    argMaxIf(context_page_url, (event_time_ms, message_id), context_page_url != '') AS last_page_url,
    argMaxIf(context_page_path, (event_time_ms, message_id), context_page_url != '') AS last_page_path,
    argMaxIf(context_page_referrer, (event_time_ms, message_id), context_page_url != '') AS last_page_referrer,
    argMaxIf(context_ip, (event_time_ms, message_id), context_ip != '') AS last_ip,
    argMaxIf(context_user_agent, (event_time_ms, message_id), context_user_agent != '') AS last_user_agent,
    argMaxIf(context_locale, (event_time_ms, message_id), context_locale != '') AS last_locale,
    argMaxIf(context_timezone, (event_time_ms, message_id), context_timezone != '') AS last_timezone,
    argMaxIf(context_library_name, (event_time_ms, message_id), context_library_name != '') AS last_library_name,
    argMaxIf(context_library_version, (event_time_ms, message_id), context_library_name != '') AS last_library_version,
    groupUniqArrayIf(group_id, group_id != '') AS groups
FROM events
GROUP BY customer_id
