SELECT
    customer_id,
    t,
    toUInt8((sum_purchase_amount_30d >= 500)) AS m_0,
    toUInt8((count_add_to_cart_1d >= 1)
        AND (count_purchase_1d = 0)) AS m_1,
    toUInt8((has_country AND attr_country = 'DE')
        AND (count_page_view_1d >= 1)) AS m_2,
    toUInt8((has_plan AND attr_plan = 'gold')
        AND (count_purchase_7d >= 2)) AS m_3,
    toUInt8((
            (count_group_acme_ever_3f4122 >= 1)
            OR (count_group_30d_aebc46 >= 1)
            OR (count_purchase_ever_7b9214 >= 1)
        )
        AND (count_checkout_7d_9393ea >= 1)) AS m_4,
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
        AND (count_signup_ever = 0)) AS m_5,
    toUInt8((has_nickname AND attr_nickname = 'O\'Brien \\ \'); DROP TABLE events; --')
        OR (sum_order_completed_v2_total_90m_59f923 >= 99.5)) AS m_6,
    toUInt8((has_first_source AND attr_first_source = 'ads')) AS m_7
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
        arrayReduce('min', arrayMap(x -> (x.4, x.1, x.2, x.3), arrayFilter(x -> x.5 <= t, h_first_source))) AS v_attr_first_source_k,
        (v_attr_first_source_k.2, v_attr_first_source_k.3, v_attr_first_source_k.4, v_attr_first_source_k.1) AS v_attr_first_source,
        v_attr_first_source.3 AS attr_first_source,
        toUInt8(v_attr_first_source.1 > 0 AND v_attr_first_source.4 = 0) AS has_first_source,
        arrayReduce('max', arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 <= t, h_nickname))) AS v_attr_nickname,
        v_attr_nickname.3 AS attr_nickname,
        toUInt8(v_attr_nickname.1 > 0 AND v_attr_nickname.4 = 0) AS has_nickname,
        arrayReduce('max', arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 <= t, h_plan))) AS v_attr_plan,
        v_attr_plan.3 AS attr_plan,
        toUInt8(v_attr_plan.1 > 0 AND v_attr_plan.4 = 0) AS has_plan,
        arrayReduce('max', arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 <= t, h_score))) AS v_attr_score,
        v_attr_score.3 AS attr_score,
        toUInt8(v_attr_score.1 > 0 AND v_attr_score.4 = 0) AS has_score,
        arrayReduce('max', arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 <= t, h_vip))) AS v_attr_vip,
        v_attr_vip.3 AS attr_vip,
        toUInt8(v_attr_vip.1 > 0 AND v_attr_vip.4 = 0) AS has_vip,
        arrayUniq(arrayMap(x -> x.2, arrayFilter(x -> x.4 <= t AND x.1 > t - 86400000, o_sc6bc7ef892))) AS count_add_to_cart_1d,
        arrayUniq(arrayMap(x -> x.2, arrayFilter(x -> x.4 <= t AND x.1 > t - 604800000, o_s9393ea3936))) AS count_checkout_7d_9393ea,
        arrayUniq(arrayMap(x -> x.2, arrayFilter(x -> x.4 <= t AND x.1 > t - 2592000000, o_saebc46ec4a))) AS count_group_30d_aebc46,
        arrayUniq(arrayMap(x -> x.2, arrayFilter(x -> x.4 <= t, o_s3f4122113a))) AS count_group_acme_ever_3f4122,
        arrayUniq(arrayMap(x -> x.2, arrayFilter(x -> x.4 <= t AND x.1 > t - 86400000, o_sdd273d73e9))) AS count_page_view_1d,
        arrayUniq(arrayMap(x -> x.2, arrayFilter(x -> x.4 <= t, o_s873dc8bdea))) AS count_pricing_ever_873dc8,
        arrayUniq(arrayMap(x -> x.2, arrayFilter(x -> x.4 <= t AND x.1 > t - 86400000, o_sc413bdc18e))) AS count_purchase_1d,
        arrayUniq(arrayMap(x -> x.2, arrayFilter(x -> x.4 <= t AND x.1 > t - 129600000, o_sa8e171b497))) AS count_purchase_36h_a8e171,
        arrayUniq(arrayMap(x -> x.2, arrayFilter(x -> x.4 <= t AND x.1 > t - 604800000, o_sc413bdc18e))) AS count_purchase_7d,
        arrayUniq(arrayMap(x -> x.2, arrayFilter(x -> x.4 <= t, o_s7b92145160))) AS count_purchase_ever_7b9214,
        arrayUniq(arrayMap(x -> x.2, arrayFilter(x -> x.4 <= t, o_se2046bb951))) AS count_signup_ever,
        arraySum(arrayMap(x -> x.3, arrayFilter(x -> x.4 <= t AND x.1 > t - 5400000, o_s59f9237e25))) AS sum_order_completed_v2_total_90m_59f923,
        arraySum(arrayMap(x -> x.3, arrayFilter(x -> x.4 <= t AND x.1 > t - 2592000000, o_sc8e9950396))) AS sum_purchase_amount_30d
    FROM
    (
        SELECT
            customer_id,
            arrayMap(x -> (x.1, x.2, x.3, x.4, x.5), arrayFilter(x -> x.6 = 'age', hist)) AS h_age,
            arrayMap(x -> (x.1, x.2, x.3, x.4, x.5), arrayFilter(x -> x.6 = 'country', hist)) AS h_country,
            arrayMap(x -> (x.1, x.2, x.3, x.4, x.5), arrayFilter(x -> x.6 = 'email', hist)) AS h_email,
            arrayMap(x -> (x.1, x.2, x.3, x.4, x.5), arrayFilter(x -> x.6 = 'first_source', hist)) AS h_first_source,
            arrayMap(x -> (x.1, x.2, x.3, x.4, x.5), arrayFilter(x -> x.6 = 'nickname', hist)) AS h_nickname,
            arrayMap(x -> (x.1, x.2, x.3, x.4, x.5), arrayFilter(x -> x.6 = 'plan', hist)) AS h_plan,
            arrayMap(x -> (x.1, x.2, x.3, x.4, x.5), arrayFilter(x -> x.6 = 'score', hist)) AS h_score,
            arrayMap(x -> (x.1, x.2, x.3, x.4, x.5), arrayFilter(x -> x.6 = 'vip', hist)) AS h_vip,
            arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 = 's3f4122113a', occ)) AS o_s3f4122113a,
            arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 = 's59f9237e25', occ)) AS o_s59f9237e25,
            arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 = 's7b92145160', occ)) AS o_s7b92145160,
            arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 = 's873dc8bdea', occ)) AS o_s873dc8bdea,
            arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 = 's9393ea3936', occ)) AS o_s9393ea3936,
            arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 = 'sa8e171b497', occ)) AS o_sa8e171b497,
            arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 = 'saebc46ec4a', occ)) AS o_saebc46ec4a,
            arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 = 'sc413bdc18e', occ)) AS o_sc413bdc18e,
            arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 = 'sc6bc7ef892', occ)) AS o_sc6bc7ef892,
            arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 = 'sc8e9950396', occ)) AS o_sc8e9950396,
            arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 = 'sdd273d73e9', occ)) AS o_sdd273d73e9,
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
                        FROM (
                            SELECT customer_id, attribute, changes FROM customer_attribute_history
                            UNION ALL
                            SELECT
                                customer_id,
                                'age' AS attribute,
                                groupUniqArrayState((event_time_ms, message_id, if(substring(visitParamExtractRaw(traits, 'age'), 1, 1) = '"', visitParamExtractString(traits, 'age'), visitParamExtractRaw(traits, 'age')), toUInt8(visitParamExtractRaw(traits, 'age') = 'null'))) AS changes
                            FROM events
                            WHERE visitParamHas(traits, 'age')
                            GROUP BY customer_id
                            UNION ALL
                            SELECT
                                customer_id,
                                'country' AS attribute,
                                groupUniqArrayState((event_time_ms, message_id, if(substring(visitParamExtractRaw(traits, 'country'), 1, 1) = '"', visitParamExtractString(traits, 'country'), visitParamExtractRaw(traits, 'country')), toUInt8(visitParamExtractRaw(traits, 'country') = 'null'))) AS changes
                            FROM events
                            WHERE visitParamHas(traits, 'country')
                            GROUP BY customer_id
                            UNION ALL
                            SELECT
                                customer_id,
                                'email' AS attribute,
                                groupUniqArrayState((event_time_ms, message_id, if(substring(visitParamExtractRaw(traits, 'email'), 1, 1) = '"', visitParamExtractString(traits, 'email'), visitParamExtractRaw(traits, 'email')), toUInt8(visitParamExtractRaw(traits, 'email') = 'null'))) AS changes
                            FROM events
                            WHERE visitParamHas(traits, 'email')
                            GROUP BY customer_id
                            UNION ALL
                            SELECT
                                customer_id,
                                'first_source' AS attribute,
                                groupUniqArrayState((event_time_ms, message_id, if(substring(visitParamExtractRaw(traits, 'first_source'), 1, 1) = '"', visitParamExtractString(traits, 'first_source'), visitParamExtractRaw(traits, 'first_source')), toUInt8(visitParamExtractRaw(traits, 'first_source') = 'null'))) AS changes
                            FROM events
                            WHERE visitParamHas(traits, 'first_source')
                            GROUP BY customer_id
                            UNION ALL
                            SELECT
                                customer_id,
                                'nickname' AS attribute,
                                groupUniqArrayState((event_time_ms, message_id, if(substring(visitParamExtractRaw(traits, 'nickname'), 1, 1) = '"', visitParamExtractString(traits, 'nickname'), visitParamExtractRaw(traits, 'nickname')), toUInt8(visitParamExtractRaw(traits, 'nickname') = 'null'))) AS changes
                            FROM events
                            WHERE visitParamHas(traits, 'nickname')
                            GROUP BY customer_id
                            UNION ALL
                            SELECT
                                customer_id,
                                'plan' AS attribute,
                                groupUniqArrayState((event_time_ms, message_id, if(substring(visitParamExtractRaw(traits, 'plan'), 1, 1) = '"', visitParamExtractString(traits, 'plan'), visitParamExtractRaw(traits, 'plan')), toUInt8(visitParamExtractRaw(traits, 'plan') = 'null'))) AS changes
                            FROM events
                            WHERE visitParamHas(traits, 'plan')
                            GROUP BY customer_id
                            UNION ALL
                            SELECT
                                customer_id,
                                'score' AS attribute,
                                groupUniqArrayState((event_time_ms, message_id, if(substring(visitParamExtractRaw(traits, 'score'), 1, 1) = '"', visitParamExtractString(traits, 'score'), visitParamExtractRaw(traits, 'score')), toUInt8(visitParamExtractRaw(traits, 'score') = 'null'))) AS changes
                            FROM events
                            WHERE visitParamHas(traits, 'score')
                            GROUP BY customer_id
                            UNION ALL
                            SELECT
                                customer_id,
                                'vip' AS attribute,
                                groupUniqArrayState((event_time_ms, message_id, if(substring(visitParamExtractRaw(traits, 'vip'), 1, 1) = '"', visitParamExtractString(traits, 'vip'), visitParamExtractRaw(traits, 'vip')), toUInt8(visitParamExtractRaw(traits, 'vip') = 'null'))) AS changes
                            FROM events
                            WHERE visitParamHas(traits, 'vip')
                            GROUP BY customer_id
                        )
                        WHERE customer_id IN (SELECT member_id FROM batch)
                          AND attribute IN ('age', 'country', 'email', 'first_source', 'nickname', 'plan', 'score', 'vip')
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
                    FROM (
                        SELECT customer_id, signal, bucket, occurrences FROM customer_signals
                        UNION ALL
                        SELECT
                            customer_id,
                            's3f4122113a' AS signal,
                            toStartOfHour(event_time) AS bucket,
                            groupUniqArrayState((event_time_ms, message_id, toFloat64(0))) AS occurrences
                        FROM events
                        WHERE type = 'group'
                          AND event = ''
                          AND group_id = 'acme'
                        GROUP BY customer_id, bucket
                        UNION ALL
                        SELECT
                            customer_id,
                            's59f9237e25' AS signal,
                            toStartOfHour(event_time) AS bucket,
                            groupUniqArrayState((event_time_ms, message_id, toFloat64OrZero(if(substring(visitParamExtractRaw(properties, 'total'), 1, 1) = '"', visitParamExtractString(properties, 'total'), visitParamExtractRaw(properties, 'total'))))) AS occurrences
                        FROM events
                        WHERE type = 'track'
                          AND event = 'Order Completed (v2)'
                          AND NOT (((visitParamHas(properties, 'coupon') AND visitParamExtractRaw(properties, 'coupon') != 'null') AND if(substring(visitParamExtractRaw(properties, 'coupon'), 1, 1) = '"', visitParamExtractString(properties, 'coupon'), visitParamExtractRaw(properties, 'coupon')) = '50% off \'today\''))
                        GROUP BY customer_id, bucket
                        UNION ALL
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
                        GROUP BY customer_id, bucket
                        UNION ALL
                        SELECT
                            customer_id,
                            's873dc8bdea' AS signal,
                            toStartOfHour(event_time) AS bucket,
                            groupUniqArrayState((event_time_ms, message_id, toFloat64(0))) AS occurrences
                        FROM events
                        WHERE type = 'page'
                          AND event = 'Pricing'
                        GROUP BY customer_id, bucket
                        UNION ALL
                        SELECT
                            customer_id,
                            's9393ea3936' AS signal,
                            toStartOfHour(event_time) AS bucket,
                            groupUniqArrayState((event_time_ms, message_id, toFloat64(0))) AS occurrences
                        FROM events
                        WHERE type = 'screen'
                          AND event = 'Checkout'
                        GROUP BY customer_id, bucket
                        UNION ALL
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
                        GROUP BY customer_id, bucket
                        UNION ALL
                        SELECT
                            customer_id,
                            'saebc46ec4a' AS signal,
                            toStartOfHour(event_time) AS bucket,
                            groupUniqArrayState((event_time_ms, message_id, toFloat64(0))) AS occurrences
                        FROM events
                        WHERE type = 'group'
                          AND event = ''
                          AND ((visitParamHas(properties, 'plan') AND visitParamExtractRaw(properties, 'plan') != 'null') AND if(substring(visitParamExtractRaw(properties, 'plan'), 1, 1) = '"', visitParamExtractString(properties, 'plan'), visitParamExtractRaw(properties, 'plan')) = 'enterprise')
                        GROUP BY customer_id, bucket
                        UNION ALL
                        SELECT
                            customer_id,
                            'sc413bdc18e' AS signal,
                            toStartOfHour(event_time) AS bucket,
                            groupUniqArrayState((event_time_ms, message_id, toFloat64(0))) AS occurrences
                        FROM events
                        WHERE type = 'track'
                          AND event = 'purchase'
                        GROUP BY customer_id, bucket
                        UNION ALL
                        SELECT
                            customer_id,
                            'sc6bc7ef892' AS signal,
                            toStartOfHour(event_time) AS bucket,
                            groupUniqArrayState((event_time_ms, message_id, toFloat64(0))) AS occurrences
                        FROM events
                        WHERE type = 'track'
                          AND event = 'add_to_cart'
                        GROUP BY customer_id, bucket
                        UNION ALL
                        SELECT
                            customer_id,
                            'sc8e9950396' AS signal,
                            toStartOfHour(event_time) AS bucket,
                            groupUniqArrayState((event_time_ms, message_id, toFloat64OrZero(if(substring(visitParamExtractRaw(properties, 'amount'), 1, 1) = '"', visitParamExtractString(properties, 'amount'), visitParamExtractRaw(properties, 'amount'))))) AS occurrences
                        FROM events
                        WHERE type = 'track'
                          AND event = 'purchase'
                        GROUP BY customer_id, bucket
                        UNION ALL
                        SELECT
                            customer_id,
                            'sdd273d73e9' AS signal,
                            toStartOfHour(event_time) AS bucket,
                            groupUniqArrayState((event_time_ms, message_id, toFloat64(0))) AS occurrences
                        FROM events
                        WHERE type = 'track'
                          AND event = 'page_view'
                        GROUP BY customer_id, bucket
                        UNION ALL
                        SELECT
                            customer_id,
                            'se2046bb951' AS signal,
                            toStartOfHour(event_time) AS bucket,
                            groupUniqArrayState((event_time_ms, message_id, toFloat64(0))) AS occurrences
                        FROM events
                        WHERE type = 'track'
                          AND event = 'signup'
                        GROUP BY customer_id, bucket
                    )
                    WHERE customer_id IN (SELECT member_id FROM batch)
                      AND (signal = 's3f4122113a'
                        OR (signal = 's59f9237e25' AND bucket >= toDateTime(intDiv({T_low} - 5400000, 1000) - 3600))
                        OR signal = 's7b92145160'
                        OR signal = 's873dc8bdea'
                        OR (signal = 's9393ea3936' AND bucket >= toDateTime(intDiv({T_low} - 604800000, 1000) - 3600))
                        OR (signal = 'sa8e171b497' AND bucket >= toDateTime(intDiv({T_low} - 129600000, 1000) - 3600))
                        OR (signal = 'saebc46ec4a' AND bucket >= toDateTime(intDiv({T_low} - 2592000000, 1000) - 3600))
                        OR (signal = 'sc413bdc18e' AND bucket >= toDateTime(intDiv({T_low} - 604800000, 1000) - 3600))
                        OR (signal = 'sc6bc7ef892' AND bucket >= toDateTime(intDiv({T_low} - 86400000, 1000) - 3600))
                        OR (signal = 'sc8e9950396' AND bucket >= toDateTime(intDiv({T_low} - 2592000000, 1000) - 3600))
                        OR (signal = 'sdd273d73e9' AND bucket >= toDateTime(intDiv({T_low} - 86400000, 1000) - 3600))
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
);

