-- audience_size_history: per active audience and hour of event time, the
-- entries, the exits and the size at the end of the hour (a running sum of
-- entries minus exits). Hours without transitions are left out.
CREATE VIEW IF NOT EXISTS audience_size_history AS
SELECT
    audience_id,
    tupleElement(x, 1) AS hour,
    tupleElement(x, 2) AS entered,
    tupleElement(x, 3) AS exited,
    size
FROM
(
    SELECT
        audience_id,
        arraySort(h -> tupleElement(h, 1), groupArray((hour, entered, exited))) AS hours,
        arrayCumSum(arrayMap(h -> toInt64(tupleElement(h, 2)) - toInt64(tupleElement(h, 3)), hours)) AS sizes
    FROM
    (
        SELECT
            audience_id,
            toStartOfHour(toDateTime(intDiv(event_time_ms, 1000))) AS hour,
            countIf(kind = 'entered') AS entered,
            countIf(kind = 'exited') AS exited
        FROM audience_transitions FINAL
        WHERE audience_id IN (SELECT audience_id FROM audiences FINAL WHERE active = 1)
        GROUP BY audience_id, hour
    )
    GROUP BY audience_id
)
ARRAY JOIN hours AS x, sizes AS size
