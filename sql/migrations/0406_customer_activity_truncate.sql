-- customer_activity is no longer written or read (customer_activity_seconds
-- replaced it). The table stays, empty, because migration 0120 fills it and
-- must still run when migrations are run again.
TRUNCATE TABLE IF EXISTS customer_activity
