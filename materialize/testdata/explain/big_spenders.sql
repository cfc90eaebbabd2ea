-- audience big_spenders: Big spenders (500+ in 30 days)
--   Customers whose purchases add up to at least 500 over the last 30 days.
-- file:    audiences/big_spenders.yaml
-- version: 2a176aed6d90bc09
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
-- table (member_id: a raw customer id, customer_id: the customer it belongs to,
-- linked_ms: when the raw id started to count for it), `times` the moments to
-- evaluate each customer at (t; te for eager attributes), {T_low} the
-- earliest of them, epoch ms. m_0 is membership as of t.
SELECT
    customer_id,
    t,
    toUInt8((sum_purchase_amount_30d >= 500)) AS m_0
FROM
(
    SELECT
        customer_id,
        t,
        arraySum(arrayMap(x -> x.3, arrayFilter(x -> x.4 <= t AND x.1 > t - 2592000000, o_sc8e9950396))) AS sum_purchase_amount_30d
    FROM
    (
        SELECT
            customer_id,
            arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 = 'sc8e9950396', occ)) AS o_sc8e9950396
        FROM
        (
            SELECT customer_id
            FROM
            (
                SELECT DISTINCT customer_id FROM batch
            ) AS customers
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
                      AND ((signal = 'sc8e9950396' AND bucket >= toDateTime(intDiv({T_low} - 2592000000, 1000) - 3600)))
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
