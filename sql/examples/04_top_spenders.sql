-- Who spent the most over the last 30 days (anonymous purchases counted for
-- the user who later logged in), and which plan are they on?
SELECT customer_id, spent, purchases, plan
FROM
(
    SELECT
        if(user_id != '', user_id, raw_id) AS customer_id,
        sum(toFloat64OrZero(if(substring(visitParamExtractRaw(properties, 'amount'), 1, 1) = '"',
            visitParamExtractString(properties, 'amount'), visitParamExtractRaw(properties, 'amount')))) AS spent,
        count() AS purchases
    FROM
    (
        SELECT customer_id AS raw_id, properties
        FROM events_unique
        WHERE type = 'track' AND event = 'purchase' AND event_time >= now() - 30 * 86400
    )
    ANY LEFT JOIN
    (
        SELECT anonymous_customer_id AS raw_id, customer_id AS user_id FROM customer_identity
    ) USING raw_id
    GROUP BY customer_id
)
ANY LEFT JOIN
(
    SELECT customer_id, value AS plan FROM customer_attributes_current WHERE attribute = 'plan'
) USING customer_id
ORDER BY spent DESC, customer_id
LIMIT 10
