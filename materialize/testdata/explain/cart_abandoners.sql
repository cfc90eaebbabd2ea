-- audience cart_abandoners: Cart abandoners (last 24 hours)
--   Added something to the cart in the last day and did not purchase in that
--   day. Enters when the add_to_cart arrives; leaves on a purchase or when the
--   cart add is more than a day old.
-- file:    audiences/cart_abandoners.yaml
-- version: 9224732c71bd0bc4
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
-- table (member_id: a raw customer id, customer_id: the customer it belongs to,
-- linked_ms: when the raw id started to count for it), `times` the moments to
-- evaluate each customer at (t; te for eager attributes), {T_low} the
-- earliest of them, epoch ms. m_0 is membership as of t.
SELECT
    customer_id,
    t,
    toUInt8((count_add_to_cart_1d >= 1)
        AND (count_purchase_1d = 0)) AS m_0
FROM
(
    SELECT
        customer_id,
        t,
        arrayUniq(arrayMap(x -> x.2, arrayFilter(x -> x.4 <= t AND x.1 > t - 86400000, o_sc6bc7ef892))) AS count_add_to_cart_1d,
        arrayUniq(arrayMap(x -> x.2, arrayFilter(x -> x.4 <= t AND x.1 > t - 86400000, o_sc413bdc18e))) AS count_purchase_1d
    FROM
    (
        SELECT
            customer_id,
            arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 = 'sc6bc7ef892', occ)) AS o_sc6bc7ef892,
            arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 = 'sc413bdc18e', occ)) AS o_sc413bdc18e
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
                      AND ((signal = 'sc413bdc18e' AND bucket >= toDateTime(intDiv({T_low} - 86400000, 1000) - 3600))
                        OR (signal = 'sc6bc7ef892' AND bucket >= toDateTime(intDiv({T_low} - 86400000, 1000) - 3600)))
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
