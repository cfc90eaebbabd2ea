-- Fills customer_activity_seconds from the events loaded before its views
-- existed, so that the table reads as if they had always been there. Rows
-- collapse by key, so running it again, or beside the views, adds nothing.
INSERT INTO customer_activity_seconds (second, type, event, customer_id)
SELECT second, type, event, customer_id
FROM
(
    SELECT event_time AS second, type, event, customer_id
    FROM events
    WHERE type IN ('track', 'page')
    GROUP BY second, type, event, customer_id
    UNION ALL
    SELECT event_time AS second, 'traits' AS type, '' AS event, customer_id
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
)
