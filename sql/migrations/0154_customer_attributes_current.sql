-- customer_attributes_current: one row per resolved customer and maintained
-- attribute that has a value: the latest by event time (or the first, for
-- set_once attributes), with when and by which message it was set.
-- Unset attributes (the last value was null) are left out. The catalog side
-- of the join has one row per attribute (FINAL), so ALL INNER JOIN keeps
-- every customer: ANY INNER JOIN would keep one row per attribute on
-- ClickHouse 20.x and later, which match each right row at most once.
CREATE VIEW IF NOT EXISTS customer_attributes_current AS
SELECT
    customer_id,
    attribute,
    tupleElement(chosen, 1) AS value,
    tupleElement(chosen, 3) AS event_time_ms,
    toDateTime(intDiv(tupleElement(chosen, 3), 1000)) AS event_time,
    tupleElement(chosen, 4) AS ingest_time_ms,
    tupleElement(chosen, 5) AS message_id,
    set_once
FROM
(
    SELECT customer_id, attribute, if(set_once = 1, f, l) AS chosen, set_once
    FROM
    (
        SELECT if(user_id != '', user_id, raw_id) AS customer_id, attribute,
               argMaxMerge(last_value) AS l, argMinMerge(first_value) AS f
        FROM
        (
            SELECT customer_id AS raw_id, attribute, last_value, first_value
            FROM customer_attributes
        ) AS attrs
        ANY LEFT JOIN
        (
            SELECT anonymous_customer_id AS raw_id, tupleElement(argMinMerge(link), 1) AS user_id
            FROM identity_links
            GROUP BY anonymous_customer_id
        ) AS links USING raw_id
        GROUP BY customer_id, attribute
    ) AS resolved
    ALL INNER JOIN
    (
        SELECT attribute, set_once FROM attribute_catalog FINAL WHERE active = 1
    ) AS catalog USING attribute
)
WHERE tupleElement(chosen, 2) = 0
