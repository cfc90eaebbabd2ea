-- customer_identity: the user each linked anonymous id belongs to (the
-- earliest identify claiming it, by event time then message id). Events of
-- an anonymous id count for its user in every resolved view.
CREATE VIEW IF NOT EXISTS customer_identity AS
SELECT
    anonymous_customer_id,
    tupleElement(l, 1) AS customer_id,
    tupleElement(l, 2) AS linked_event_time_ms,
    toDateTime(intDiv(tupleElement(l, 2), 1000)) AS linked_at,
    tupleElement(l, 3) AS linked_message_id
FROM
(
    SELECT anonymous_customer_id, argMinMerge(link) AS l
    FROM identity_links
    GROUP BY anonymous_customer_id
)
