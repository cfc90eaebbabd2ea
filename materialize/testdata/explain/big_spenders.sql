-- audience big_spenders: Big spenders (500+ in 30 days)
--   Customers whose purchases add up to at least 500 over the last 30 days.
-- file:    audiences/big_spenders.yaml
-- version: 2a176aed6d90bc09
--
-- A customer is a member while the condition below holds. It is evaluated
-- per customer (a user together with the anonymous ids an identify linked to
-- it) as of T, the smallest watermark of the evaluated lanes: every event
-- received before T is loaded, so a window never ends past missing data.

-- condition
(sum_purchase_amount_30d >= 500)

-- columns
--   sum_purchase_amount_30d: sum of property "amount" over distinct track "purchase" messages with event time in (T - 30d, T]; signal sc8e9950396

-- how the inputs are kept: on every insert into events, one view computes
-- every maintained attribute and one every signal (`tideline audiences apply`
-- creates them, and runs these SELECTs once over history for what is new).
-- For this audience they compute:
SELECT
    customer_id,
    'sc8e9950396' AS signal,
    toStartOfHour(event_time) AS bucket,
    groupUniqArrayState((event_time_ms, message_id, toFloat64OrZero(if(substring(visitParamExtractRaw(properties, 'amount'), 1, 1) = '"', visitParamExtractString(properties, 'amount'), visitParamExtractRaw(properties, 'amount'))))) AS occurrences
FROM events
WHERE type = 'track'
  AND event = 'purchase'
GROUP BY customer_id, bucket;

-- evaluation query, run for batches of customers: `batch` is an external
-- table (member_id: a raw customer id, customer_id: the customer it belongs to),
-- {T} the evaluation time and {T_prev} the previous pass's, epoch ms.
-- m_0 is membership; b_* and dt_*/di_* tell when and why it changed.
SELECT
    customer_id,
    toUInt8((sum_purchase_amount_30d >= 500)) AS m_0,
    b_sum_purchase_amount_30d,
    dt_sc8e9950396,
    di_sc8e9950396
FROM
(
    SELECT DISTINCT customer_id FROM batch
)
ANY LEFT JOIN
(
    SELECT
        customer_id,
        anyIf(occ, signal = 'sc8e9950396') AS o_sc8e9950396,
        arraySum(arrayMap(x -> x.3, arrayFilter(x -> x.1 > {T} - 2592000000 AND x.1 <= {T}, o_sc8e9950396))) AS sum_purchase_amount_30d,
        arrayReduce('min', arrayFilter(t -> t > {T_prev} AND t <= {T}, arrayMap(x -> x.1 + 2592000000, o_sc8e9950396))) AS b_sum_purchase_amount_30d,
        arrayReduce('max', arrayMap(x -> (x.1, x.2), arrayFilter(x -> x.1 > {T_prev} AND x.1 <= {T}, o_sc8e9950396))) AS d_sc8e9950396,
        d_sc8e9950396.1 AS dt_sc8e9950396,
        d_sc8e9950396.2 AS di_sc8e9950396
    FROM
    (
        SELECT customer_id, signal, groupUniqArrayMerge(occurrences) AS occ
        FROM
        (
            SELECT customer_id AS member_id, signal, occurrences
            FROM customer_signals
            WHERE customer_id IN (SELECT member_id FROM batch)
              AND ((signal = 'sc8e9950396' AND bucket >= toDateTime(intDiv(least({T}, {T_prev}) - 2592000000, 1000) - 3600)))
        )
        ALL INNER JOIN batch USING member_id
        GROUP BY customer_id, signal
    )
    GROUP BY customer_id
) USING customer_id
