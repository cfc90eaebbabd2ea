-- audience quoting: It's quoted
-- file:    testdata/compile/quoting.yaml
-- version: d7433ceb063aeb80
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
(has_nickname AND attr_nickname = 'O\'Brien \\ \'); DROP TABLE events; --')
OR (sum_order_completed_v2_total_90m_59f923 >= 99.5)

-- columns
--   attr_nickname: trait "nickname", latest value by event time (ties: greatest message id); has_nickname: 1 when set and not null
--   sum_order_completed_v2_total_90m_59f923: sum of property "total" over distinct track "Order Completed (v2)" messages where coupon not_equals "50% off 'today'" with event time in (T - 90m, T]; signal s59f9237e25

-- how the inputs are kept: on every insert into events, one view computes
-- every maintained attribute and one every signal (`tideline audiences apply`
-- creates them, and runs these SELECTs once over history for what is new).
-- For this audience they compute:
SELECT
    customer_id,
    'nickname' AS attribute,
    argMaxState((if(substring(visitParamExtractRaw(traits, 'nickname'), 1, 1) = '"', visitParamExtractString(traits, 'nickname'), visitParamExtractRaw(traits, 'nickname')), toUInt8(visitParamExtractRaw(traits, 'nickname') = 'null'), event_time_ms, ingest_time_ms, message_id), (event_time_ms, message_id, bitNot(ingest_time_ms))) AS last_value,
    argMinState((if(substring(visitParamExtractRaw(traits, 'nickname'), 1, 1) = '"', visitParamExtractString(traits, 'nickname'), visitParamExtractRaw(traits, 'nickname')), toUInt8(visitParamExtractRaw(traits, 'nickname') = 'null'), event_time_ms, ingest_time_ms, message_id), (toUInt8(visitParamExtractRaw(traits, 'nickname') = 'null'), event_time_ms, message_id, ingest_time_ms)) AS first_value
FROM events
WHERE visitParamHas(traits, 'nickname')
GROUP BY customer_id;

SELECT
    customer_id,
    'nickname' AS attribute,
    groupUniqArrayState((event_time_ms, message_id, if(substring(visitParamExtractRaw(traits, 'nickname'), 1, 1) = '"', visitParamExtractString(traits, 'nickname'), visitParamExtractRaw(traits, 'nickname')), toUInt8(visitParamExtractRaw(traits, 'nickname') = 'null'))) AS changes
FROM events
WHERE visitParamHas(traits, 'nickname')
GROUP BY customer_id;

SELECT
    customer_id,
    's59f9237e25' AS signal,
    toStartOfHour(event_time) AS bucket,
    groupUniqArrayState((event_time_ms, message_id, toFloat64OrZero(if(substring(visitParamExtractRaw(properties, 'total'), 1, 1) = '"', visitParamExtractString(properties, 'total'), visitParamExtractRaw(properties, 'total'))))) AS occurrences
FROM events
WHERE type = 'track'
  AND event = 'Order Completed (v2)'
  AND NOT (((visitParamHas(properties, 'coupon') AND visitParamExtractRaw(properties, 'coupon') != 'null') AND if(substring(visitParamExtractRaw(properties, 'coupon'), 1, 1) = '"', visitParamExtractString(properties, 'coupon'), visitParamExtractRaw(properties, 'coupon')) = '50% off \'today\''))
GROUP BY customer_id, bucket;

-- evaluation query, run for batches of customers: `batch` is an external
-- table (member_id: a raw customer id, customer_id: the customer it belongs to,
-- linked_ms: when the raw id started to count for it), `times` the moments to
-- evaluate each customer at (t; te for eager attributes), {T_low} the
-- earliest of them, epoch ms. m_0 is membership as of t.
SELECT
    customer_id,
    t,
    toUInt8((has_nickname AND attr_nickname = 'O\'Brien \\ \'); DROP TABLE events; --')
        OR (sum_order_completed_v2_total_90m_59f923 >= 99.5)) AS m_0
FROM
(
    SELECT
        customer_id,
        t,
        arrayReduce('max', arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 <= t, h_nickname))) AS v_attr_nickname,
        v_attr_nickname.3 AS attr_nickname,
        toUInt8(v_attr_nickname.1 > 0 AND v_attr_nickname.4 = 0) AS has_nickname,
        arraySum(arrayMap(x -> x.3, arrayFilter(x -> x.4 <= t AND x.1 > t - 5400000, o_s59f9237e25))) AS sum_order_completed_v2_total_90m_59f923
    FROM
    (
        SELECT
            customer_id,
            arrayMap(x -> (x.1, x.2, x.3, x.4, x.5), arrayFilter(x -> x.6 = 'nickname', hist)) AS h_nickname,
            arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 = 's59f9237e25', occ)) AS o_s59f9237e25
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
                          AND attribute IN ('nickname')
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
                      AND ((signal = 's59f9237e25' AND bucket >= toDateTime(intDiv({T_low} - 5400000, 1000) - 3600)))
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
