-- audience nested_everything: Every operator
-- file:    testdata/compile/nested.yaml
-- version: c0903293f4076a5c
--
-- A customer is a member while the condition below holds. It is evaluated
-- per customer (a user together with the anonymous ids an identify linked to
-- it) as of T, the smallest watermark of the evaluated lanes: every event
-- received before T is loaded, so a window never ends past missing data.

-- condition
(
    (has_plan AND attr_plan IN ('gold', 'silver'))
    OR (has_age AND (isNotNull(toFloat64OrNull(attr_age)) AND toFloat64OrZero(attr_age) >= 30))
)
AND NOT (NOT ((has_country AND (attr_country IN ('US', 'true') OR (isNotNull(toFloat64OrNull(attr_country)) AND toFloat64OrZero(attr_country) IN (1))))))
AND has_email
AND (has_vip AND attr_vip = 'true')
AND (has_score AND (isNotNull(toFloat64OrNull(attr_score)) AND toFloat64OrZero(attr_score) < 2.5))
AND (count_pricing_ever_873dc8 >= 1)
AND (count_purchase_36h_a8e171 >= 1 AND count_purchase_36h_a8e171 <= 3)
AND (count_signup_ever = 0)

-- columns
--   attr_age: trait "age", latest value by event time (ties: greatest message id); has_age: 1 when set and not null
--   attr_country: trait "country", latest value by event time (ties: greatest message id); has_country: 1 when set and not null
--   attr_email: trait "email", latest value by event time (ties: greatest message id); has_email: 1 when set and not null
--   attr_plan: trait "plan", latest value by event time (ties: greatest message id); has_plan: 1 when set and not null
--   attr_score: trait "score", latest value by event time (ties: greatest message id); has_score: 1 when set and not null
--   attr_vip: trait "vip", latest value by event time (ties: greatest message id); has_vip: 1 when set and not null
--   count_pricing_ever_873dc8: number of distinct page "Pricing" messages, ever (event time <= T); signal s873dc8bdea
--   count_purchase_36h_a8e171: number of distinct track "purchase" messages where amount gt 10 and currency equals "USD" with event time in (T - 36h, T]; signal sa8e171b497
--   count_signup_ever: number of distinct track "signup" messages, ever (event time <= T); signal se2046bb951

-- how the inputs are kept: on every insert into events, one view computes
-- every maintained attribute and one every signal (`tideline audiences apply`
-- creates them, and runs these SELECTs once over history for what is new).
-- For this audience they compute:
SELECT
    customer_id,
    'age' AS attribute,
    argMaxState((if(substring(visitParamExtractRaw(traits, 'age'), 1, 1) = '"', visitParamExtractString(traits, 'age'), visitParamExtractRaw(traits, 'age')), toUInt8(visitParamExtractRaw(traits, 'age') = 'null'), event_time_ms, ingest_time_ms, message_id), (event_time_ms, message_id, bitNot(ingest_time_ms))) AS last_value,
    argMinState((if(substring(visitParamExtractRaw(traits, 'age'), 1, 1) = '"', visitParamExtractString(traits, 'age'), visitParamExtractRaw(traits, 'age')), toUInt8(visitParamExtractRaw(traits, 'age') = 'null'), event_time_ms, ingest_time_ms, message_id), (toUInt8(visitParamExtractRaw(traits, 'age') = 'null'), event_time_ms, message_id, ingest_time_ms)) AS first_value
FROM events
WHERE visitParamHas(traits, 'age')
GROUP BY customer_id;

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
    'email' AS attribute,
    argMaxState((if(substring(visitParamExtractRaw(traits, 'email'), 1, 1) = '"', visitParamExtractString(traits, 'email'), visitParamExtractRaw(traits, 'email')), toUInt8(visitParamExtractRaw(traits, 'email') = 'null'), event_time_ms, ingest_time_ms, message_id), (event_time_ms, message_id, bitNot(ingest_time_ms))) AS last_value,
    argMinState((if(substring(visitParamExtractRaw(traits, 'email'), 1, 1) = '"', visitParamExtractString(traits, 'email'), visitParamExtractRaw(traits, 'email')), toUInt8(visitParamExtractRaw(traits, 'email') = 'null'), event_time_ms, ingest_time_ms, message_id), (toUInt8(visitParamExtractRaw(traits, 'email') = 'null'), event_time_ms, message_id, ingest_time_ms)) AS first_value
FROM events
WHERE visitParamHas(traits, 'email')
GROUP BY customer_id;

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
    'score' AS attribute,
    argMaxState((if(substring(visitParamExtractRaw(traits, 'score'), 1, 1) = '"', visitParamExtractString(traits, 'score'), visitParamExtractRaw(traits, 'score')), toUInt8(visitParamExtractRaw(traits, 'score') = 'null'), event_time_ms, ingest_time_ms, message_id), (event_time_ms, message_id, bitNot(ingest_time_ms))) AS last_value,
    argMinState((if(substring(visitParamExtractRaw(traits, 'score'), 1, 1) = '"', visitParamExtractString(traits, 'score'), visitParamExtractRaw(traits, 'score')), toUInt8(visitParamExtractRaw(traits, 'score') = 'null'), event_time_ms, ingest_time_ms, message_id), (toUInt8(visitParamExtractRaw(traits, 'score') = 'null'), event_time_ms, message_id, ingest_time_ms)) AS first_value
