-- audience german_visitors: German visitors (active today)
--   Customers whose country is DE and who viewed a page in the last day.
-- file:    audiences/german_visitors.yaml
-- version: 182c5a2139906858
--
-- A customer is a member while the condition below holds. It is evaluated
-- per customer (a user together with the anonymous ids an identify linked to
-- it) as of T, the smallest watermark of the evaluated lanes: every event
-- received before T is loaded, so a window never ends past missing data.

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
    'sdd273d73e9' AS signal,
    toStartOfHour(event_time) AS bucket,
    groupUniqArrayState((event_time_ms, message_id, toFloat64(0))) AS occurrences
FROM events
WHERE type = 'track'
  AND event = 'page_view'
GROUP BY customer_id, bucket;

-- evaluation query, run for batches of customers: `batch` is an external
-- table (member_id: a raw customer id, customer_id: the customer it belongs to),
-- {T} the evaluation time and {T_prev} the previous pass's, epoch ms.
-- m_0 is membership; b_* and dt_*/di_* tell when and why it changed.
SELECT
    customer_id,
    toUInt8((has_country AND attr_country = 'DE')
        AND (count_page_view_1d >= 1)) AS m_0,
    at_country,
    am_country,
    b_count_page_view_1d,
    dt_sdd273d73e9,
    di_sdd273d73e9
FROM
(
    SELECT customer_id, attr_country, has_country, at_country, am_country
    FROM (SELECT DISTINCT customer_id FROM batch)
    ANY LEFT JOIN
    (
        SELECT
            customer_id,
            anyIf(last, attribute = 'country') AS t_country,
            t_country.1 AS attr_country,
            toUInt8(t_country.3 > 0 AND t_country.2 = 0) AS has_country,
            t_country.3 AS at_country,
            t_country.5 AS am_country
        FROM
        (
            SELECT customer_id, attribute, argMaxMerge(last_value) AS last, argMinMerge(first_value) AS first
            FROM
            (
                SELECT customer_id AS member_id, attribute, last_value, first_value
                FROM customer_attributes
                WHERE customer_id IN (SELECT member_id FROM batch)
                  AND attribute IN ('country')
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
        anyIf(occ, signal = 'sdd273d73e9') AS o_sdd273d73e9,
        arrayUniq(arrayMap(x -> x.2, arrayFilter(x -> x.1 > {T} - 86400000 AND x.1 <= {T}, o_sdd273d73e9))) AS count_page_view_1d,
        arrayReduce('min', arrayFilter(t -> t > {T_prev} AND t <= {T}, arrayMap(x -> x.1 + 86400000, o_sdd273d73e9))) AS b_count_page_view_1d,
        arrayReduce('max', arrayMap(x -> (x.1, x.2), arrayFilter(x -> x.1 > {T_prev} AND x.1 <= {T}, o_sdd273d73e9))) AS d_sdd273d73e9,
        d_sdd273d73e9.1 AS dt_sdd273d73e9,
        d_sdd273d73e9.2 AS di_sdd273d73e9
    FROM
    (
        SELECT customer_id, signal, groupUniqArrayMerge(occurrences) AS occ
        FROM
        (
            SELECT customer_id AS member_id, signal, occurrences
            FROM customer_signals
            WHERE customer_id IN (SELECT member_id FROM batch)
              AND ((signal = 'sdd273d73e9' AND bucket >= toDateTime(intDiv(least({T}, {T_prev}) - 86400000, 1000) - 3600)))
        )
        ALL INNER JOIN batch USING member_id
        GROUP BY customer_id, signal
    )
    GROUP BY customer_id
) USING customer_id
