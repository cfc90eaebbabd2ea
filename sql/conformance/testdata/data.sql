-- The fixed data set of the conformance test, loaded the same way into
-- ClickHouse 18.16 and into current ClickHouse after the migrations and the
-- audience views (materialize/testdata/explain/views.sql). Events go in
-- through `events`, so every materialized view fills its tables as in
-- production; the tables the evaluator, the poller and backfill write are
-- filled directly. Times lie between 2026-11-02 10:00 and 16:00 UTC, the
-- window the plugin's query goldens ask for. Statements end with ';' at the
-- end of a line.

-- 600 events: 23 users and 11 anonymous visitors, identifies (some linking
-- an anonymous id), tracks and pages, over six hours on two lanes.
INSERT INTO events (message_id, type, customer_id, user_id, anonymous_id, event, properties, traits, event_time, event_time_ms, sent_at_ms, received_at_ms, ingest_time_ms, source, lane, kafka_topic, kafka_partition, kafka_offset)
SELECT
    concat('m', toString(number)) AS message_id,
    ['identify', 'track', 'track', 'page', 'track', 'identify', 'track'][number % 7 + 1] AS type,
    if(number % 9 = 4 AND type = 'track', concat('anon:a', toString(number % 11)), concat('u', toString(number % 23))) AS customer_id,
    if(startsWith(customer_id, 'anon:'), '', customer_id) AS user_id,
    if(startsWith(customer_id, 'anon:'), substring(customer_id, 6), if(type = 'identify' AND number % 3 = 0, concat('a', toString(number % 11)), '')) AS anonymous_id,
    if(type = 'identify', '', if(type = 'page', ['Pricing', 'Home'][number % 2 + 1], ['purchase', 'add_to_cart', 'signup', 'page_view', 'Order Completed (v2)'][number % 5 + 1])) AS event,
    if(type = 'track', concat('{"amount":', toString(number % 170), ',"currency":"', ['USD', 'EUR'][number % 2 + 1], '","sku":"A-', toString(number % 13), '","total":', toString(number % 90), if(number % 4 = 0, ',"coupon":"50% off \'today\'"', ''), ',"source":"', ['ads', 'mail', 'direct'][number % 3 + 1], '"}'), '{}') AS properties,
    if(type = 'identify', concat('{"plan":', ['"gold"', '"silver"', 'null', '"gold"', '"free"'][number % 5 + 1], ',"country":"', ['DE', 'FR', 'US'][number % 3 + 1], '","age":', toString(18 + number % 50), ',"email":"u', toString(number % 23), '@example.org","first_source":"', ['ads', 'mail'][number % 2 + 1], '","score":', toString(number % 100), ',"vip":', ['true', 'false'][number % 2 + 1], ',"nickname":"o\'brien"}'), '{}') AS traits,
    toDateTime(intDiv(event_time_ms, 1000)) AS event_time,
    1793613600000 + number * 35971 AS event_time_ms,
    event_time_ms + 50 AS sent_at_ms,
    event_time_ms + 90 AS received_at_ms,
    event_time_ms + 400 + (number % 17) * 1000 AS ingest_time_ms,
    ['website', 'backend'][number % 2 + 1] AS source,
    ['web', 'server'][number % 2 + 1] AS lane,
    concat('events.', lane) AS kafka_topic,
    toInt32(number % 4) AS kafka_partition,
    -- one message per position, as Kafka has it: (lane, partition) follows number % 4
    toInt64(intDiv(number, 4)) AS kafka_offset
FROM numbers(600);

-- a redelivered slice: the same messages again, which nothing may count twice
INSERT INTO events (message_id, type, customer_id, user_id, anonymous_id, event, properties, traits, event_time, event_time_ms, sent_at_ms, received_at_ms, ingest_time_ms, source, lane, kafka_topic, kafka_partition, kafka_offset)
SELECT message_id, type, customer_id, user_id, anonymous_id, event, properties, traits, event_time, event_time_ms, sent_at_ms, received_at_ms, ingest_time_ms, source, lane, kafka_topic, kafka_partition, kafka_offset
FROM events WHERE event_time_ms < 1793613600000 + 40 * 35971;

