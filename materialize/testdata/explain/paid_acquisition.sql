-- audience paid_acquisition: Acquired through ads
-- file:    testdata/compile/set_once.yaml
-- version: 65d8ee522ee658f4
--
-- A customer is a member while the condition below holds. It is evaluated
-- per customer (a user together with the anonymous ids an identify linked to
-- it) on the inputs visible at a moment: attribute values and event
-- occurrences with event time up to it.
--
-- completeness
--   lanes:        derived: the evaluated lanes that have carried its inputs (input_lanes; `tideline audiences list` shows them)
--   attributes:   watermark
--   late data:    either: late data can change it either way; entries and exits wait
--   Decisions late data could falsify are made as of the smallest watermark
--   of its lanes; the others as of the freshest lane watermark.
--   A qualification is dated by the moment the condition became true and
--   stayed true, with the message that made it so.

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

SELECT
    customer_id,
    'first_source' AS attribute,
    groupUniqArrayState((event_time_ms, message_id, if(substring(visitParamExtractRaw(traits, 'first_source'), 1, 1) = '"', visitParamExtractString(traits, 'first_source'), visitParamExtractRaw(traits, 'first_source')), toUInt8(visitParamExtractRaw(traits, 'first_source') = 'null'))) AS changes
FROM events
WHERE visitParamHas(traits, 'first_source')
GROUP BY customer_id;

-- evaluation query, run for batches of customers: `batch` is an external
-- table (member_id: a raw customer id, customer_id: the customer it belongs to,
-- linked_ms: when the raw id started to count for it), `times` the moments to
-- evaluate each customer at (t; te for eager attributes), {T_low} the
-- earliest of them, epoch ms. m_0 is membership as of t.
SELECT
    customer_id,
    t,
    toUInt8((has_first_source AND attr_first_source = 'ads')) AS m_0
FROM
(
    SELECT
        customer_id,
        t,
        arrayReduce('min', arrayMap(x -> (x.4, x.1, x.2, x.3), arrayFilter(x -> x.5 <= t, h_first_source))) AS v_attr_first_source_k,
        (v_attr_first_source_k.2, v_attr_first_source_k.3, v_attr_first_source_k.4, v_attr_first_source_k.1) AS v_attr_first_source,
        v_attr_first_source.3 AS attr_first_source,
        toUInt8(v_attr_first_source.1 > 0 AND v_attr_first_source.4 = 0) AS has_first_source
    FROM
    (
        SELECT
            customer_id,
            arrayMap(x -> (x.1, x.2, x.3, x.4, x.5), arrayFilter(x -> x.6 = 'first_source', hist)) AS h_first_source
        FROM
        (
            SELECT customer_id, hist
            FROM
            (
                SELECT DISTINCT customer_id FROM batch
            ) AS customers
            ANY LEFT JOIN
            (
                SELECT customer_id, groupArray((h.1, h.2, h.3, h.4, greatest(h.1, linked_ms), attribute)) AS hist
                FROM
                (
                    SELECT customer_id, linked_ms, attribute, changes
                    FROM
                    (
                        SELECT customer_id AS member_id, attribute, groupUniqArrayMerge(changes) AS changes
                        FROM customer_attribute_history
                        WHERE customer_id IN (SELECT member_id FROM batch)
                          AND attribute IN ('first_source')
                        GROUP BY member_id, attribute
                    ) AS member_attributes
                    ALL INNER JOIN batch USING member_id
                )
                ARRAY JOIN changes AS h
                GROUP BY customer_id
            ) AS attributes USING customer_id
        ) AS with_attributes
    ) AS inputs
    ALL INNER JOIN times USING customer_id
)
