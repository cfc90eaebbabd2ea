-- Which anonymous visitors later logged in, as whom, and how long after
-- their first anonymous event?
SELECT
    anonymous_customer_id,
    customer_id,
    linked_at,
    intDiv(linked_event_time_ms - first_anonymous_ms, 1000) AS seconds_anonymous
FROM customer_identity
ANY INNER JOIN
(
    SELECT customer_id AS anonymous_customer_id, minMerge(first_seen_ms) AS first_anonymous_ms
    FROM customer_event_buckets
    WHERE customer_id LIKE 'anon:%'
    GROUP BY customer_id
) USING anonymous_customer_id
ORDER BY anonymous_customer_id