INSERT INTO attribute_catalog (attribute, set_once, view_name, active, applied_at_ms)
SELECT a, toUInt8(a = 'first_source'), 'mv_attributes_52d261f00f', toUInt8(1), 1793613000000
FROM system.one ARRAY JOIN ['age', 'country', 'email', 'first_source', 'nickname', 'plan', 'score', 'vip'] AS a;

INSERT INTO audiences (audience_id, name, definition, condition_sql, version, active, applied_at_ms)
SELECT id, concat('audience ', id), '', '', 'v1', toUInt8(id != 'retired'), 1793613000000
FROM system.one ARRAY JOIN ['gold_repeat_buyers', 'gold', 'silver', 'cart_abandoners', 'retired'] AS id;

INSERT INTO campaigns (campaign_id, name, definition, version, active, applied_at_ms)
SELECT id, concat('campaign ', id), '', 'v1', toUInt8(1), 1793613000000
FROM system.one ARRAY JOIN ['welcome_gold', 'welcome', 'cart_reminder', 'big_purchase_thanks'] AS id;

-- entries and exits with their membership rows: every customer enters one
-- audience, a third of them leave again.
INSERT INTO audience_transitions (audience_id, customer_id, episode, kind, event_time_ms, ingest_time_ms, derived_at_ms, message_id, lane, derived_at)
SELECT
    ['gold_repeat_buyers', 'gold', 'silver', 'cart_abandoners', 'retired'][number % 5 + 1] AS audience_id,
    concat('u', toString(number % 23)) AS customer_id,
    toUInt32(intDiv(number, 23) + 1) AS episode,
    if(number % 3 = 2, 'exited', 'entered') AS kind,
    1793613600000 + number * 179000 AS event_time_ms,
    if(number % 6 = 5, toUInt64(0), event_time_ms + 700 + (number % 5) * 900) AS ingest_time_ms,
    event_time_ms + 2500 + (number % 7) * 1300 AS derived_at_ms,
    if(number % 6 = 5, '', concat('m', toString(number))) AS message_id,
    ['web', 'server'][number % 2 + 1] AS lane,
    toDateTime(intDiv(derived_at_ms, 1000)) AS derived_at
FROM numbers(120);

INSERT INTO audience_membership (audience_id, customer_id, member, episode, changed_event_time_ms, changed_ingest_time_ms, derived_at_ms, updated_at_ms)
SELECT audience_id, customer_id, toUInt8(kind = 'entered'), episode, event_time_ms, ingest_time_ms, derived_at_ms, derived_at_ms
FROM audience_transitions;

INSERT INTO send_ledger (ledger_key, campaign_id, customer_id, audience_id, episode, decision, reason, qualified_event_time_ms, qualified_ingest_time_ms, derived_at_ms, detected_at_ms, sent_at_ms, delivery_state, attempts, last_error, origin, lane, updated_at_ms, detected_at)
SELECT
    concat('msg_', toString(number)) AS ledger_key,
    ['welcome_gold', 'welcome', 'cart_reminder', 'big_purchase_thanks'][number % 4 + 1] AS campaign_id,
    concat('u', toString(number % 23)) AS customer_id,
    'gold_repeat_buyers' AS audience_id,
    toString(number % 3 + 1) AS episode,
    ['fire', 'fire_late', 'skip', 'fire'][number % 4 + 1] AS decision,
    ['fresh', 'late', 'stale', 'fresh'][number % 4 + 1] AS reason,
    1793613600000 + number * 263000 AS qualified_event_time_ms,
    qualified_event_time_ms + 800 AS qualified_ingest_time_ms,
    qualified_event_time_ms + 3000 AS derived_at_ms,
    qualified_event_time_ms + 3500 + (number % 9) * 700 AS detected_at_ms,
    if(decision = 'skip' OR number % 5 = 4, toUInt64(0), detected_at_ms + 200 + (number % 4) * 50) AS sent_at_ms,
    if(decision = 'skip', 'skipped', ['delivered', 'failed', 'dead', 'disabled', 'pending', 'delivered'][number % 6 + 1]) AS delivery_state,
    toUInt32(number % 4) AS attempts,
    if(delivery_state IN ('failed', 'dead'), '503 Service Unavailable', '') AS last_error,
    ['poller', 'backfill'][number % 2 + 1] AS origin,
    ['web', 'server'][number % 2 + 1] AS lane,
    detected_at_ms + 1000 AS updated_at_ms,
    toDateTime(intDiv(detected_at_ms, 1000)) AS detected_at
