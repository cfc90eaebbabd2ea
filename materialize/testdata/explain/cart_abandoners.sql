-- audience cart_abandoners: Cart abandoners (last 24 hours)
--   Added something to the cart in the last day and did not purchase in that
--   day. Enters when the add_to_cart arrives; leaves on a purchase or when the
--   cart add is more than a day old.
-- file:    audiences/cart_abandoners.yaml
-- version: 9224732c71bd0bc4
--
-- A customer is a member while the condition below holds. It is evaluated
-- per customer (a user together with the anonymous ids an identify linked to
-- it) as of T, the smallest watermark of the evaluated lanes: every event
-- received before T is loaded, so a window never ends past missing data.

-- condition
(count_add_to_cart_1d >= 1)
AND (count_purchase_1d = 0)

-- columns
--   count_add_to_cart_1d: number of distinct track "add_to_cart" messages with event time in (T - 1d, T]; signal sc6bc7ef892
--   count_purchase_1d: number of distinct track "purchase" messages with event time in (T - 1d, T]; signal sc413bdc18e

-- how the inputs are kept: on every insert into events, one view computes
-- every maintained attribute and one every signal (`tideline audiences apply`
-- creates them, and runs these SELECTs once over history for what is new).
-- For this audience they compute:
SELECT
    customer_id,
    'sc6bc7ef892' AS signal,
    toStartOfHour(event_time) AS bucket,
    groupUniqArrayState((event_time_ms, message_id, toFloat64(0))) AS occurrences
FROM events
WHERE type = 'track'
  AND event = 'add_to_cart'
GROUP BY customer_id, bucket;

SELECT
    customer_id,
    'sc413bdc18e' AS signal,
    toStartOfHour(event_time) AS bucket,
    groupUniqArrayState((event_time_ms, message_id, toFloat64(0))) AS occurrences
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
    toUInt8((count_add_to_cart_1d >= 1)
        AND (count_purchase_1d = 0)) AS m_0,
    b_count_add_to_cart_1d,
    b_count_purchase_1d,
    dt_sc6bc7ef892,
    di_sc6bc7ef892,
    dt_sc413bdc18e,
    di_sc413bdc18e
FROM
(
    SELECT DISTINCT customer_id FROM batch
)
ANY LEFT JOIN
(
    SELECT
        customer_id,
        anyIf(occ, signal = 'sc6bc7ef892') AS o_sc6bc7ef892,
        anyIf(occ, signal = 'sc413bdc18e') AS o_sc413bdc18e,
        arrayUniq(arrayMap(x -> x.2, arrayFilter(x -> x.1 > {T} - 86400000 AND x.1 <= {T}, o_sc6bc7ef892))) AS count_add_to_cart_1d,
        arrayUniq(arrayMap(x -> x.2, arrayFilter(x -> x.1 > {T} - 86400000 AND x.1 <= {T}, o_sc413bdc18e))) AS count_purchase_1d,
        arrayReduce('min', arrayFilter(t -> t > {T_prev} AND t <= {T}, arrayMap(x -> x.1 + 86400000, o_sc6bc7ef892))) AS b_count_add_to_cart_1d,
        arrayReduce('min', arrayFilter(t -> t > {T_prev} AND t <= {T}, arrayMap(x -> x.1 + 86400000, o_sc413bdc18e))) AS b_count_purchase_1d,
        arrayReduce('max', arrayMap(x -> (x.1, x.2), arrayFilter(x -> x.1 > {T_prev} AND x.1 <= {T}, o_sc6bc7ef892))) AS d_sc6bc7ef892,
        d_sc6bc7ef892.1 AS dt_sc6bc7ef892,
        d_sc6bc7ef892.2 AS di_sc6bc7ef892,
        arrayReduce('max', arrayMap(x -> (x.1, x.2), arrayFilter(x -> x.1 > {T_prev} AND x.1 <= {T}, o_sc413bdc18e))) AS d_sc413bdc18e,
        d_sc413bdc18e.1 AS dt_sc413bdc18e,
        d_sc413bdc18e.2 AS di_sc413bdc18e
    FROM
    (
        SELECT customer_id, signal, groupUniqArrayMerge(occurrences) AS occ
        FROM
        (
            SELECT customer_id AS member_id, signal, occurrences
            FROM customer_signals
            WHERE customer_id IN (SELECT member_id FROM batch)
              AND ((signal = 'sc413bdc18e' AND bucket >= toDateTime(intDiv(least({T}, {T_prev}) - 86400000, 1000) - 3600))
                OR (signal = 'sc6bc7ef892' AND bucket >= toDateTime(intDiv(least({T}, {T_prev}) - 86400000, 1000) - 3600)))
        )
        ALL INNER JOIN batch USING member_id
        GROUP BY customer_id, signal
    )
    GROUP BY customer_id
) USING customer_id
