-- audience gold_repeat_buyers: Gold plan, 2+ purchases in 7 days
--   Customers on the gold plan with at least two purchases in the last seven
--   days of event time. Leaves when the plan changes or the second-latest
--   purchase slides out of the window.
-- file:    audiences/gold_repeat_buyers.yaml
-- version: d35af8842e6d7893
--
-- A customer is a member while the condition below holds. It is evaluated
-- per customer (a user together with the anonymous ids an identify linked to
-- it) as of T, the smallest watermark of the evaluated lanes: every event
-- received before T is loaded, so a window never ends past missing data.

-- condition
(has_plan AND attr_plan = 'gold')
AND (count_purchase_7d >= 2)

-- columns
--   attr_plan: trait "plan", latest value by event time (ties: greatest message id); has_plan: 1 when set and not null
--   count_purchase_7d: number of distinct track "purchase" messages with event time in (T - 7d, T]; signal sc413bdc18e

-- how the inputs are kept: on every insert into events, one view computes
-- every maintained attribute and one every signal (`tideline audiences apply`
-- creates them, and runs these SELECTs once over history for what is new).
-- For this audience they compute:
SELECT
    customer_id,
    'plan' AS attribute,
    argMaxState((if(substring(visitParamExtractRaw(traits, 'plan'), 1, 1) = '"', visitParamExtractString(traits, 'plan'), visitParamExtractRaw(traits, 'plan')), toUInt8(visitParamExtractRaw(traits, 'plan') = 'null'), event_time_ms, ingest_time_ms, message_id), (event_time_ms, message_id, bitNot(ingest_time_ms))) AS last_value,
    argMinState((if(substring(visitParamExtractRaw(traits, 'plan'), 1, 1) = '"', visitParamExtractString(traits, 'plan'), visitParamExtractRaw(traits, 'plan')), toUInt8(visitParamExtractRaw(traits, 'plan') = 'null'), event_time_ms, ingest_time_ms, message_id), (toUInt8(visitParamExtractRaw(traits, 'plan') = 'null'), event_time_ms, message_id, ingest_time_ms)) AS first_value
FROM events
WHERE visitParamHas(traits, 'plan')
GROUP BY customer_id;

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
    toUInt8((has_plan AND attr_plan = 'gold')
        AND (count_purchase_7d >= 2)) AS m_0,
    at_plan,
    am_plan,
    b_count_purchase_7d,
    dt_sc413bdc18e,
    di_sc413bdc18e
FROM
(
    SELECT customer_id, attr_plan, has_plan, at_plan, am_plan
    FROM (SELECT DISTINCT customer_id FROM batch)
    ANY LEFT JOIN
    (
        SELECT
            customer_id,
            anyIf(last, attribute = 'plan') AS t_plan,
            t_plan.1 AS attr_plan,
            toUInt8(t_plan.3 > 0 AND t_plan.2 = 0) AS has_plan,
            t_plan.3 AS at_plan,
            t_plan.5 AS am_plan
        FROM
        (
            SELECT customer_id, attribute, argMaxMerge(last_value) AS last, argMinMerge(first_value) AS first
            FROM
            (
                SELECT customer_id AS member_id, attribute, last_value, first_value
                FROM customer_attributes
                WHERE customer_id IN (SELECT member_id FROM batch)
                  AND attribute IN ('plan')
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
        anyIf(occ, signal = 'sc413bdc18e') AS o_sc413bdc18e,
        arrayUniq(arrayMap(x -> x.2, arrayFilter(x -> x.1 > {T} - 604800000 AND x.1 <= {T}, o_sc413bdc18e))) AS count_purchase_7d,
        arrayReduce('min', arrayFilter(t -> t > {T_prev} AND t <= {T}, arrayMap(x -> x.1 + 604800000, o_sc413bdc18e))) AS b_count_purchase_7d,
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
              AND ((signal = 'sc413bdc18e' AND bucket >= toDateTime(intDiv(least({T}, {T_prev}) - 604800000, 1000) - 3600)))
        )
        ALL INNER JOIN batch USING member_id
        GROUP BY customer_id, signal
    )
    GROUP BY customer_id
) USING customer_id
