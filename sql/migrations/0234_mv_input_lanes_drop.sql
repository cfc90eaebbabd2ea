-- mv_input_lanes counted track and page events only; 0233's
-- mv_input_lanes_calls counts screen and group calls too.
DROP TABLE IF EXISTS mv_input_lanes
