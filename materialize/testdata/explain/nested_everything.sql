-- audience nested_everything: Every operator
-- file:    testdata/compile/nested.yaml
-- version: c0903293f4076a5c
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
    'age' AS attribute,
    groupUniqArrayState((event_time_ms, message_id, if(substring(visitParamExtractRaw(traits, 'age'), 1, 1) = '"', visitParamExtractString(traits, 'age'), visitParamExtractRaw(traits, 'age')), toUInt8(visitParamExtractRaw(traits, 'age') = 'null'))) AS changes
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
    'country' AS attribute,
    groupUniqArrayState((event_time_ms, message_id, if(substring(visitParamExtractRaw(traits, 'country'), 1, 1) = '"', visitParamExtractString(traits, 'country'), visitParamExtractRaw(traits, 'country')), toUInt8(visitParamExtractRaw(traits, 'country') = 'null'))) AS changes
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
    'email' AS attribute,
    groupUniqArrayState((event_time_ms, message_id, if(substring(visitParamExtractRaw(traits, 'email'), 1, 1) = '"', visitParamExtractString(traits, 'email'), visitParamExtractRaw(traits, 'email')), toUInt8(visitParamExtractRaw(traits, 'email') = 'null'))) AS changes
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
    'plan' AS attribute,
    groupUniqArrayState((event_time_ms, message_id, if(substring(visitParamExtractRaw(traits, 'plan'), 1, 1) = '"', visitParamExtractString(traits, 'plan'), visitParamExtractRaw(traits, 'plan')), toUInt8(visitParamExtractRaw(traits, 'plan') = 'null'))) AS changes
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
    'score' AS attribute,
    groupUniqArrayState((event_time_ms, message_id, if(substring(visitParamExtractRaw(traits, 'score'), 1, 1) = '"', visitParamExtractString(traits, 'score'), visitParamExtractRaw(traits, 'score')), toUInt8(visitParamExtractRaw(traits, 'score') = 'null'))) AS changes
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
    'vip' AS attribute,
    groupUniqArrayState((event_time_ms, message_id, if(substring(visitParamExtractRaw(traits, 'vip'), 1, 1) = '"', visitParamExtractString(traits, 'vip'), visitParamExtractRaw(traits, 'vip')), toUInt8(visitParamExtractRaw(traits, 'vip') = 'null'))) AS changes
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
-- table (member_id: a raw customer id, customer_id: the customer it belongs to,
-- linked_ms: when the raw id started to count for it), `times` the moments to
-- evaluate each customer at (t; te for eager attributes), {T_low} the
-- earliest of them, epoch ms. m_0 is membership as of t.
SELECT
    customer_id,
    t,
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
        AND (count_signup_ever = 0)) AS m_0
FROM
(
    SELECT
        customer_id,
        t,
        arrayReduce('max', arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 <= t, h_age))) AS v_attr_age,
        v_attr_age.3 AS attr_age,
        toUInt8(v_attr_age.1 > 0 AND v_attr_age.4 = 0) AS has_age,
        arrayReduce('max', arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 <= t, h_country))) AS v_attr_country,
        v_attr_country.3 AS attr_country,
        toUInt8(v_attr_country.1 > 0 AND v_attr_country.4 = 0) AS has_country,
        arrayReduce('max', arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 <= t, h_email))) AS v_attr_email,
        v_attr_email.3 AS attr_email,
        toUInt8(v_attr_email.1 > 0 AND v_attr_email.4 = 0) AS has_email,
        arrayReduce('max', arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 <= t, h_plan))) AS v_attr_plan,
        v_attr_plan.3 AS attr_plan,
        toUInt8(v_attr_plan.1 > 0 AND v_attr_plan.4 = 0) AS has_plan,
        arrayReduce('max', arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 <= t, h_score))) AS v_attr_score,
        v_attr_score.3 AS attr_score,
        toUInt8(v_attr_score.1 > 0 AND v_attr_score.4 = 0) AS has_score,
        arrayReduce('max', arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 <= t, h_vip))) AS v_attr_vip,
        v_attr_vip.3 AS attr_vip,
        toUInt8(v_attr_vip.1 > 0 AND v_attr_vip.4 = 0) AS has_vip,
        arrayUniq(arrayMap(x -> x.2, arrayFilter(x -> x.4 <= t, o_s873dc8bdea))) AS count_pricing_ever_873dc8,
        arrayUniq(arrayMap(x -> x.2, arrayFilter(x -> x.4 <= t AND x.1 > t - 129600000, o_sa8e171b497))) AS count_purchase_36h_a8e171,
        arrayUniq(arrayMap(x -> x.2, arrayFilter(x -> x.4 <= t, o_se2046bb951))) AS count_signup_ever
    FROM
    (
        SELECT
            customer_id,
            arrayMap(x -> (x.1, x.2, x.3, x.4, x.5), arrayFilter(x -> x.6 = 'age', hist)) AS h_age,
            arrayMap(x -> (x.1, x.2, x.3, x.4, x.5), arrayFilter(x -> x.6 = 'country', hist)) AS h_country,
            arrayMap(x -> (x.1, x.2, x.3, x.4, x.5), arrayFilter(x -> x.6 = 'email', hist)) AS h_email,
            arrayMap(x -> (x.1, x.2, x.3, x.4, x.5), arrayFilter(x -> x.6 = 'plan', hist)) AS h_plan,
            arrayMap(x -> (x.1, x.2, x.3, x.4, x.5), arrayFilter(x -> x.6 = 'score', hist)) AS h_score,
            arrayMap(x -> (x.1, x.2, x.3, x.4, x.5), arrayFilter(x -> x.6 = 'vip', hist)) AS h_vip,
            arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 = 's873dc8bdea', occ)) AS o_s873dc8bdea,
            arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 = 'sa8e171b497', occ)) AS o_sa8e171b497,
            arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 = 'se2046bb951', occ)) AS o_se2046bb951
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
                          AND attribute IN ('age', 'country', 'email', 'plan', 'score', 'vip')
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
                      AND (signal = 's873dc8bdea'
                        OR (signal = 'sa8e171b497' AND bucket >= toDateTime(intDiv({T_low} - 129600000, 1000) - 3600))
                        OR signal = 'se2046bb951')
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
