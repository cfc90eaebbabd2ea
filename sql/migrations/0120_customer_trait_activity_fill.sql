-- Fills customer_activity from the events loaded before
-- mv_customer_trait_activity existed: the 'traits' rows that view writes, and
-- again the track and page rows of mv_customer_activity, so that the table
-- reads as if both views had always been there. Rows collapse by key, so
-- running it again, or beside the views, adds nothing.
INSERT INTO customer_activity (minute, type, event, customer_id)
SELECT minute, type, event, customer_id
FROM
(
    SELECT toStartOfMinute(event_time) AS minute, type, event, customer_id
    FROM events
    WHERE type IN ('track', 'page')
    GROUP BY minute, type, event, customer_id
    UNION ALL
    SELECT toStartOfMinute(event_time) AS minute, 'traits' AS type, '' AS event, customer_id
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
)
