-- audience german_visitors: German visitors (active today)
--   Customers whose country is DE and who viewed a page in the last day.
-- file:    audiences/german_visitors.yaml
-- version: 182c5a2139906858
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
(has_country AND attr_country = 'DE')
AND (count_page_view_1d >= 1)

-- columns
--   attr_country: trait "country", latest value by event time (ties: greatest message id); has_country: 1 when set and not null
--   count_page_view_1d: number of distinct track "page_view" messages with event time in (T - 1d, T]; signal sdd273d73e9

-- how the inputs are kept: on every insert into events, one view computes
-- every maintained attribute and one every signal (`tideline audiences apply`
-- creates them, and runs these SELECTs once over history for what is new).
-- For this audience they compute:
SELECT
    customer_id,
    'country' AS attribute,
    argMaxState((if(substring(visitParamExtractRaw(traits, 'country'), 1, 1) = '"', visitParamExtractString(traits, 'country'), visitParamExtractRaw(traits, 'country')), toUInt8(visitParamExtractRaw(traits, 'country') = 'null'), event_time_ms, ingest_time_ms, message_id), (event_time_ms, message_id, bitNot(ingest_time_ms))) AS last_value,
    argMinState((if(substring(visitParamExtractRaw(traits, 'country'), 1, 1) = '"', visitParamExtractString(traits, 'country'), visitParamExtractRaw(traits, 'country')), toUInt8(visitParamExtractRaw(traits, 'country') = 'null'), event_time_ms, ingest_time_ms, message_id), (toUInt8(visitParamExtractRaw(traits, 'country') = 'null'), event_time_ms, message_id, ingest_time_ms)) AS first_value
FROM events
WHERE visitParamHas(traits, 'country')
GROUP BY customer_id;

SELECT
    customer_id,
    'country' AS attribute,
    groupUniqArrayState((event_time_ms, message_id, if(substring(visitParamExtractRaw(traits, 'country'), 1, 1) = '"', visitParamExtractString(traits, 'country'), visitParamExtractRaw(traits, 'country')), toUInt8(visitParamExtractRaw(traits, 'country') = 'null'))) AS changes
FROM events
WHERE visitParamHas(traits, 'country')
GROUP BY customer_id;

SELECT
    customer_id,
    'sdd273d73e9' AS signal,
    toStartOfHour(event_time) AS bucket,
    groupUniqArrayState((event_time_ms, message_id, toFloat64(0))) AS occurrences
FROM events
WHERE type = 'track'
  AND event = 'page_view'
GROUP BY customer_id, bucket;

-- evaluation query, run for batches of customers: `batch` is an external
-- table (member_id: a raw customer id, customer_id: the customer it belongs to,
-- linked_ms: when the raw id started to count for it), `times` the moments to
-- evaluate each customer at (t; te for eager attributes), {T_low} the
-- earliest of them, epoch ms. m_0 is membership as of t.
SELECT
    customer_id,
    t,
    toUInt8((has_country AND attr_country = 'DE')
        AND (count_page_view_1d >= 1)) AS m_0
FROM
(
    SELECT
        customer_id,
        t,
        arrayReduce('max', arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 <= t, h_country))) AS v_attr_country,
        v_attr_country.3 AS attr_country,
        toUInt8(v_attr_country.1 > 0 AND v_attr_country.4 = 0) AS has_country,
        arrayUniq(arrayMap(x -> x.2, arrayFilter(x -> x.4 <= t AND x.1 > t - 86400000, o_sdd273d73e9))) AS count_page_view_1d
    FROM
    (
        SELECT
            customer_id,
            arrayMap(x -> (x.1, x.2, x.3, x.4, x.5), arrayFilter(x -> x.6 = 'country', hist)) AS h_country,
            arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 = 'sdd273d73e9', occ)) AS o_sdd273d73e9
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
                          AND attribute IN ('country')
                        GROUP BY member_id, attribute
                    ) AS member_attributes
                    ALL INNER JOIN batch USING member_id
                )
                ARRAY JOIN changes AS h
                GROUP BY customer_id
            ) AS attributes USING customer_id
        ) AS with_attributes
        ANY LEFT JOIN
        (
            SELECT customer_id, groupArray((o.1, o.2, o.3, greatest(o.1, linked_ms), signal)) AS occ
            FROM
            (
                SELECT customer_id, linked_ms, signal, occurrences
                FROM
                (
                    SELECT customer_id AS member_id, signal, groupUniqArrayMerge(occurrences) AS occurrences
                    FROM customer_signals
                    WHERE customer_id IN (SELECT member_id FROM batch)
                      AND ((signal = 'sdd273d73e9' AND bucket >= toDateTime(intDiv({T_low} - 86400000, 1000) - 3600)))
                    GROUP BY member_id, signal
                ) AS member_signals
                ALL INNER JOIN batch USING member_id
            )
            ARRAY JOIN occurrences AS o
            GROUP BY customer_id
        ) AS signals USING customer_id
    ) AS inputs
    ALL INNER JOIN times USING customer_id
)
