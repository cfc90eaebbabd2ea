-- mv_context_attribute_history keeps, for the context values that
-- mv_context_attributes makes attributes, the history the evaluator reads
-- (see customer_attribute_history): every value each context attribute was
-- sent, with its event time and message.
CREATE MATERIALIZED VIEW IF NOT EXISTS mv_context_attribute_history TO customer_attribute_history AS
SELECT
    customer_id,
    a.1 AS attribute,
    groupUniqArrayState((event_time_ms, message_id, a.2, toUInt8(0))) AS changes
FROM events
ARRAY JOIN arrayFilter(x -> x.2 != '', [
    ('context_campaign_source', context_campaign_source),
    ('context_campaign_medium', context_campaign_medium),
    ('context_campaign_name', context_campaign_name),
    ('context_campaign_term', context_campaign_term),
    ('context_campaign_content', context_campaign_content),
    ('context_page_url', context_page_url),
    ('context_page_path', context_page_path),
    ('context_page_referrer', context_page_referrer),
    ('context_ip', context_ip),
    ('context_user_agent', context_user_agent),
    ('context_locale', context_locale),
    ('context_timezone', context_timezone),
    ('context_library_name', context_library_name),
    ('context_library_version', context_library_version)
]) AS a
GROUP BY customer_id, attribute
