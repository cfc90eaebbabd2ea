-- audience account_members: Enterprise account members on mobile
-- file:    testdata/compile/groups.yaml
-- version: 0dc070fc727e4946
--
-- A customer is a member while the condition below holds. It is evaluated
-- per customer (a user together with the anonymous ids an identify linked to
-- it) on the inputs visible at a moment: attribute values and event
-- occurrences with event time up to it.
--
-- completeness
--   lanes:        derived: the evaluated lanes that have carried its inputs (input_lanes; `tideline audiences list` shows them)
--   attributes:   watermark
--   late data:    rising: late events can only make it true; entries are decided on the data present, exits wait
--   Decisions late data could falsify are made as of the smallest watermark
--   of its lanes; the others as of the freshest lane watermark.
--   A qualification is dated by the moment the condition became true and
--   stayed true, with the message that made it so.

-- condition
(
    (count_group_acme_ever_3f4122 >= 1)
    OR (count_group_30d_aebc46 >= 1)
    OR (count_purchase_ever_7b9214 >= 1)
)
AND (count_checkout_7d_9393ea >= 1)

-- columns
--   count_group_acme_ever_3f4122: number of distinct group messages of group "acme", ever (event time <= T); signal s3f4122113a
--   count_group_30d_aebc46: number of distinct group messages of any group where plan equals "enterprise" with event time in (T - 30d, T]; signal saebc46ec4a
--   count_purchase_ever_7b9214: number of distinct track "purchase" messages where context.campaign.source equals "newsletter" and context.locale in ["de-DE", "de-AT"], ever (event time <= T); signal s7b92145160
--   count_checkout_7d_9393ea: number of distinct screen "Checkout" messages with event time in (T - 7d, T]; signal s9393ea3936

-- how the inputs are kept: on every insert into events, one view computes
-- every maintained attribute and one every signal (`tideline audiences apply`
-- creates them, and runs these SELECTs once over history for what is new).
-- For this audience they compute:
SELECT
    customer_id,
    's3f4122113a' AS signal,
    toStartOfHour(event_time) AS bucket,
    groupUniqArrayState((event_time_ms, message_id, toFloat64(0))) AS occurrences
FROM events
WHERE type = 'group'
  AND event = ''
  AND group_id = 'acme'
GROUP BY customer_id, bucket;

SELECT
    customer_id,
    'saebc46ec4a' AS signal,
    toStartOfHour(event_time) AS bucket,
    groupUniqArrayState((event_time_ms, message_id, toFloat64(0))) AS occurrences
FROM events
WHERE type = 'group'
  AND event = ''
  AND ((visitParamHas(properties, 'plan') AND visitParamExtractRaw(properties, 'plan') != 'null') AND if(substring(visitParamExtractRaw(properties, 'plan'), 1, 1) = '"', visitParamExtractString(properties, 'plan'), visitParamExtractRaw(properties, 'plan')) = 'enterprise')
GROUP BY customer_id, bucket;

SELECT
    customer_id,
    's7b92145160' AS signal,
    toStartOfHour(event_time) AS bucket,
    groupUniqArrayState((event_time_ms, message_id, toFloat64(0))) AS occurrences
FROM events
WHERE type = 'track'
  AND event = 'purchase'
  AND ((context_campaign_source != '') AND context_campaign_source = 'newsletter')
  AND ((context_locale != '') AND context_locale IN ('de-DE', 'de-AT'))
GROUP BY customer_id, bucket;

SELECT
    customer_id,
    's9393ea3936' AS signal,
    toStartOfHour(event_time) AS bucket,
    groupUniqArrayState((event_time_ms, message_id, toFloat64(0))) AS occurrences
FROM events
WHERE type = 'screen'
  AND event = 'Checkout'
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
            (count_group_acme_ever_3f4122 >= 1)
            OR (count_group_30d_aebc46 >= 1)
            OR (count_purchase_ever_7b9214 >= 1)
        )
        AND (count_checkout_7d_9393ea >= 1)) AS m_0
FROM
(
    SELECT
        customer_id,
        t,
        arrayUniq(arrayMap(x -> x.2, arrayFilter(x -> x.4 <= t, o_s3f4122113a))) AS count_group_acme_ever_3f4122,
        arrayUniq(arrayMap(x -> x.2, arrayFilter(x -> x.4 <= t AND x.1 > t - 2592000000, o_saebc46ec4a))) AS count_group_30d_aebc46,
        arrayUniq(arrayMap(x -> x.2, arrayFilter(x -> x.4 <= t, o_s7b92145160))) AS count_purchase_ever_7b9214,
        arrayUniq(arrayMap(x -> x.2, arrayFilter(x -> x.4 <= t AND x.1 > t - 604800000, o_s9393ea3936))) AS count_checkout_7d_9393ea
    FROM
    (
        SELECT
            customer_id,
            arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 = 's3f4122113a', occ)) AS o_s3f4122113a,
            arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 = 'saebc46ec4a', occ)) AS o_saebc46ec4a,
            arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 = 's7b92145160', occ)) AS o_s7b92145160,
            arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 = 's9393ea3936', occ)) AS o_s9393ea3936
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
                      AND (signal = 's3f4122113a'
                        OR signal = 's7b92145160'
                        OR (signal = 's9393ea3936' AND bucket >= toDateTime(intDiv({T_low} - 604800000, 1000) - 3600))
                        OR (signal = 'saebc46ec4a' AND bucket >= toDateTime(intDiv({T_low} - 2592000000, 1000) - 3600)))
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
