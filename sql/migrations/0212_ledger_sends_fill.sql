-- Fills ledger_sends with the deliveries recorded before ledger_sends_mv
-- existed. A row written meanwhile is copied twice, which readers group
-- away.
INSERT INTO ledger_sends (derived_at_ms, campaign_id, key, qualified_event_time_ms, sent_at_ms, lane)
SELECT derived_at_ms, campaign_id, cityHash64(ledger_key), qualified_event_time_ms, sent_at_ms, lane
FROM send_ledger
WHERE sent_at_ms > 0
