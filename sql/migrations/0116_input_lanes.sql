-- input_lanes: which lane has carried which kind of input, so each audience
-- waits only for the watermarks of the lanes that can change it. A row per
-- (lane, type, event) for track and page events, (lane, 'traits', '') for
-- lanes that carried traits (identify traits or a track or page
-- context.traits), and (lane, 'context', '') for lanes that carried a context
-- value kept as an attribute (campaign, page, device). Tiny: one row per distinct combination after merges.
CREATE TABLE IF NOT EXISTS input_lanes (
    lane          String COMMENT 'lane that carried it',
    input_type    String COMMENT 'track | page | traits | context',
    input_event   String COMMENT 'event name ('''' for traits)',
    first_seen_ms UInt64 COMMENT 'ingest time of a message that carried it, epoch ms'
) ENGINE = ReplacingMergeTree()
ORDER BY (input_type, input_event, lane)
