-- audience quoting: It's quoted
-- file:    testdata/compile/quoting.yaml
-- version: d7433ceb063aeb80
--
-- A customer is a member while the condition below holds. It is evaluated
-- per customer (a user together with the anonymous ids an identify linked to
-- it) as of T, the smallest watermark of the evaluated lanes: every event
-- received before T is loaded, so a window never ends past missing data.

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
    's59f9237e25' AS signal,
    toStartOfHour(event_time) AS bucket,
    groupUniqArrayState((event_time_ms, message_id, toFloat64OrZero(if(substring(visitParamExtractRaw(properties, 'total'), 1, 1) = '"', visitParamExtractString(properties, 'total'), visitParamExtractRaw(properties, 'total'))))) AS occurrences
FROM events
WHERE type = 'track'
  AND event = 'Order Completed (v2)'
  AND NOT (((visitParamHas(properties, 'coupon') AND visitParamExtractRaw(properties, 'coupon') != 'null') AND if(substring(visitParamExtractRaw(properties, 'coupon'), 1, 1) = '"', visitParamExtractString(properties, 'coupon'), visitParamExtractRaw(properties, 'coupon')) = '50% off \'today\''))
GROUP BY customer_id, bucket;

-- evaluation query, run for batches of customers: `batch` is an external
-- table (member_id: a raw customer id, customer_id: the customer it belongs to),
-- {T} the evaluation time and {T_prev} the previous pass's, epoch ms.
-- m_0 is membership; b_* and dt_*/di_* tell when and why it changed.
SELECT
    customer_id,
    toUInt8((has_nickname AND attr_nickname = 'O\'Brien \\ \'); DROP TABLE events; --')
        OR (sum_order_completed_v2_total_90m_59f923 >= 99.5)) AS m_0,
    at_nickname,
    am_nickname,
    b_sum_order_completed_v2_total_90m_59f923,
    dt_s59f9237e25,
    di_s59f9237e25
FROM
(
    SELECT customer_id, attr_nickname, has_nickname, at_nickname, am_nickname
    FROM (SELECT DISTINCT customer_id FROM batch)
    ANY LEFT JOIN
    (
        SELECT
            customer_id,
            anyIf(last, attribute = 'nickname') AS t_nickname,
            t_nickname.1 AS attr_nickname,
            toUInt8(t_nickname.3 > 0 AND t_nickname.2 = 0) AS has_nickname,
            t_nickname.3 AS at_nickname,
            t_nickname.5 AS am_nickname
        FROM
        (
            SELECT customer_id, attribute, argMaxMerge(last_value) AS last, argMinMerge(first_value) AS first
            FROM
            (
                SELECT customer_id AS member_id, attribute, last_value, first_value
                FROM customer_attributes
                WHERE customer_id IN (SELECT member_id FROM batch)
                  AND attribute IN ('nickname')
            )
            ALL INNER JOIN batch USING member_id
            GROUP BY customer_id, attribute
        )
        GROUP BY customer_id
    ) USING customer_id
)
ANY LEFT JOIN
(
    SELECT
        customer_id,
        anyIf(occ, signal = 's59f9237e25') AS o_s59f9237e25,
        arraySum(arrayMap(x -> x.3, arrayFilter(x -> x.1 > {T} - 5400000 AND x.1 <= {T}, o_s59f9237e25))) AS sum_order_completed_v2_total_90m_59f923,
        arrayReduce('min', arrayFilter(t -> t > {T_prev} AND t <= {T}, arrayMap(x -> x.1 + 5400000, o_s59f9237e25))) AS b_sum_order_completed_v2_total_90m_59f923,
        arrayReduce('max', arrayMap(x -> (x.1, x.2), arrayFilter(x -> x.1 > {T_prev} AND x.1 <= {T}, o_s59f9237e25))) AS d_s59f9237e25,
        d_s59f9237e25.1 AS dt_s59f9237e25,
        d_s59f9237e25.2 AS di_s59f9237e25
    FROM
    (
        SELECT customer_id, signal, groupUniqArrayMerge(occurrences) AS occ
        FROM
        (
            SELECT customer_id AS member_id, signal, occurrences
            FROM customer_signals
            WHERE customer_id IN (SELECT member_id FROM batch)
              AND ((signal = 's59f9237e25' AND bucket >= toDateTime(intDiv(least({T}, {T_prev}) - 5400000, 1000) - 3600)))
        )
        ALL INNER JOIN batch USING member_id
        GROUP BY customer_id, signal
    )
    GROUP BY customer_id
) USING customer_id
