-- customer_activity_seconds replaces customer_activity: its traits view goes.
DROP TABLE IF EXISTS mv_customer_trait_activity
