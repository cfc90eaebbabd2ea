-- mv_customer_touches_partition replaces mv_customer_touches.
DROP TABLE IF EXISTS mv_customer_touches
