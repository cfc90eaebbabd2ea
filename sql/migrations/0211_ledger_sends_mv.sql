-- ledger_sends_mv copies every ledger row that records a delivery into
-- ledger_sends.
CREATE MATERIALIZED VIEW IF NOT EXISTS ledger_sends_mv TO ledger_sends AS
SELECT derived_at_ms, campaign_id, cityHash64(ledger_key) AS key, qualified_event_time_ms, sent_at_ms, lane
FROM send_ledger
WHERE sent_at_ms > 0
