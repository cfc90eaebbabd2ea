CREATE MATERIALIZED VIEW IF NOT EXISTS mv_attributes_52d261f00f TO customer_attributes AS
SELECT
    customer_id,
    a.1 AS attribute,
    argMaxState((a.2, a.3, event_time_ms, ingest_time_ms, message_id), (event_time_ms, message_id, bitNot(ingest_time_ms))) AS last_value,
    argMinState((a.2, a.3, event_time_ms, ingest_time_ms, message_id), (a.3, event_time_ms, message_id, ingest_time_ms)) AS first_value
FROM
(
    -- only rows with traits reach the per-attribute expressions
    SELECT customer_id, traits, event_time_ms, ingest_time_ms, message_id
    FROM events
    WHERE traits NOT IN ('', '{}')
)
ARRAY JOIN arrayFilter(x -> x.4 = 1, [
    ('age', if(substring(visitParamExtractRaw(traits, 'age'), 1, 1) = '"', visitParamExtractString(traits, 'age'), visitParamExtractRaw(traits, 'age')), toUInt8(visitParamExtractRaw(traits, 'age') = 'null'), toUInt8(visitParamHas(traits, 'age'))),
    ('country', if(substring(visitParamExtractRaw(traits, 'country'), 1, 1) = '"', visitParamExtractString(traits, 'country'), visitParamExtractRaw(traits, 'country')), toUInt8(visitParamExtractRaw(traits, 'country') = 'null'), toUInt8(visitParamHas(traits, 'country'))),
    ('email', if(substring(visitParamExtractRaw(traits, 'email'), 1, 1) = '"', visitParamExtractString(traits, 'email'), visitParamExtractRaw(traits, 'email')), toUInt8(visitParamExtractRaw(traits, 'email') = 'null'), toUInt8(visitParamHas(traits, 'email'))),
    ('first_source', if(substring(visitParamExtractRaw(traits, 'first_source'), 1, 1) = '"', visitParamExtractString(traits, 'first_source'), visitParamExtractRaw(traits, 'first_source')), toUInt8(visitParamExtractRaw(traits, 'first_source') = 'null'), toUInt8(visitParamHas(traits, 'first_source'))),
    ('nickname', if(substring(visitParamExtractRaw(traits, 'nickname'), 1, 1) = '"', visitParamExtractString(traits, 'nickname'), visitParamExtractRaw(traits, 'nickname')), toUInt8(visitParamExtractRaw(traits, 'nickname') = 'null'), toUInt8(visitParamHas(traits, 'nickname'))),
    ('plan', if(substring(visitParamExtractRaw(traits, 'plan'), 1, 1) = '"', visitParamExtractString(traits, 'plan'), visitParamExtractRaw(traits, 'plan')), toUInt8(visitParamExtractRaw(traits, 'plan') = 'null'), toUInt8(visitParamHas(traits, 'plan'))),
    ('score', if(substring(visitParamExtractRaw(traits, 'score'), 1, 1) = '"', visitParamExtractString(traits, 'score'), visitParamExtractRaw(traits, 'score')), toUInt8(visitParamExtractRaw(traits, 'score') = 'null'), toUInt8(visitParamHas(traits, 'score'))),
    ('vip', if(substring(visitParamExtractRaw(traits, 'vip'), 1, 1) = '"', visitParamExtractString(traits, 'vip'), visitParamExtractRaw(traits, 'vip')), toUInt8(visitParamExtractRaw(traits, 'vip') = 'null'), toUInt8(visitParamHas(traits, 'vip')))
]) AS a
GROUP BY customer_id, attribute;

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_attribute_history_52d261f00f TO customer_attribute_history AS
SELECT
    customer_id,
    a.1 AS attribute,
    groupUniqArrayState((event_time_ms, message_id, a.2, a.3)) AS changes
FROM
(
    -- only rows with traits reach the per-attribute expressions
    SELECT customer_id, traits, event_time_ms, message_id
    FROM events
    WHERE traits NOT IN ('', '{}')
)
ARRAY JOIN arrayFilter(x -> x.4 = 1, [
    ('age', if(substring(visitParamExtractRaw(traits, 'age'), 1, 1) = '"', visitParamExtractString(traits, 'age'), visitParamExtractRaw(traits, 'age')), toUInt8(visitParamExtractRaw(traits, 'age') = 'null'), toUInt8(visitParamHas(traits, 'age'))),
    ('country', if(substring(visitParamExtractRaw(traits, 'country'), 1, 1) = '"', visitParamExtractString(traits, 'country'), visitParamExtractRaw(traits, 'country')), toUInt8(visitParamExtractRaw(traits, 'country') = 'null'), toUInt8(visitParamHas(traits, 'country'))),
    ('email', if(substring(visitParamExtractRaw(traits, 'email'), 1, 1) = '"', visitParamExtractString(traits, 'email'), visitParamExtractRaw(traits, 'email')), toUInt8(visitParamExtractRaw(traits, 'email') = 'null'), toUInt8(visitParamHas(traits, 'email'))),
    ('first_source', if(substring(visitParamExtractRaw(traits, 'first_source'), 1, 1) = '"', visitParamExtractString(traits, 'first_source'), visitParamExtractRaw(traits, 'first_source')), toUInt8(visitParamExtractRaw(traits, 'first_source') = 'null'), toUInt8(visitParamHas(traits, 'first_source'))),
    ('nickname', if(substring(visitParamExtractRaw(traits, 'nickname'), 1, 1) = '"', visitParamExtractString(traits, 'nickname'), visitParamExtractRaw(traits, 'nickname')), toUInt8(visitParamExtractRaw(traits, 'nickname') = 'null'), toUInt8(visitParamHas(traits, 'nickname'))),
    ('plan', if(substring(visitParamExtractRaw(traits, 'plan'), 1, 1) = '"', visitParamExtractString(traits, 'plan'), visitParamExtractRaw(traits, 'plan')), toUInt8(visitParamExtractRaw(traits, 'plan') = 'null'), toUInt8(visitParamHas(traits, 'plan'))),
    ('score', if(substring(visitParamExtractRaw(traits, 'score'), 1, 1) = '"', visitParamExtractString(traits, 'score'), visitParamExtractRaw(traits, 'score')), toUInt8(visitParamExtractRaw(traits, 'score') = 'null'), toUInt8(visitParamHas(traits, 'score'))),
    ('vip', if(substring(visitParamExtractRaw(traits, 'vip'), 1, 1) = '"', visitParamExtractString(traits, 'vip'), visitParamExtractRaw(traits, 'vip')), toUInt8(visitParamExtractRaw(traits, 'vip') = 'null'), toUInt8(visitParamHas(traits, 'vip')))
]) AS a
GROUP BY customer_id, attribute;

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_signals_f09fe2b7aa TO customer_signals AS
SELECT
    customer_id,
    s.1 AS signal,
    toStartOfHour(event_time) AS bucket,
    groupUniqArrayState((event_time_ms, message_id, s.2)) AS occurrences
