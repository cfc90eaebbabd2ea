-- redated marks a row that dates an existing transition again: late data
-- moved the moment its condition became true. The newest row of a key
-- (FINAL, or argMax by derived_at_ms) holds the true date; the dashboards'
-- narrow copies keep the first date, so a transition is counted once, in one
-- time bucket.
ALTER TABLE audience_transitions ADD COLUMN redated UInt8 DEFAULT 0 COMMENT '1 when the row dates an existing transition again (late data moved it); the first row of a key has 0'
