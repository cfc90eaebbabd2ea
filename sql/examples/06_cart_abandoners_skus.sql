-- Who is a cart abandoner right now, since when, and what was the last item
-- each put in the cart?
SELECT customer_id, entered_at, last_sku
FROM
(
    SELECT customer_id, entered_at FROM audience_members WHERE audience_id = 'cart_abandoners'
)
ANY LEFT JOIN
(
    SELECT
        if(user_id != '', user_id, raw_id) AS customer_id,
        argMax(visitParamExtractString(properties, 'sku'), event_time_ms) AS last_sku
    FROM
    (
        SELECT customer_id AS raw_id, properties, event_time_ms
        FROM events_unique
        WHERE type = 'track' AND event = 'add_to_cart'
    )
    ANY LEFT JOIN
    (
        SELECT anonymous_customer_id AS raw_id, customer_id AS user_id FROM customer_identity
    ) USING raw_id
    GROUP BY customer_id
) USING customer_id
ORDER BY customer_id
