SELECT
    customer_id,
    anonymous_ids,
    first_seen_ms,
    toDateTime(intDiv(first_seen_ms, 1000)) AS first_seen,
    last_seen_ms,
    toDateTime(intDiv(last_seen_ms, 1000)) AS last_seen,
    events,
    attribute_names,
    attribute_values
FROM
(
    SELECT
        if(user_id != '', user_id, raw_id) AS customer_id,
        groupUniqArrayIf(raw_id, user_id != '') AS anonymous_ids,
        min(first_ms) AS first_seen_ms,
        max(last_ms) AS last_seen_ms,
        sum(n) AS events
    FROM
    (
        SELECT customer_id AS raw_id, uniqExactMerge(messages) AS n,
               minMerge(first_seen_ms) AS first_ms, maxMerge(last_seen_ms) AS last_ms
        FROM customer_event_buckets
        WHERE customer_id IN @raw
        GROUP BY customer_id
    ) AS buckets
    ANY LEFT JOIN
    (
        SELECT anonymous_customer_id AS raw_id, tupleElement(argMinMerge(link), 1) AS user_id
        FROM identity_links
        WHERE anonymous_customer_id IN @raw
        GROUP BY anonymous_customer_id
    ) AS links USING raw_id
    GROUP BY customer_id
    HAVING customer_id IN @ids
) AS activity
ANY LEFT JOIN
(
    SELECT customer_id,
           arraySort(groupArray((attribute, value))) AS pairs,
           arrayMap(p -> tupleElement(p, 1), pairs) AS attribute_names,
           arrayMap(p -> tupleElement(p, 2), pairs) AS attribute_values
    FROM
    (
        SELECT customer_id, attribute, tupleElement(chosen, 1) AS value
        FROM
        (
            SELECT customer_id, attribute, if(set_once = 1, f, l) AS chosen
            FROM
            (
                SELECT if(user_id != '', user_id, raw_id) AS customer_id, attribute,
                       argMaxMerge(last_value) AS l, argMinMerge(first_value) AS f
                FROM
                (
                    SELECT customer_id AS raw_id, attribute, last_value, first_value
                    FROM customer_attributes
                    WHERE customer_id IN @raw
                ) AS attrs
                ANY LEFT JOIN
                (
                    SELECT anonymous_customer_id AS raw_id, tupleElement(argMinMerge(link), 1) AS user_id
                    FROM identity_links
                    WHERE anonymous_customer_id IN @raw
                    GROUP BY anonymous_customer_id
                ) AS links USING raw_id
                GROUP BY customer_id, attribute
                HAVING customer_id IN @ids
            ) AS resolved
            ALL INNER JOIN
            (
                SELECT attribute, set_once FROM attribute_catalog FINAL WHERE active = 1
            ) AS catalog USING attribute
        ) AS latest
        WHERE tupleElement(chosen, 2) = 0
    ) AS attribute_rows
    GROUP BY customer_id
) AS attrs USING customer_id;
