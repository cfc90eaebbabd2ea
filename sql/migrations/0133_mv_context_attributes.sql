-- mv_context_attributes: the context values audiences filter on become
-- attributes of the customer, last-write-wins by event time like traits
-- (attribute names are the events columns': context_campaign_name,
-- context_page_path, ...). An audience uses them as any attribute:
-- `attribute: context_campaign_name, equals: black_friday`. Listing one in
-- materialize.set_once keeps its first value (first touch).
CREATE MATERIALIZED VIEW IF NOT EXISTS mv_context_attributes TO customer_attributes AS
SELECT
    customer_id,
    a.1 AS attribute,
    argMaxState((a.2, toUInt8(0), event_time_ms, ingest_time_ms, message_id), (event_time_ms, message_id, bitNot(ingest_time_ms))) AS last_value,
    argMinState((a.2, toUInt8(0), event_time_ms, ingest_time_ms, message_id), (toUInt8(0), event_time_ms, message_id, ingest_time_ms)) AS first_value
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
