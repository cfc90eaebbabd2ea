-- audience_transition_keys_mv copied re-dated rows too, which put a
-- transition in two time buckets; 0168 replaces it.
DROP TABLE IF EXISTS audience_transition_keys_mv
