-- kafka_partition says which partition the touching row was consumed from,
-- so the evaluator can tell a touch whose insert has certainly finished
-- (the partition's loader_progress was written after it) from one whose
-- insert may still be filling the views; -1 when unknown.
ALTER TABLE customer_touches ADD COLUMN kafka_partition Int32 DEFAULT -1 COMMENT 'partition the touching row was consumed from (the original one on the backfill lane); -1 when unknown'
