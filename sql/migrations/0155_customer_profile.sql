-- customer_profile: one row per resolved customer: its anonymous ids, when
-- it was first and last seen, how many distinct events it sent, and its
-- current attributes as parallel arrays sorted by name. Read one attribute with
-- attribute_values[indexOf(attribute_names, 'plan')].
CREATE VIEW IF NOT EXISTS customer_profile AS
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
        GROUP BY customer_id
    ) AS buckets
    ANY LEFT JOIN
    (
        SELECT anonymous_customer_id AS raw_id, tupleElement(argMinMerge(link), 1) AS user_id
        FROM identity_links
        GROUP BY anonymous_customer_id
    ) AS links USING raw_id
    GROUP BY customer_id
) AS activity
ANY LEFT JOIN
(
    SELECT customer_id,
           arraySort(groupArray((attribute, value))) AS pairs,
           arrayMap(p -> tupleElement(p, 1), pairs) AS attribute_names,
           arrayMap(p -> tupleElement(p, 2), pairs) AS attribute_values
    FROM customer_attributes_current
    GROUP BY customer_id
) AS attrs USING customer_id
