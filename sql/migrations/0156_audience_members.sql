-- audience_members: the current members of every active audience, with the
-- event that made them enter (event time, ingest time) and when tideline
-- derived it. The audiences side of the join has one row per audience
-- (FINAL), so ALL INNER JOIN keeps every member: ANY INNER JOIN would keep
-- one per audience on ClickHouse 20.x and later.
CREATE VIEW IF NOT EXISTS audience_members AS
SELECT
    audience_id,
    audience_name,
    customer_id,
    episode,
    entered_event_time_ms,
    toDateTime(intDiv(entered_event_time_ms, 1000)) AS entered_at,
    entered_ingest_time_ms,
    derived_at_ms,
    toDateTime(intDiv(derived_at_ms, 1000)) AS derived_at
FROM
(
    SELECT
        audience_id,
        customer_id,
        argMax(member, updated_at_ms) AS member,
        argMax(episode, updated_at_ms) AS episode,
        argMax(changed_event_time_ms, updated_at_ms) AS entered_event_time_ms,
        argMax(changed_ingest_time_ms, updated_at_ms) AS entered_ingest_time_ms,
        argMax(derived_at_ms, updated_at_ms) AS derived_at_ms
    FROM audience_membership
    GROUP BY audience_id, customer_id
) AS membership
ALL INNER JOIN
(
    SELECT audience_id, name AS audience_name FROM audiences FINAL WHERE active = 1
) AS active USING audience_id
WHERE member = 1
