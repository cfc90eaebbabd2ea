-- Which customers entered gold_repeat_buyers yesterday, and how long did each
-- take to qualify: from their first event (anonymous browsing included) to
-- the event that qualified them, and from that event to tideline deriving it?
SELECT
    customer_id,
    event_time AS qualified_at,
    first_seen,
    intDiv(event_time_ms - first_seen_ms, 1000) AS seconds_to_qualify,
    qualification_latency_ms
FROM
(
    SELECT customer_id, event_time, event_time_ms, qualification_latency_ms
    FROM membership_transitions
    WHERE audience_id = 'gold_repeat_buyers' AND kind = 'entered' AND toDate(event_time) = yesterday()
)
ANY LEFT JOIN
(
    SELECT customer_id, first_seen, first_seen_ms FROM customer_profile
) USING customer_id
ORDER BY qualified_at, customer_id
