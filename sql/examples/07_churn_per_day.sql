-- How many customers entered and left each audience per day of event time,
-- and how many of the exits were time-driven (a window ended)?
SELECT
    audience_id,
    toDate(event_time) AS day,
    countIf(kind = 'entered') AS entered,
    countIf(kind = 'exited') AS exited,
    countIf(kind = 'exited' AND cause = 'time') AS expired
FROM membership_transitions
GROUP BY audience_id, day
ORDER BY audience_id, day