SELECT customer_id, t, if(has_age = 1, attr_age, ''), has_age, if(has_country = 1, attr_country, ''), has_country, if(has_email = 1, attr_email, ''), has_email, if(has_first_source = 1, attr_first_source, ''), has_first_source, if(has_nickname = 1, attr_nickname, ''), has_nickname, if(has_plan = 1, attr_plan, ''), has_plan, if(has_score = 1, attr_score, ''), has_score, if(has_vip = 1, attr_vip, ''), has_vip, toString(count_add_to_cart_1d), toString(count_checkout_7d_9393ea), toString(count_group_30d_aebc46), toString(count_group_acme_ever_3f4122), toString(count_page_view_1d), toString(count_pricing_ever_873dc8), toString(count_purchase_1d), toString(count_purchase_36h_a8e171), toString(count_purchase_7d), toString(count_purchase_ever_7b9214), toString(count_signup_ever), toString(sum_order_completed_v2_total_90m_59f923), toString(sum_purchase_amount_30d)
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
        arrayReduce('min', arrayMap(x -> (x.4, x.1, x.2, x.3), arrayFilter(x -> x.5 <= t, h_first_source))) AS v_attr_first_source_k,
        (v_attr_first_source_k.2, v_attr_first_source_k.3, v_attr_first_source_k.4, v_attr_first_source_k.1) AS v_attr_first_source,
        v_attr_first_source.3 AS attr_first_source,
        toUInt8(v_attr_first_source.1 > 0 AND v_attr_first_source.4 = 0) AS has_first_source,
        arrayReduce('max', arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 <= t, h_nickname))) AS v_attr_nickname,
        v_attr_nickname.3 AS attr_nickname,
        toUInt8(v_attr_nickname.1 > 0 AND v_attr_nickname.4 = 0) AS has_nickname,
        arrayReduce('max', arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 <= t, h_plan))) AS v_attr_plan,
        v_attr_plan.3 AS attr_plan,
        toUInt8(v_attr_plan.1 > 0 AND v_attr_plan.4 = 0) AS has_plan,
        arrayReduce('max', arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 <= t, h_score))) AS v_attr_score,
        v_attr_score.3 AS attr_score,
        toUInt8(v_attr_score.1 > 0 AND v_attr_score.4 = 0) AS has_score,
        arrayReduce('max', arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 <= t, h_vip))) AS v_attr_vip,
        v_attr_vip.3 AS attr_vip,
        toUInt8(v_attr_vip.1 > 0 AND v_attr_vip.4 = 0) AS has_vip,
        arrayUniq(arrayMap(x -> x.2, arrayFilter(x -> x.4 <= t AND x.1 > t - 86400000, o_sc6bc7ef892))) AS count_add_to_cart_1d,
        arrayUniq(arrayMap(x -> x.2, arrayFilter(x -> x.4 <= t AND x.1 > t - 604800000, o_s9393ea3936))) AS count_checkout_7d_9393ea,
        arrayUniq(arrayMap(x -> x.2, arrayFilter(x -> x.4 <= t AND x.1 > t - 2592000000, o_saebc46ec4a))) AS count_group_30d_aebc46,
        arrayUniq(arrayMap(x -> x.2, arrayFilter(x -> x.4 <= t, o_s3f4122113a))) AS count_group_acme_ever_3f4122,
        arrayUniq(arrayMap(x -> x.2, arrayFilter(x -> x.4 <= t AND x.1 > t - 86400000, o_sdd273d73e9))) AS count_page_view_1d,
        arrayUniq(arrayMap(x -> x.2, arrayFilter(x -> x.4 <= t, o_s873dc8bdea))) AS count_pricing_ever_873dc8,
        arrayUniq(arrayMap(x -> x.2, arrayFilter(x -> x.4 <= t AND x.1 > t - 86400000, o_sc413bdc18e))) AS count_purchase_1d,
        arrayUniq(arrayMap(x -> x.2, arrayFilter(x -> x.4 <= t AND x.1 > t - 129600000, o_sa8e171b497))) AS count_purchase_36h_a8e171,
        arrayUniq(arrayMap(x -> x.2, arrayFilter(x -> x.4 <= t AND x.1 > t - 604800000, o_sc413bdc18e))) AS count_purchase_7d,
        arrayUniq(arrayMap(x -> x.2, arrayFilter(x -> x.4 <= t, o_s7b92145160))) AS count_purchase_ever_7b9214,
        arrayUniq(arrayMap(x -> x.2, arrayFilter(x -> x.4 <= t, o_se2046bb951))) AS count_signup_ever,
        arraySum(arrayMap(x -> x.3, arrayFilter(x -> x.4 <= t AND x.1 > t - 5400000, o_s59f9237e25))) AS sum_order_completed_v2_total_90m_59f923,
        arraySum(arrayMap(x -> x.3, arrayFilter(x -> x.4 <= t AND x.1 > t - 2592000000, o_sc8e9950396))) AS sum_purchase_amount_30d
    FROM
    (
        SELECT
            customer_id,
            arrayMap(x -> (x.1, x.2, x.3, x.4, x.5), arrayFilter(x -> x.6 = 'age', hist)) AS h_age,
            arrayMap(x -> (x.1, x.2, x.3, x.4, x.5), arrayFilter(x -> x.6 = 'country', hist)) AS h_country,
            arrayMap(x -> (x.1, x.2, x.3, x.4, x.5), arrayFilter(x -> x.6 = 'email', hist)) AS h_email,
            arrayMap(x -> (x.1, x.2, x.3, x.4, x.5), arrayFilter(x -> x.6 = 'first_source', hist)) AS h_first_source,
            arrayMap(x -> (x.1, x.2, x.3, x.4, x.5), arrayFilter(x -> x.6 = 'nickname', hist)) AS h_nickname,
            arrayMap(x -> (x.1, x.2, x.3, x.4, x.5), arrayFilter(x -> x.6 = 'plan', hist)) AS h_plan,
            arrayMap(x -> (x.1, x.2, x.3, x.4, x.5), arrayFilter(x -> x.6 = 'score', hist)) AS h_score,
            arrayMap(x -> (x.1, x.2, x.3, x.4, x.5), arrayFilter(x -> x.6 = 'vip', hist)) AS h_vip,
            arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 = 's3f4122113a', occ)) AS o_s3f4122113a,
            arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 = 's59f9237e25', occ)) AS o_s59f9237e25,
            arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 = 's7b92145160', occ)) AS o_s7b92145160,
            arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 = 's873dc8bdea', occ)) AS o_s873dc8bdea,
            arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 = 's9393ea3936', occ)) AS o_s9393ea3936,
            arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 = 'sa8e171b497', occ)) AS o_sa8e171b497,
            arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 = 'saebc46ec4a', occ)) AS o_saebc46ec4a,
            arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 = 'sc413bdc18e', occ)) AS o_sc413bdc18e,
            arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 = 'sc6bc7ef892', occ)) AS o_sc6bc7ef892,
            arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 = 'sc8e9950396', occ)) AS o_sc8e9950396,
            arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 = 'sdd273d73e9', occ)) AS o_sdd273d73e9,
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
                        FROM (
                            SELECT customer_id, attribute, changes FROM customer_attribute_history
                            UNION ALL
                            SELECT
                                customer_id,
                                'age' AS attribute,
                                groupUniqArrayState((event_time_ms, message_id, if(substring(visitParamExtractRaw(traits, 'age'), 1, 1) = '"', visitParamExtractString(traits, 'age'), visitParamExtractRaw(traits, 'age')), toUInt8(visitParamExtractRaw(traits, 'age') = 'null'))) AS changes
                            FROM events
                            WHERE visitParamHas(traits, 'age')
                            GROUP BY customer_id
                            UNION ALL
                            SELECT
                                customer_id,
                                'country' AS attribute,
                                groupUniqArrayState((event_time_ms, message_id, if(substring(visitParamExtractRaw(traits, 'country'), 1, 1) = '"', visitParamExtractString(traits, 'country'), visitParamExtractRaw(traits, 'country')), toUInt8(visitParamExtractRaw(traits, 'country') = 'null'))) AS changes
                            FROM events
                            WHERE visitParamHas(traits, 'country')
                            GROUP BY customer_id
                            UNION ALL
                            SELECT
                                customer_id,
                                'email' AS attribute,
                                groupUniqArrayState((event_time_ms, message_id, if(substring(visitParamExtractRaw(traits, 'email'), 1, 1) = '"', visitParamExtractString(traits, 'email'), visitParamExtractRaw(traits, 'email')), toUInt8(visitParamExtractRaw(traits, 'email') = 'null'))) AS changes
                            FROM events
                            WHERE visitParamHas(traits, 'email')
                            GROUP BY customer_id
                            UNION ALL
                            SELECT
                                customer_id,
                                'first_source' AS attribute,
                                groupUniqArrayState((event_time_ms, message_id, if(substring(visitParamExtractRaw(traits, 'first_source'), 1, 1) = '"', visitParamExtractString(traits, 'first_source'), visitParamExtractRaw(traits, 'first_source')), toUInt8(visitParamExtractRaw(traits, 'first_source') = 'null'))) AS changes
                            FROM events
                            WHERE visitParamHas(traits, 'first_source')
                            GROUP BY customer_id
                            UNION ALL
                            SELECT
                                customer_id,
                                'nickname' AS attribute,
                                groupUniqArrayState((event_time_ms, message_id, if(substring(visitParamExtractRaw(traits, 'nickname'), 1, 1) = '"', visitParamExtractString(traits, 'nickname'), visitParamExtractRaw(traits, 'nickname')), toUInt8(visitParamExtractRaw(traits, 'nickname') = 'null'))) AS changes
                            FROM events
                            WHERE visitParamHas(traits, 'nickname')
                            GROUP BY customer_id
                            UNION ALL
                            SELECT
                                customer_id,
                                'plan' AS attribute,
                                groupUniqArrayState((event_time_ms, message_id, if(substring(visitParamExtractRaw(traits, 'plan'), 1, 1) = '"', visitParamExtractString(traits, 'plan'), visitParamExtractRaw(traits, 'plan')), toUInt8(visitParamExtractRaw(traits, 'plan') = 'null'))) AS changes
                            FROM events
                            WHERE visitParamHas(traits, 'plan')
                            GROUP BY customer_id
                            UNION ALL
                            SELECT
                                customer_id,
                                'score' AS attribute,
                                groupUniqArrayState((event_time_ms, message_id, if(substring(visitParamExtractRaw(traits, 'score'), 1, 1) = '"', visitParamExtractString(traits, 'score'), visitParamExtractRaw(traits, 'score')), toUInt8(visitParamExtractRaw(traits, 'score') = 'null'))) AS changes
                            FROM events
                            WHERE visitParamHas(traits, 'score')
                            GROUP BY customer_id
                            UNION ALL
                            SELECT
                                customer_id,
                                'vip' AS attribute,
                                groupUniqArrayState((event_time_ms, message_id, if(substring(visitParamExtractRaw(traits, 'vip'), 1, 1) = '"', visitParamExtractString(traits, 'vip'), visitParamExtractRaw(traits, 'vip')), toUInt8(visitParamExtractRaw(traits, 'vip') = 'null'))) AS changes
                            FROM events
                            WHERE visitParamHas(traits, 'vip')
                            GROUP BY customer_id
                        )
                        WHERE customer_id IN (SELECT member_id FROM batch)
                          AND attribute IN ('age', 'country', 'email', 'first_source', 'nickname', 'plan', 'score', 'vip')
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
                    FROM (
                        SELECT customer_id, signal, bucket, occurrences FROM customer_signals
                        UNION ALL
                        SELECT
                            customer_id,
                            's3f4122113a' AS signal,
                            toStartOfHour(event_time) AS bucket,
                            groupUniqArrayState((event_time_ms, message_id, toFloat64(0))) AS occurrences
                        FROM events
                        WHERE type = 'group'
                          AND event = ''
                          AND group_id = 'acme'
                        GROUP BY customer_id, bucket
                        UNION ALL
                        SELECT
                            customer_id,
                            's59f9237e25' AS signal,
                            toStartOfHour(event_time) AS bucket,
                            groupUniqArrayState((event_time_ms, message_id, toFloat64OrZero(if(substring(visitParamExtractRaw(properties, 'total'), 1, 1) = '"', visitParamExtractString(properties, 'total'), visitParamExtractRaw(properties, 'total'))))) AS occurrences
                        FROM events
                        WHERE type = 'track'
                          AND event = 'Order Completed (v2)'
                          AND NOT (((visitParamHas(properties, 'coupon') AND visitParamExtractRaw(properties, 'coupon') != 'null') AND if(substring(visitParamExtractRaw(properties, 'coupon'), 1, 1) = '"', visitParamExtractString(properties, 'coupon'), visitParamExtractRaw(properties, 'coupon')) = '50% off \'today\''))
                        GROUP BY customer_id, bucket
                        UNION ALL
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
                        GROUP BY customer_id, bucket
                        UNION ALL
                        SELECT
                            customer_id,
                            's873dc8bdea' AS signal,
                            toStartOfHour(event_time) AS bucket,
                            groupUniqArrayState((event_time_ms, message_id, toFloat64(0))) AS occurrences
                        FROM events
                        WHERE type = 'page'
                          AND event = 'Pricing'
                        GROUP BY customer_id, bucket
                        UNION ALL
                        SELECT
                            customer_id,
                            's9393ea3936' AS signal,
                            toStartOfHour(event_time) AS bucket,
                            groupUniqArrayState((event_time_ms, message_id, toFloat64(0))) AS occurrences
                        FROM events
                        WHERE type = 'screen'
                          AND event = 'Checkout'
                        GROUP BY customer_id, bucket
                        UNION ALL
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
                        GROUP BY customer_id, bucket
                        UNION ALL
                        SELECT
                            customer_id,
                            'saebc46ec4a' AS signal,
                            toStartOfHour(event_time) AS bucket,
                            groupUniqArrayState((event_time_ms, message_id, toFloat64(0))) AS occurrences
                        FROM events
                        WHERE type = 'group'
                          AND event = ''
                          AND ((visitParamHas(properties, 'plan') AND visitParamExtractRaw(properties, 'plan') != 'null') AND if(substring(visitParamExtractRaw(properties, 'plan'), 1, 1) = '"', visitParamExtractString(properties, 'plan'), visitParamExtractRaw(properties, 'plan')) = 'enterprise')
                        GROUP BY customer_id, bucket
                        UNION ALL
                        SELECT
                            customer_id,
                            'sc413bdc18e' AS signal,
                            toStartOfHour(event_time) AS bucket,
                            groupUniqArrayState((event_time_ms, message_id, toFloat64(0))) AS occurrences
                        FROM events
                        WHERE type = 'track'
                          AND event = 'purchase'
                        GROUP BY customer_id, bucket
                        UNION ALL
                        SELECT
                            customer_id,
                            'sc6bc7ef892' AS signal,
                            toStartOfHour(event_time) AS bucket,
                            groupUniqArrayState((event_time_ms, message_id, toFloat64(0))) AS occurrences
                        FROM events
                        WHERE type = 'track'
                          AND event = 'add_to_cart'
                        GROUP BY customer_id, bucket
                        UNION ALL
                        SELECT
                            customer_id,
                            'sc8e9950396' AS signal,
                            toStartOfHour(event_time) AS bucket,
                            groupUniqArrayState((event_time_ms, message_id, toFloat64OrZero(if(substring(visitParamExtractRaw(properties, 'amount'), 1, 1) = '"', visitParamExtractString(properties, 'amount'), visitParamExtractRaw(properties, 'amount'))))) AS occurrences
                        FROM events
                        WHERE type = 'track'
                          AND event = 'purchase'
                        GROUP BY customer_id, bucket
                        UNION ALL
                        SELECT
                            customer_id,
                            'sdd273d73e9' AS signal,
                            toStartOfHour(event_time) AS bucket,
                            groupUniqArrayState((event_time_ms, message_id, toFloat64(0))) AS occurrences
                        FROM events
                        WHERE type = 'track'
                          AND event = 'page_view'
                        GROUP BY customer_id, bucket
                        UNION ALL
                        SELECT
                            customer_id,
                            'se2046bb951' AS signal,
                            toStartOfHour(event_time) AS bucket,
                            groupUniqArrayState((event_time_ms, message_id, toFloat64(0))) AS occurrences
                        FROM events
                        WHERE type = 'track'
                          AND event = 'signup'
                        GROUP BY customer_id, bucket
                    )
                    WHERE customer_id IN (SELECT member_id FROM batch)
                      AND (signal = 's3f4122113a'
                        OR (signal = 's59f9237e25' AND bucket >= toDateTime(intDiv({T_low} - 5400000, 1000) - 3600))
                        OR signal = 's7b92145160'
                        OR signal = 's873dc8bdea'
                        OR (signal = 's9393ea3936' AND bucket >= toDateTime(intDiv({T_low} - 604800000, 1000) - 3600))
                        OR (signal = 'sa8e171b497' AND bucket >= toDateTime(intDiv({T_low} - 129600000, 1000) - 3600))
                        OR (signal = 'saebc46ec4a' AND bucket >= toDateTime(intDiv({T_low} - 2592000000, 1000) - 3600))
                        OR (signal = 'sc413bdc18e' AND bucket >= toDateTime(intDiv({T_low} - 604800000, 1000) - 3600))
                        OR (signal = 'sc6bc7ef892' AND bucket >= toDateTime(intDiv({T_low} - 86400000, 1000) - 3600))
                        OR (signal = 'sc8e9950396' AND bucket >= toDateTime(intDiv({T_low} - 2592000000, 1000) - 3600))
                        OR (signal = 'sdd273d73e9' AND bucket >= toDateTime(intDiv({T_low} - 86400000, 1000) - 3600))
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
