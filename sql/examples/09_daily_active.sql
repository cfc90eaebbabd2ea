-- How many distinct customers were active per day and lane over the last
-- 7 days (anonymous activity counted for the user who later logged in)?
SELECT day, lane, uniqExact(if(user_id != '', user_id, customer_id)) AS customers, count() AS events
FROM
(
    SELECT customer_id, lane, toDate(event_time) AS day
    FROM events_unique
    WHERE event_time >= now() - 7 * 86400
)
ANY LEFT JOIN
(
    SELECT anonymous_customer_id AS customer_id, customer_id AS user_id FROM customer_identity
) USING customer_id
GROUP BY day, lane
ORDER BY day, lane