FROM
(
    -- only events some signal counts reach the per-signal expressions
    SELECT customer_id, type, event, context_campaign_source, context_locale, group_id, properties, event_time, event_time_ms, message_id
    FROM events
    WHERE (type, event) IN (('group', ''), ('page', 'Pricing'), ('screen', 'Checkout'), ('track', 'Order Completed (v2)'), ('track', 'add_to_cart'), ('track', 'page_view'), ('track', 'purchase'), ('track', 'signup'))
)
ARRAY JOIN arrayFilter(x -> x.3 = 1, [
    ('s3f4122113a', toFloat64(0), toUInt8(type = 'group' AND event = '' AND group_id = 'acme')),
    ('s59f9237e25', toFloat64OrZero(if(substring(visitParamExtractRaw(properties, 'total'), 1, 1) = '"', visitParamExtractString(properties, 'total'), visitParamExtractRaw(properties, 'total'))), toUInt8(type = 'track' AND event = 'Order Completed (v2)' AND NOT (((visitParamHas(properties, 'coupon') AND visitParamExtractRaw(properties, 'coupon') != 'null') AND if(substring(visitParamExtractRaw(properties, 'coupon'), 1, 1) = '"', visitParamExtractString(properties, 'coupon'), visitParamExtractRaw(properties, 'coupon')) = '50% off \'today\'')))),
    ('s7b92145160', toFloat64(0), toUInt8(type = 'track' AND event = 'purchase' AND ((context_campaign_source != '') AND context_campaign_source = 'newsletter') AND ((context_locale != '') AND context_locale IN ('de-DE', 'de-AT')))),
    ('s873dc8bdea', toFloat64(0), toUInt8(type = 'page' AND event = 'Pricing')),
    ('s9393ea3936', toFloat64(0), toUInt8(type = 'screen' AND event = 'Checkout')),
    ('sa8e171b497', toFloat64(0), toUInt8(type = 'track' AND event = 'purchase' AND ((visitParamHas(properties, 'amount') AND visitParamExtractRaw(properties, 'amount') != 'null') AND (isNotNull(toFloat64OrNull(if(substring(visitParamExtractRaw(properties, 'amount'), 1, 1) = '"', visitParamExtractString(properties, 'amount'), visitParamExtractRaw(properties, 'amount')))) AND toFloat64OrZero(if(substring(visitParamExtractRaw(properties, 'amount'), 1, 1) = '"', visitParamExtractString(properties, 'amount'), visitParamExtractRaw(properties, 'amount'))) > 10)) AND ((visitParamHas(properties, 'currency') AND visitParamExtractRaw(properties, 'currency') != 'null') AND if(substring(visitParamExtractRaw(properties, 'currency'), 1, 1) = '"', visitParamExtractString(properties, 'currency'), visitParamExtractRaw(properties, 'currency')) = 'USD'))),
    ('saebc46ec4a', toFloat64(0), toUInt8(type = 'group' AND event = '' AND ((visitParamHas(properties, 'plan') AND visitParamExtractRaw(properties, 'plan') != 'null') AND if(substring(visitParamExtractRaw(properties, 'plan'), 1, 1) = '"', visitParamExtractString(properties, 'plan'), visitParamExtractRaw(properties, 'plan')) = 'enterprise'))),
    ('sc413bdc18e', toFloat64(0), toUInt8(type = 'track' AND event = 'purchase')),
    ('sc6bc7ef892', toFloat64(0), toUInt8(type = 'track' AND event = 'add_to_cart')),
    ('sc8e9950396', toFloat64OrZero(if(substring(visitParamExtractRaw(properties, 'amount'), 1, 1) = '"', visitParamExtractString(properties, 'amount'), visitParamExtractRaw(properties, 'amount'))), toUInt8(type = 'track' AND event = 'purchase')),
    ('sdd273d73e9', toFloat64(0), toUInt8(type = 'track' AND event = 'page_view')),
    ('se2046bb951', toFloat64(0), toUInt8(type = 'track' AND event = 'signup'))
]) AS s
GROUP BY customer_id, signal, bucket;

