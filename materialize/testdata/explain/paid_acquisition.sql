-- audience paid_acquisition: Acquired through ads
-- file:    testdata/compile/set_once.yaml
-- version: 65d8ee522ee658f4
--
-- A customer is a member while the condition below holds. It is evaluated
-- per customer (a user together with the anonymous ids an identify linked to
-- it) as of T, the smallest watermark of the evaluated lanes: every event
-- received before T is loaded, so a window never ends past missing data.

-- condition
(has_first_source AND attr_first_source = 'ads')

-- columns
--   attr_first_source: trait "first_source", first non-null value by event time (set_once); has_first_source: 1 when set and not null

-- how the inputs are kept: on every insert into events, one view computes
-- every maintained attribute and one every signal (`tideline audiences apply`
-- creates them, and runs these SELECTs once over history for what is new).
-- For this audience they compute:
SELECT
    customer_id,
    'first_source' AS attribute,
    argMaxState((if(substring(visitParamExtractRaw(traits, 'first_source'), 1, 1) = '"', visitParamExtractString(traits, 'first_source'), visitParamExtractRaw(traits, 'first_source')), toUInt8(visitParamExtractRaw(traits, 'first_source') = 'null'), event_time_ms, ingest_time_ms, message_id), (event_time_ms, message_id, bitNot(ingest_time_ms))) AS last_value,
    argMinState((if(substring(visitParamExtractRaw(traits, 'first_source'), 1, 1) = '"', visitParamExtractString(traits, 'first_source'), visitParamExtractRaw(traits, 'first_source')), toUInt8(visitParamExtractRaw(traits, 'first_source') = 'null'), event_time_ms, ingest_time_ms, message_id), (toUInt8(visitParamExtractRaw(traits, 'first_source') = 'null'), event_time_ms, message_id, ingest_time_ms)) AS first_value
FROM events
WHERE visitParamHas(traits, 'first_source')
GROUP BY customer_id;

-- evaluation query, run for batches of customers: `batch` is an external
-- table (member_id: a raw customer id, customer_id: the customer it belongs to),
-- {T} the evaluation time and {T_prev} the previous pass's, epoch ms.
-- m_0 is membership; b_* and dt_*/di_* tell when and why it changed.
SELECT
    customer_id,
    toUInt8((has_first_source AND attr_first_source = 'ads')) AS m_0,
    at_first_source,
    am_first_source
FROM
(
    SELECT customer_id, attr_first_source, has_first_source, at_first_source, am_first_source
    FROM (SELECT DISTINCT customer_id FROM batch)
    ANY LEFT JOIN
    (
        SELECT
            customer_id,
            anyIf(first, attribute = 'first_source') AS t_first_source,
            t_first_source.1 AS attr_first_source,
            toUInt8(t_first_source.3 > 0 AND t_first_source.2 = 0) AS has_first_source,
            t_first_source.3 AS at_first_source,
            t_first_source.5 AS am_first_source
        FROM
        (
            SELECT customer_id, attribute, argMaxMerge(last_value) AS last, argMinMerge(first_value) AS first
            FROM
            (
                SELECT customer_id AS member_id, attribute, last_value, first_value
                FROM customer_attributes
                WHERE customer_id IN (SELECT member_id FROM batch)
                  AND attribute IN ('first_source')
            )
            ALL INNER JOIN batch USING member_id
            GROUP BY customer_id, attribute
        )
        GROUP BY customer_id
    ) USING customer_id
)
