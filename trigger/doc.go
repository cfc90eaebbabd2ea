// Package trigger fires campaigns when customers qualify: the poller reads
// audience transitions and matching events past durable cursors, decides
// each qualification (fire, fire late, defer to the end of quiet hours,
// skip as stale, capped, capped across campaigns, suppressed, without
// consent, not re-eligible or converted) with the pure function Decide,
// records the decision in the send ledger, and delivers the fires as
// Standard Webhooks (and optionally to a Kafka topic) with retries, a
// dead-letter table and `tideline trigger redeliver`.
//
// # Reading
//
// Transitions and named events are copied by materialized views into two
// feed tables ordered by the time they became visible (derived_at_ms,
// ingest_time_ms), so a poll is a primary-key range read. The poller reads
// past a keyset position (position, then the row's key columns: thousands
// of rows share one position when a batch is stamped at once). Rows can
// become visible after rows with a later position, so each poll also counts
// the rows of the overlap window behind the position and re-reads the
// window when ClickHouse holds rows the poller has not seen. Positions are
// saved per customer shard every second; a restart reads again from the
// saved position less the overlap, and the ledger makes that harmless.
//
// # One ledger entry per qualification
//
// ClickHouse has no transactions and no unique constraints, so uniqueness
// rests on three things:
//
//   - The key is deterministic. The ledger key, which is also the webhook id,
//     is a hash of (campaign, customer, episode). Whoever records a
//     qualification, and however often, writes the same key; the ledger is a
//     ReplacingMergeTree on it, so rows for one key are versions of one entry,
//     never two entries, and the webhook id on the wire is always the same.
//
//   - The decision is sticky. Before deciding, the poller reads the ledger
//     for the batch's customers; a qualification that already has an entry
//     keeps its decision, and every later row of the entry (delivery
//     progress) copies it. The payload and the ledger row are written
//     together, then the delivery starts, then the position is saved: a crash
//     before the ledger row landed leaves nothing visible (the qualification
//     is read again and decided afresh); a crash after it leaves an entry
//     whose decision the restarted poller reuses and whose open delivery it
//     sends again with the stored body and the same id (an entry whose
//     payload did not land gets one built and stored before its first send,
//     so every send of an id carries the same body). A SIGKILL at any point
//     therefore yields neither a second entry nor a webhook under another
//     id; it may yield a repeated webhook under the same id, which Standard
//     Webhooks receivers dedupe.
//
//   - One writer per customer. Decisions that depend on a customer's other
//     entries (re-eligibility, frequency caps) need that no one else decides
//     for the same customer at the same time. Customers are split into
//     shards by cityHash64(customer_id); with sharding "group", the shards
//     are the partitions of a small coordination topic and the pollers are a
//     Kafka consumer group on it, so the group protocol assigns each shard to
//     one poller. A rebalance waits for the poll in progress (the callbacks
//     take the lock a poll holds), and a poller taking shards over first
//     waits for ledger inserts still running on the server, so its
//     predecessor's last rows are visible before it reads. A poller that
//     stalls past its session timeout while still writing (a zombie) is the
//     one case this cannot fence; its rows then share keys with the new
//     owner's and the newest version wins, but never a second entry.
//
// # Negative conditions
//
// A campaign with an unless condition ("started checkout and did not buy
// within 1h") holds each qualification until the lane watermarks (every
// event received before T is loaded) pass the end of its window, so a
// backlog can delay the decision but never make it wrong. Held
// qualifications keep the saved position behind them.
//
// # Delivery
//
// Each destination has its own queue and bounded workers; retries wait on
// timers with exponential backoff and jitter, or the server's Retry-After
// when longer; a 410 disables the destination (recorded, so it stays
// disabled across restarts); exhausted deliveries go to
// trigger_dead_letters with the last error. The ledger is the durable
// queue: an entry in state pending or failed is delivered by whichever
// poller owns its customer, including entries the backfill records.
//
// # Campaign safety
//
// The controls that keep a post-incident release from harming customers
// are part of Decide, so live fires and backfilled ones meet the same rules
// and `campaigns explain` and `backfill plan` can show them: consent,
// suppression, global caps (by event time, over the customer's fires of
// every campaign, which one writer per customer makes exact) and quiet
// hours in the customer's time zone. A deferred fire is a ledger entry in
// state deferred whose release time is written beside it first
// (send_ledger_controls); the open-delivery scan offers it once the time
// has passed, and its delivery row ends the deferral, so it is sent once.
// What Decide cannot know — a suppression added while a fire waits — is
// checked again when an open entry is picked up and before each attempt.
// A per-destination throttle paces the workers; the in-memory queue is
// bounded and the scan offers no more than it takes, so the rest of a
// release waits in the ledger.
package trigger
