// Package materialize keeps every customer's attributes, event aggregates
// and audience membership current in ClickHouse, exact under late,
// duplicated and reordered events.
//
// # The picture
//
// Materialized views on events keep per-customer state: attributes
// (customer_attributes, one view per maintained attribute), hourly event
// aggregates (customer_event_buckets), the occurrences of each signal an
// audience counts or sums (customer_signals, one view per signal), identity
// links (identity_links, identity_claims), an index of who was active in
// which second (customer_activity_seconds) and a log of touched customers
// (customer_touches). A view sees only the block being inserted, so it
// cannot know a customer's previous membership: the Evaluator does that
// part. Each pass it reads the customers touched since its cursor, plus
// those whose windows the advancing watermark can change, evaluates the
// compiled audience conditions for them only, compares with
// audience_membership and writes entered / exited rows to
// audience_transitions. Audiences are YAML files compiled to SQL
// (Compile, Plan.Explain) and installed by Apply.
//
// # Semantics
//
// Attributes are last-write-wins by event time: the value with the greatest
// (event_time_ms, message_id) wins, so a late older event never overwrites a
// newer one and ties break the same way everywhere. A JSON null unsets an
// attribute. Attributes listed in materialize.set_once keep their first
// non-null value instead. Each value carries its event time, ingest time and
// message id; a redelivered message ranks by its first delivery, so a
// replay leaves even the ingest time unchanged. Identify traits and a track
// or page event's context.traits both set attributes.
//
// Event aggregates and signals are idempotent under redelivery by
// construction: counts are uniqExact over message ids, first/last seen are
// min/max, and signal occurrences are sets of (event time, message id,
// value), so a message delivered twice is one element. Keeping event times
// lets windows be exact: "performed X at least N times within W" counts
// distinct messages with event time in (T - W, T]; sums add the property's
// value (0 when it is not a number) over distinct messages.
//
// Conditions are evaluated as of T, the smallest watermark of the lanes in
// materialize.lanes (web and server: "every event received before T is
// loaded"; backfill is left out as it is behind by design). Events with an
// event time after T are ignored until T passes them, so a lagging lane
// holds back every window, and a "did not do X within W" condition can
// never fire because X is still queued. Attributes and identity links are
// the latest loaded values, not values as of T.
//
// Which changes need what: attribute values, aggregates and signals are
// maintained by views as events arrive. Entries and exits caused by an
// event are found through customer_touches (each touch is looked at twice:
// when first seen, and once its insert has certainly finished filling every
// view). Time-driven changes — an event sliding out of a window, which can
// end a positive condition or satisfy a negative one — are found through
// customer_activity_seconds: when T moves from T1 to T2 only customers with a
// relevant event in (T1 - W, T2 - W] can change. A changed audience
// definition (and the first pass) re-evaluates every customer.
//
// Transitions carry the event that caused them: its event time, the ingest
// time of its first delivery, its message id and lane. A time-driven
// transition has no message; its event time is the moment the window ended.
// Each (audience, customer, episode, kind) is written once: a replay finds
// the membership unchanged and writes nothing, and a pass repeated after a
// crash rewrites the same keys, which the ReplacingMergeTree collapses.
//
// # Identity
//
// An identify carrying both userId and anonymousId links the anonymous id
// (customer id anon:<anonymousId>) to the user. A customer is a user with
// every anonymous id linked to it, or an anonymous id nobody claimed: the
// anonymous history (events, attributes) counts for the user from then on,
// in membership and in the analyst views, and the anonymous id itself
// leaves every audience it was in (an exit caused by the identify). When
// several users claim one anonymous id, the earliest claim by (event time,
// message id) wins whatever order they arrive in; a late earlier claim moves
// the history and both users are re-evaluated. Limits: users are never
// merged with each other, links are never undone, track and page events
// with both ids do not link (only identify does), and a userId that itself
// starts with "anon:" would collide with the anonymous namespace.
//
// # Why a view per attribute
//
// ClickHouse 18.16 has no Map type and no JSONExtractKeys, so a view cannot
// enumerate a JSON object's keys. The alternatives were (a) one view per
// attribute that is declared (materialize.attributes) or read by an audience,
// using visitParamHas / visitParamExtractRaw, or (b) having the loader decode
// traits in Go and insert a second, long table of (customer, key, value).
// (a) is used: the loader keeps one columnar insert per batch and knows
// nothing about attributes, and adding an attribute is `tideline audiences
// apply`, which creates its view and backfills it from the events already
// loaded. The visitParam functions expect compact JSON (the collector
// re-encodes traits and properties, so they are) and find a key at any
// depth: a nested object with a key of the same name would be read instead
// of a later top-level one. Keys containing quotes or backslashes cannot be
// matched and are rejected in definitions.
package materialize