FROM numbers(80);

-- The live evaluator's position: a backfill plan's replay evaluates as of it.
INSERT INTO evaluator_state (evaluator, touch_cursor, as_of_ms, audiences_signature, updated_at_ms)
VALUES ('default', toDateTime('2026-11-02 15:59:00', 'UTC'), 1793635140000, '', 1793635200000);

INSERT INTO loader_progress (lane, kafka_topic, kafka_partition, committed_offset, high_watermark, watermark_ms, updated_at_ms)
SELECT ['web', 'server', 'backfill'][intDiv(number, 4) + 1] AS lane, concat('events.', lane), toInt32(number % 4) AS p, toInt64(150 + p), toInt64(155 + p), toUInt64(1793635200000 - p * 1000), toUInt64(1793635201000)
FROM numbers(12);

INSERT INTO dead_letters (kafka_topic, kafka_partition, kafka_offset, lane, reason, field, raw, received_at_ms, received_at)
SELECT 'events.dlq', toInt32(number % 2), toInt64(number), ['web', 'server'][number % 2 + 1], ['missing_field', 'bad_json'][number % 2 + 1], 'messageId', '{"userId":"u1"}', 1793613600000 + number * 600000, toDateTime(1793613600 + number * 600)
FROM numbers(20);

INSERT INTO backfill_runs (run_id, plan_id, kind, state, phase, who, host, pid, command, source, lanes, campaigns, window_from_ms, window_to_ms, started_at_ms, finished_at_ms, events_in_window, events_missing, events_late, events_reingested, events_restored, customers_stale, customers_rederived, qualifications, fired, fired_late, skipped, error, updated_at_ms)
SELECT concat('run', toString(number)), concat('plan', toString(intDiv(number, 2))), ['plan', 'apply'][number % 2 + 1], ['done', 'running', 'failed'][number % 3 + 1], 'reingest', 'ops', 'host1', toUInt32(100 + number), 'tideline backfill', 'kafka', 'web,server', '', 1793613600000, 1793620800000, 1793613600000 + number * 1800000, if(number % 3 = 1, toUInt64(0), 1793613600000 + number * 1800000 + 60000), toUInt64(1000), toUInt64(10 * number), toUInt64(3), toUInt64(5 * number), toUInt64(0), toUInt64(number), toUInt64(number), toUInt64(4), toUInt64(2), toUInt64(1), toUInt64(1), '', 1793613600000 + number * 1800000 + 60000
FROM numbers(8);

-- the evaluator's batch: raw ids (an anonymous id among them), the
-- customer each belongs to, and when its history started to count for it
CREATE TABLE batch (member_id String, customer_id String, linked_ms UInt64) ENGINE = Memory;

INSERT INTO batch (member_id, customer_id, linked_ms)
SELECT m, c, if(m = 'anon:a3', toUInt64(1793620800000), toUInt64(0)) FROM system.one ARRAY JOIN ['u0', 'u1', 'u2', 'u3', 'u5', 'u8', 'u13', 'anon:a3', 'anon:a7'] AS m, ['u0', 'u1', 'u2', 'u3', 'u5', 'u8', 'u13', 'u3', 'anon:a7'] AS c;

-- the moments to evaluate each customer at: the evaluation time and the
-- previous one (t), eager attributes as of the evaluation time (te)
CREATE TABLE times (customer_id String, t UInt64, te UInt64) ENGINE = Memory;

INSERT INTO times (customer_id, t, te)
SELECT DISTINCT customer_id, t, toUInt64(1793635200000) FROM batch ARRAY JOIN [toUInt64(1793635200000), toUInt64(1793631600000)] AS t;
