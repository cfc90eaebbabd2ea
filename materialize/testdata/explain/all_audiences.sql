SELECT
    customer_id,
    toUInt8((sum_purchase_amount_30d >= 500)) AS m_0,
    toUInt8((count_add_to_cart_1d >= 1)
        AND (count_purchase_1d = 0)) AS m_1,
    toUInt8((has_country AND attr_country = 'DE')
        AND (count_page_view_1d >= 1)) AS m_2,
    toUInt8((has_plan AND attr_plan = 'gold')
        AND (count_purchase_7d >= 2)) AS m_3,
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
        AND (count_signup_ever = 0)) AS m_4,
    toUInt8((has_nickname AND attr_nickname = 'O\'Brien \\ \'); DROP TABLE events; --')
        OR (sum_order_completed_v2_total_90m_59f923 >= 99.5)) AS m_5,
    toUInt8((has_first_source AND attr_first_source = 'ads')) AS m_6,
    at_age,
    am_age,
    at_country,
    am_country,
    at_email,
    am_email,
    at_first_source,
    am_first_source,
    at_nickname,
    am_nickname,
    at_plan,
    am_plan,
    at_score,
    am_score,
    at_vip,
    am_vip,
    b_count_add_to_cart_1d,
    b_count_page_view_1d,
    b_count_purchase_1d,
    b_count_purchase_36h_a8e171,
    b_count_purchase_7d,
    b_sum_order_completed_v2_total_90m_59f923,
    b_sum_purchase_amount_30d,
    dt_s59f9237e25,
    di_s59f9237e25,
    dt_s873dc8bdea,
    di_s873dc8bdea,
    dt_sa8e171b497,
    di_sa8e171b497,
    dt_sc413bdc18e,
    di_sc413bdc18e,
    dt_sc6bc7ef892,
    di_sc6bc7ef892,
    dt_sc8e9950396,
    di_sc8e9950396,
    dt_sdd273d73e9,
    di_sdd273d73e9,
    dt_se2046bb951,
    di_se2046bb951
