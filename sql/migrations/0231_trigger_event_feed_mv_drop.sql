-- trigger_event_feed_mv does not select the feed's context columns, and a
-- view must select every column of its TO table; 0232 replaces it.
DROP TABLE IF EXISTS trigger_event_feed_mv