FROM events
WHERE visitParamHas(traits, 'score')
GROUP BY customer_id;

SELECT
    customer_id,
    'vip' AS attribute,
    argMaxState((if(substring(visitParamExtractRaw(traits, 'vip'), 1, 1) = '"', visitParamExtractString(traits, 'vip'), visitParamExtractRaw(traits, 'vip')), toUInt8(visitParamExtractRaw(traits, 'vip') = 'null'), event_time_ms, ingest_time_ms, message_id), (event_time_ms, message_id, bitNot(ingest_time_ms))) AS last_value,
    argMinState((if(substring(visitParamExtractRaw(traits, 'vip'), 1, 1) = '"', visitParamExtractString(traits, 'vip'), visitParamExtractRaw(traits, 'vip')), toUInt8(visitParamExtractRaw(traits, 'vip') = 'null'), event_time_ms, ingest_time_ms, message_id), (toUInt8(visitParamExtractRaw(traits, 'vip') = 'null'), event_time_ms, message_id, ingest_time_ms)) AS first_value
FROM events
WHERE visitParamHas(traits, 'vip')
GROUP BY customer_id;

SELECT
    customer_id,
    's873dc8bdea' AS signal,
    toStartOfHour(event_time) AS bucket,
    groupUniqArrayState((event_time_ms, message_id, toFloat64(0))) AS occurrences
FROM events
WHERE type = 'page'
  AND event = 'Pricing'
GROUP BY customer_id, bucket;

SELECT
    customer_id,
    'sa8e171b497' AS signal,
    toStartOfHour(event_time) AS bucket,
    groupUniqArrayState((event_time_ms, message_id, toFloat64(0))) AS occurrences
FROM events
WHERE type = 'track'
  AND event = 'purchase'
  AND ((visitParamHas(properties, 'amount') AND visitParamExtractRaw(properties, 'amount') != 'null') AND (isNotNull(toFloat64OrNull(if(substring(visitParamExtractRaw(properties, 'amount'), 1, 1) = '"', visitParamExtractString(properties, 'amount'), visitParamExtractRaw(properties, 'amount')))) AND toFloat64OrZero(if(substring(visitParamExtractRaw(properties, 'amount'), 1, 1) = '"', visitParamExtractString(properties, 'amount'), visitParamExtractRaw(properties, 'amount'))) > 10))
  AND ((visitParamHas(properties, 'currency') AND visitParamExtractRaw(properties, 'currency') != 'null') AND if(substring(visitParamExtractRaw(properties, 'currency'), 1, 1) = '"', visitParamExtractString(properties, 'currency'), visitParamExtractRaw(properties, 'currency')) = 'USD')
GROUP BY customer_id, bucket;

SELECT
    customer_id,
    'se2046bb951' AS signal,
    toStartOfHour(event_time) AS bucket,
    groupUniqArrayState((event_time_ms, message_id, toFloat64(0))) AS occurrences
FROM events
WHERE type = 'track'
  AND event = 'signup'
GROUP BY customer_id, bucket;

-- evaluation query, run for batches of customers: `batch` is an external
-- table (member_id: a raw customer id, customer_id: the customer it belongs to),
-- {T} the evaluation time and {T_prev} the previous pass's, epoch ms.
-- m_0 is membership; b_* and dt_*/di_* tell when and why it changed.
SELECT
    customer_id,
    toUInt8((
            (has_plan AND attr_plan IN ('gold', 'silver'))
            OR (has_age AND (isNotNull(toFloat64OrNull(attr_age)) AND toFloat64OrZero(attr_age) >= 30))
        )
        AND NOT (NOT ((has_country AND (attr_country IN ('US', 'true') OR (isNotNull(toFloat64OrNull(attr_country)) AND toFloat64OrZero(attr_country) IN (1))))))
        AND has_email
        AND (has_vip AND attr_vip = 'true')
        AND (has_score AND (isNotNull(toFloat64OrNull(attr_score)) AND toFloat64OrZero(attr_score) < 2.5))
        AND (count_pricing_ever_873dc8 >= 1)
        AND (count_purchase_36h_a8e171 >= 1 AND count_purchase_36h_a8e171 <= 3)
        AND (count_signup_ever = 0)) AS m_0,
    at_age,
    am_age,
    at_country,
    am_country,
    at_email,
    am_email,
    at_plan,
    am_plan,
    at_score,
    am_score,
    at_vip,
    am_vip,
    b_count_purchase_36h_a8e171,
    dt_s873dc8bdea,
    di_s873dc8bdea,
    dt_sa8e171b497,
    di_sa8e171b497,
    dt_se2046bb951,
    di_se2046bb951
