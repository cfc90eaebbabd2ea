-- audience_entry_times_mv copied re-dated entries too; 0170 replaces it.
DROP TABLE IF EXISTS audience_entry_times_mv
