-- lane_watermarks: per lane, the watermark every partition of the lane has
-- reached (the minimum), its age, and the committed backlog.
CREATE VIEW IF NOT EXISTS lane_watermarks AS
SELECT
    lane,
    min(p_watermark_ms) AS watermark_ms,
    toDateTime(intDiv(min(p_watermark_ms), 1000)) AS watermark,
    sum(greatest(p_high_watermark - p_committed_offset, 0)) AS consumer_lag,
    max(p_updated_at_ms) AS updated_at_ms
FROM (
    SELECT
        kafka_topic,
        kafka_partition,
        argMax(lane, updated_at_ms) AS lane,
        argMax(watermark_ms, updated_at_ms) AS p_watermark_ms,
        argMax(committed_offset, updated_at_ms) AS p_committed_offset,
        argMax(high_watermark, updated_at_ms) AS p_high_watermark,
        max(updated_at_ms) AS p_updated_at_ms
    FROM loader_progress
    GROUP BY kafka_topic, kafka_partition
)
GROUP BY lane