FROM
(
    SELECT customer_id, attr_age, has_age, at_age, am_age, attr_country, has_country, at_country, am_country, attr_email, has_email, at_email, am_email, attr_plan, has_plan, at_plan, am_plan, attr_score, has_score, at_score, am_score, attr_vip, has_vip, at_vip, am_vip
    FROM (SELECT DISTINCT customer_id FROM batch)
    ANY LEFT JOIN
    (
        SELECT
            customer_id,
            anyIf(last, attribute = 'age') AS t_age,
            t_age.1 AS attr_age,
            toUInt8(t_age.3 > 0 AND t_age.2 = 0) AS has_age,
            t_age.3 AS at_age,
            t_age.5 AS am_age,
            anyIf(last, attribute = 'country') AS t_country,
            t_country.1 AS attr_country,
            toUInt8(t_country.3 > 0 AND t_country.2 = 0) AS has_country,
            t_country.3 AS at_country,
            t_country.5 AS am_country,
            anyIf(last, attribute = 'email') AS t_email,
            t_email.1 AS attr_email,
            toUInt8(t_email.3 > 0 AND t_email.2 = 0) AS has_email,
            t_email.3 AS at_email,
            t_email.5 AS am_email,
            anyIf(last, attribute = 'plan') AS t_plan,
            t_plan.1 AS attr_plan,
            toUInt8(t_plan.3 > 0 AND t_plan.2 = 0) AS has_plan,
            t_plan.3 AS at_plan,
            t_plan.5 AS am_plan,
            anyIf(last, attribute = 'score') AS t_score,
            t_score.1 AS attr_score,
            toUInt8(t_score.3 > 0 AND t_score.2 = 0) AS has_score,
            t_score.3 AS at_score,
            t_score.5 AS am_score,
            anyIf(last, attribute = 'vip') AS t_vip,
            t_vip.1 AS attr_vip,
            toUInt8(t_vip.3 > 0 AND t_vip.2 = 0) AS has_vip,
            t_vip.3 AS at_vip,
            t_vip.5 AS am_vip
        FROM
        (
            SELECT customer_id, attribute, argMaxMerge(last_value) AS last, argMinMerge(first_value) AS first
            FROM
            (
                SELECT customer_id AS member_id, attribute, last_value, first_value
                FROM customer_attributes
                WHERE customer_id IN (SELECT member_id FROM batch)
                  AND attribute IN ('age', 'country', 'email', 'plan', 'score', 'vip')
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
        anyIf(occ, signal = 's873dc8bdea') AS o_s873dc8bdea,
        anyIf(occ, signal = 'sa8e171b497') AS o_sa8e171b497,
        anyIf(occ, signal = 'se2046bb951') AS o_se2046bb951,
        arrayUniq(arrayMap(x -> x.2, arrayFilter(x -> x.1 <= {T}, o_s873dc8bdea))) AS count_pricing_ever_873dc8,
        arrayUniq(arrayMap(x -> x.2, arrayFilter(x -> x.1 > {T} - 129600000 AND x.1 <= {T}, o_sa8e171b497))) AS count_purchase_36h_a8e171,
        arrayUniq(arrayMap(x -> x.2, arrayFilter(x -> x.1 <= {T}, o_se2046bb951))) AS count_signup_ever,
        arrayReduce('min', arrayFilter(t -> t > {T_prev} AND t <= {T}, arrayMap(x -> x.1 + 129600000, o_sa8e171b497))) AS b_count_purchase_36h_a8e171,
        arrayReduce('max', arrayMap(x -> (x.1, x.2), arrayFilter(x -> x.1 > {T_prev} AND x.1 <= {T}, o_s873dc8bdea))) AS d_s873dc8bdea,
        d_s873dc8bdea.1 AS dt_s873dc8bdea,
        d_s873dc8bdea.2 AS di_s873dc8bdea,
        arrayReduce('max', arrayMap(x -> (x.1, x.2), arrayFilter(x -> x.1 > {T_prev} AND x.1 <= {T}, o_sa8e171b497))) AS d_sa8e171b497,
        d_sa8e171b497.1 AS dt_sa8e171b497,
        d_sa8e171b497.2 AS di_sa8e171b497,
        arrayReduce('max', arrayMap(x -> (x.1, x.2), arrayFilter(x -> x.1 > {T_prev} AND x.1 <= {T}, o_se2046bb951))) AS d_se2046bb951,
        d_se2046bb951.1 AS dt_se2046bb951,
        d_se2046bb951.2 AS di_se2046bb951
    FROM
    (
        SELECT customer_id, signal, groupUniqArrayMerge(occurrences) AS occ
        FROM
        (
            SELECT customer_id AS member_id, signal, occurrences
            FROM customer_signals
            WHERE customer_id IN (SELECT member_id FROM batch)
              AND (signal = 's873dc8bdea'
                OR (signal = 'sa8e171b497' AND bucket >= toDateTime(intDiv(least({T}, {T_prev}) - 129600000, 1000) - 3600))
                OR signal = 'se2046bb951')
        )
        ALL INNER JOIN batch USING member_id
        GROUP BY customer_id, signal
    )
    GROUP BY customer_id
) USING customer_id
