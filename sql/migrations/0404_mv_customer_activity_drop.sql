-- customer_activity_seconds replaces customer_activity: its view goes.
DROP TABLE IF EXISTS mv_customer_activity