FROM
(
    SELECT customer_id, attr_age, has_age, at_age, am_age, attr_country, has_country, at_country, am_country, attr_email, has_email, at_email, am_email, attr_first_source, has_first_source, at_first_source, am_first_source, attr_nickname, has_nickname, at_nickname, am_nickname, attr_plan, has_plan, at_plan, am_plan, attr_score, has_score, at_score, am_score, attr_vip, has_vip, at_vip, am_vip
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
            anyIf(first, attribute = 'first_source') AS t_first_source,
            t_first_source.1 AS attr_first_source,
            toUInt8(t_first_source.3 > 0 AND t_first_source.2 = 0) AS has_first_source,
            t_first_source.3 AS at_first_source,
            t_first_source.5 AS am_first_source,
            anyIf(last, attribute = 'nickname') AS t_nickname,
            t_nickname.1 AS attr_nickname,
            toUInt8(t_nickname.3 > 0 AND t_nickname.2 = 0) AS has_nickname,
            t_nickname.3 AS at_nickname,
            t_nickname.5 AS am_nickname,
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
                  AND attribute IN ('age', 'country', 'email', 'first_source', 'nickname', 'plan', 'score', 'vip')
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
        anyIf(occ, signal = 's59f9237e25') AS o_s59f9237e25,
        anyIf(occ, signal = 's873dc8bdea') AS o_s873dc8bdea,
        anyIf(occ, signal = 'sa8e171b497') AS o_sa8e171b497,
        anyIf(occ, signal = 'sc413bdc18e') AS o_sc413bdc18e,
        anyIf(occ, signal = 'sc6bc7ef892') AS o_sc6bc7ef892,
        anyIf(occ, signal = 'sc8e9950396') AS o_sc8e9950396,
        anyIf(occ, signal = 'sdd273d73e9') AS o_sdd273d73e9,
        anyIf(occ, signal = 'se2046bb951') AS o_se2046bb951,
        arrayUniq(arrayMap(x -> x.2, arrayFilter(x -> x.1 > {T} - 86400000 AND x.1 <= {T}, o_sc6bc7ef892))) AS count_add_to_cart_1d,
        arrayUniq(arrayMap(x -> x.2, arrayFilter(x -> x.1 > {T} - 86400000 AND x.1 <= {T}, o_sdd273d73e9))) AS count_page_view_1d,
        arrayUniq(arrayMap(x -> x.2, arrayFilter(x -> x.1 <= {T}, o_s873dc8bdea))) AS count_pricing_ever_873dc8,
        arrayUniq(arrayMap(x -> x.2, arrayFilter(x -> x.1 > {T} - 86400000 AND x.1 <= {T}, o_sc413bdc18e))) AS count_purchase_1d,
        arrayUniq(arrayMap(x -> x.2, arrayFilter(x -> x.1 > {T} - 129600000 AND x.1 <= {T}, o_sa8e171b497))) AS count_purchase_36h_a8e171,
        arrayUniq(arrayMap(x -> x.2, arrayFilter(x -> x.1 > {T} - 604800000 AND x.1 <= {T}, o_sc413bdc18e))) AS count_purchase_7d,
        arrayUniq(arrayMap(x -> x.2, arrayFilter(x -> x.1 <= {T}, o_se2046bb951))) AS count_signup_ever,
        arraySum(arrayMap(x -> x.3, arrayFilter(x -> x.1 > {T} - 5400000 AND x.1 <= {T}, o_s59f9237e25))) AS sum_order_completed_v2_total_90m_59f923,
        arraySum(arrayMap(x -> x.3, arrayFilter(x -> x.1 > {T} - 2592000000 AND x.1 <= {T}, o_sc8e9950396))) AS sum_purchase_amount_30d,
        arrayReduce('min', arrayFilter(t -> t > {T_prev} AND t <= {T}, arrayMap(x -> x.1 + 86400000, o_sc6bc7ef892))) AS b_count_add_to_cart_1d,
        arrayReduce('min', arrayFilter(t -> t > {T_prev} AND t <= {T}, arrayMap(x -> x.1 + 86400000, o_sdd273d73e9))) AS b_count_page_view_1d,
        arrayReduce('min', arrayFilter(t -> t > {T_prev} AND t <= {T}, arrayMap(x -> x.1 + 86400000, o_sc413bdc18e))) AS b_count_purchase_1d,
        arrayReduce('min', arrayFilter(t -> t > {T_prev} AND t <= {T}, arrayMap(x -> x.1 + 129600000, o_sa8e171b497))) AS b_count_purchase_36h_a8e171,
        arrayReduce('min', arrayFilter(t -> t > {T_prev} AND t <= {T}, arrayMap(x -> x.1 + 604800000, o_sc413bdc18e))) AS b_count_purchase_7d,
        arrayReduce('min', arrayFilter(t -> t > {T_prev} AND t <= {T}, arrayMap(x -> x.1 + 5400000, o_s59f9237e25))) AS b_sum_order_completed_v2_total_90m_59f923,
        arrayReduce('min', arrayFilter(t -> t > {T_prev} AND t <= {T}, arrayMap(x -> x.1 + 2592000000, o_sc8e9950396))) AS b_sum_purchase_amount_30d,
        arrayReduce('max', arrayMap(x -> (x.1, x.2), arrayFilter(x -> x.1 > {T_prev} AND x.1 <= {T}, o_s59f9237e25))) AS d_s59f9237e25,
        d_s59f9237e25.1 AS dt_s59f9237e25,
        d_s59f9237e25.2 AS di_s59f9237e25,
        arrayReduce('max', arrayMap(x -> (x.1, x.2), arrayFilter(x -> x.1 > {T_prev} AND x.1 <= {T}, o_s873dc8bdea))) AS d_s873dc8bdea,
        d_s873dc8bdea.1 AS dt_s873dc8bdea,
        d_s873dc8bdea.2 AS di_s873dc8bdea,
        arrayReduce('max', arrayMap(x -> (x.1, x.2), arrayFilter(x -> x.1 > {T_prev} AND x.1 <= {T}, o_sa8e171b497))) AS d_sa8e171b497,
        d_sa8e171b497.1 AS dt_sa8e171b497,
        d_sa8e171b497.2 AS di_sa8e171b497,
        arrayReduce('max', arrayMap(x -> (x.1, x.2), arrayFilter(x -> x.1 > {T_prev} AND x.1 <= {T}, o_sc413bdc18e))) AS d_sc413bdc18e,
        d_sc413bdc18e.1 AS dt_sc413bdc18e,
        d_sc413bdc18e.2 AS di_sc413bdc18e,
        arrayReduce('max', arrayMap(x -> (x.1, x.2), arrayFilter(x -> x.1 > {T_prev} AND x.1 <= {T}, o_sc6bc7ef892))) AS d_sc6bc7ef892,
        d_sc6bc7ef892.1 AS dt_sc6bc7ef892,
        d_sc6bc7ef892.2 AS di_sc6bc7ef892,
        arrayReduce('max', arrayMap(x -> (x.1, x.2), arrayFilter(x -> x.1 > {T_prev} AND x.1 <= {T}, o_sc8e9950396))) AS d_sc8e9950396,
        d_sc8e9950396.1 AS dt_sc8e9950396,
        d_sc8e9950396.2 AS di_sc8e9950396,
        arrayReduce('max', arrayMap(x -> (x.1, x.2), arrayFilter(x -> x.1 > {T_prev} AND x.1 <= {T}, o_sdd273d73e9))) AS d_sdd273d73e9,
        d_sdd273d73e9.1 AS dt_sdd273d73e9,
        d_sdd273d73e9.2 AS di_sdd273d73e9,
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
              AND ((signal = 's59f9237e25' AND bucket >= toDateTime(intDiv(least({T}, {T_prev}) - 5400000, 1000) - 3600))
                OR signal = 's873dc8bdea'
                OR (signal = 'sa8e171b497' AND bucket >= toDateTime(intDiv(least({T}, {T_prev}) - 129600000, 1000) - 3600))
                OR (signal = 'sc413bdc18e' AND bucket >= toDateTime(intDiv(least({T}, {T_prev}) - 604800000, 1000) - 3600))
                OR (signal = 'sc6bc7ef892' AND bucket >= toDateTime(intDiv(least({T}, {T_prev}) - 86400000, 1000) - 3600))
                OR (signal = 'sc8e9950396' AND bucket >= toDateTime(intDiv(least({T}, {T_prev}) - 2592000000, 1000) - 3600))
                OR (signal = 'sdd273d73e9' AND bucket >= toDateTime(intDiv(least({T}, {T_prev}) - 86400000, 1000) - 3600))
                OR signal = 'se2046bb951')
        )
        ALL INNER JOIN batch USING member_id
        GROUP BY customer_id, signal
    )
    GROUP BY customer_id
) USING customer_id
