package backfill

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/chdb"
)

// StateReplayer compares materialized customer state with a replay of raw
// events, and re-derives it. The materialize package provides one.
type StateReplayer interface {
	// Diff replays the raw events of customers by event time (ClickHouse's,
	// plus the unloaded events given, which are not in ClickHouse yet) and
	// returns where materialized attributes and memberships differ.
	Diff(ctx context.Context, customers []string, unloaded []*ingest.Event) ([]StateDiff, error)
	// Rederive re-evaluates the customers now, writing the memberships and
	// transitions a live evaluation of their raw events would have.
	Rederive(ctx context.Context, customers []string) error
}

// Qualifier finds qualifications without a send-ledger entry and decides
// them through the trigger's decision function and ledger.
// CampaignQualifier is the implementation over the trigger package.
type Qualifier interface {
	// Unledgered returns the qualifications of the window that have no
	// ledger entry, for campaigns (every active campaign when empty), each
	// with the decision its campaign's policy would make at now, and
	// per-campaign counts.
	Unledgered(ctx context.Context, w Window, campaigns []string, now time.Time) ([]Qualification, []CampaignFinding, error)
	// Record decides qs now and writes their ledger entries; qualifications
	// whose key has an entry keep it.
	Record(ctx context.Context, qs []Qualification) (RecordResult, error)
}

// RecordResult is what Record did with each qualification.
type RecordResult struct {
	// Created were decided now; Existing already had an entry (its decision
	// stands); Waiting cannot be decided before the watermarks pass the end
	// of their unless window.
	Created, Existing, Waiting []Qualification
}

// Planner makes plans.
type Planner struct {
	Cfg    Config
	Conn   *chdb.Conn
	Kafka  broker.Config
	Source Source
	// State and Qualifier are optional: without them a plan covers events only.
	State     StateReplayer
	Qualifier Qualifier
	Log       *slog.Logger
	// Progress shows the plan's steps as they run (default none).
	Progress Progress
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// step starts one step of a plan on Progress.
func (p *Planner) step(name, what string, total int64) Bar {
	if p.Progress == nil {
		return nopBar{}
	}
	return p.Progress.Phase(name, what, total)
}

// PlanRequest says what to plan.
type PlanRequest struct {
	Window Window
	// Lanes to cover (default Cfg.Lanes).
	Lanes []string
	// Campaigns restricts qualifications (default all).
	Campaigns []string
	// Command is recorded in backfill_runs.
	Command string
	// Examples bounds the example customers kept (default 10).
	Examples int
}

func (p *Planner) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// laneGroup is the loader's consumer group of a lane: the topic prefix,
// loader.group, a dot and the lane, as the loader names it.
func laneGroup(bc broker.Config, group, lane string) string {
	return bc.TopicPrefix + group + "." + lane
}

// Plan finds what the window is missing and records the plan in
// backfill_runs. It changes nothing else.
func (p *Planner) Plan(ctx context.Context, req PlanRequest) (*Plan, error) {
	if err := req.Window.Validate(); err != nil {
		return nil, err
	}
	lanes := req.Lanes
	if len(lanes) == 0 {
		lanes = p.Cfg.Lanes
	}
	if req.Examples == 0 {
		req.Examples = 10
	}
	start := p.now()
	plan := &Plan{
		Format: planFormat, CreatedAt: start.UTC(), CreatedBy: operatorName(),
		Database: p.Conn.Database, TopicPrefix: p.Kafka.TopicPrefix,
		Window: Window{From: req.Window.From.UTC(), To: req.Window.To.UTC()}, Lanes: lanes, Campaigns: req.Campaigns,
		Source: p.Source.Name(), LateAfterMs: p.Cfg.LateAfter.Milliseconds(),
	}
	laneOf := map[string]string{}
	spans := map[string]map[int32]Range{}
	bar := p.step("offsets", "lanes", int64(len(lanes)))
	for i, lane := range lanes {
		topic, err := p.Kafka.Topic(lane)
		if err != nil {
			return nil, err
		}
		laneOf[topic] = lane
		lf, err := p.lane(ctx, plan, lane, topic)
		if err != nil {
			return nil, err
		}
		spans[topic] = map[int32]Range{}
		for _, pf := range lf.Partitions {
			if pf.Window.Len() > 0 {
				spans[topic][pf.Partition] = pf.Window
			}
		}
		plan.LaneFindings = append(plan.LaneFindings, lf)
		bar.Set(int64(i + 1))
	}
	bar.Done()
	p.log().Info("offsets compared", "took", time.Since(start).Round(time.Millisecond))

	bar = p.step("lateness", "queries", 3)
	lat, err := laneLateness(ctx, p.Conn, spans, plan.LateAfterMs)
	if err != nil {
		return nil, err
	}
	for i := range plan.LaneFindings {
		lf := &plan.LaneFindings[i]
		tl := lat[lf.Topic]
		lf.Late, lf.Lag = tl.late, tl.lag
	}
	bar.Set(1)
	n, stats, examples, err := lateCustomers(ctx, p.Conn, spans, plan.LateAfterMs, req.Examples, laneOf)
	if err != nil {
		return nil, err
	}
	plan.Stale.LateCustomers, plan.Stale.StaleFor, plan.Stale.Examples = n, stats, examples
	bar.Set(2)
	dels, err := windowDeliveries(ctx, p.Conn, spans)
	if err != nil {
		return nil, err
	}
	for i := range plan.LaneFindings {
		lf := &plan.LaneFindings[i]
		lf.Duplicates, lf.Redelivered = dels[lf.Topic][0], dels[lf.Topic][1]
	}
	bar.Set(3)
	bar.Done()
	p.log().Info("lateness measured", "took", time.Since(start).Round(time.Millisecond))

	bar = p.step("missing", "events", 0)
	unloaded, err := p.missingEvents(ctx, plan, laneOf, req.Examples)
	if err != nil {
		return nil, err
	}
	bar.Set(int64(len(unloaded)))
	bar.Done()
	if p.State != nil && p.Cfg.Replay != "off" {
		bar = p.step("replay", "steps", 0)
		if err := p.derived(ctx, plan, spans, unloaded, req.Examples); err != nil {
			return nil, err
		}
		bar.Done()
		p.log().Info("state replayed", "took", time.Since(start).Round(time.Millisecond))
	} else {
		plan.Notes = append(plan.Notes, "derived state was not compared (no replay available)")
	}
	if p.Qualifier != nil {
		bar = p.step("campaigns", "steps", 0)
		pending, camps, err := p.Qualifier.Unledgered(ctx, plan.Window, req.Campaigns, p.now())
		if err != nil {
			return nil, fmt.Errorf("find unledgered qualifications: %w", err)
		}
		bar.Set(int64(len(pending)))
		bar.Done()
		plan.Qualifications = QualificationFindings{Checked: true, Campaigns: camps, Pending: pending}
	} else {
		plan.Notes = append(plan.Notes, "qualifications were not checked (no campaigns available)")
	}
	plan.ID = plan.computeID()

	run := newRun(KindPlan, plan, req.Command, start)
	run.State, run.Phase, run.FinishedAtMs = StatePlanned, PhaseDone, chdb.NowMs()
	if err := run.save(ctx, p.Conn); err != nil {
		return nil, err
	}
	p.log().Info("plan made", "plan", plan.ID, "took", time.Since(start).Round(time.Millisecond))
	return plan, nil
}

// lane compares one lane's offsets in the source with ClickHouse.
func (p *Planner) lane(ctx context.Context, plan *Plan, lane, topic string) (LaneFinding, error) {
	lf := LaneFinding{Lane: lane, Topic: topic}
	sps, err := p.Source.Window(ctx, topic, laneGroup(p.Kafka, p.Cfg.LoaderGroup, lane), plan.Window)
	if err != nil {
		return lf, err
	}
	want := map[int32]Ranges{}
	for _, sp := range sps {
		want[sp.Partition] = sp.Held
	}
	missing, err := missingIn(ctx, p.Conn, topic, want, p.Cfg.BucketSize)
	if err != nil {
		return lf, err
	}
	for _, sp := range sps {
		pf := PartitionFinding{Partition: sp.Partition, Window: sp.Span, LogStart: sp.LogStart, Committed: sp.Committed, Truncated: sp.Truncated, Missing: missing[sp.Partition]}
		if pf.Missing == nil {
			pf.Missing = Ranges{}
		}
		held := sp.Held.Len()
		lf.InWindow += held
		lf.Missing += pf.Missing.Len()
		lf.Loaded += held - pf.Missing.Len()
		if sp.Committed >= 0 {
			lf.Backlog += pf.Missing.Clip(sp.Committed, 1<<62).Len()
		}
		if sp.Truncated {
			plan.Notes = append(plan.Notes, fmt.Sprintf("%s partition %d: Kafka's retention starts at offset %d, inside the window; older records of the window can only come from an archive (--source)", topic, sp.Partition, sp.LogStart))
		}
		lf.Partitions = append(lf.Partitions, pf)
	}
	return lf, nil
}

// missingEvents reads the records missing by position from the source and
// sorts them. A record whose message (customer and messageId) is in events
// was delivered by another record, a client's retry or a producer's
// redelivery: it is a duplicate delivery, loaded, not missing. The others
// are missing: for those it finds who they belong to, how long their state
// has been stale, and (for the replay) the events themselves.
func (p *Planner) missingEvents(ctx context.Context, plan *Plan, laneOf map[string]string, examples int) ([]*ingest.Event, error) {
	want := plan.MissingRanges()
	if len(want) == 0 {
		return nil, nil
	}
	type record struct {
		topic     string
		partition int32
		offset    int64
		ev        *ingest.Event
	}
	var recs []record
	var undecodable int64
	unavailable, err := p.Source.Read(ctx, want, func(batch []*kgo.Record) error {
		for _, rec := range batch {
			ev, err := ingest.DecodeRecord(rec.Value)
			if err != nil {
				// The loader would dead-letter it; it changes no state,
				// and with no messageId it can only be missing.
				undecodable++
				continue
			}
			recs = append(recs, record{topic: rec.Topic, partition: rec.Partition, offset: rec.Offset, ev: ev})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read missing records: %w", err)
	}
	keys := make([]messageKey, len(recs))
	for i, r := range recs {
		keys[i] = messageKey{customer: r.ev.CustomerID(), message: r.ev.MessageID}
	}
	loaded, err := loadedMessages(ctx, p.Conn, keys)
	if err != nil {
		return nil, err
	}
	dups := map[string]map[int32][]int64{}
	type cust struct {
		lane   string
		oldest time.Time
	}
	custs := map[string]*cust{}
	var events []*ingest.Event
	for i, r := range recs {
		if loaded[keys[i]] {
			if dups[r.topic] == nil {
				dups[r.topic] = map[int32][]int64{}
			}
			dups[r.topic][r.partition] = append(dups[r.topic][r.partition], r.offset)
			continue
		}
		if p.State != nil {
			events = append(events, r.ev)
		}
		c := custs[keys[i].customer]
		if c == nil {
			c = &cust{lane: laneOf[r.topic], oldest: r.ev.ReceivedAt}
			custs[keys[i].customer] = c
		}
		if r.ev.ReceivedAt.Before(c.oldest) {
			c.oldest = r.ev.ReceivedAt
		}
	}
	for i := range plan.LaneFindings {
		lf := &plan.LaneFindings[i]
		lf.setDuplicates(dups[lf.Topic])
		for _, rs := range unavailable[lf.Topic] {
			lf.Unavailable += rs.Len()
		}
		if lf.Unavailable > 0 {
			plan.Notes = append(plan.Notes, fmt.Sprintf("%s: %d missing records are not in %s; apply needs an archive that holds them (--source)", lf.Lane, lf.Unavailable, p.Source.Name()))
		}
	}
	if undecodable > 0 {
		plan.Notes = append(plan.Notes, fmt.Sprintf("%d missing records are not valid events; apply re-ingests them and the loader dead-letters them", undecodable))
	}
	now := p.now()
	plan.Stale.MissingCustomers = int64(len(custs))
	var stale []StaleCustomer
	for id, c := range custs {
		if plan.Stale.OldestMissing.IsZero() || c.oldest.Before(plan.Stale.OldestMissing) {
			plan.Stale.OldestMissing = c.oldest.UTC()
		}
		stale = append(stale, StaleCustomer{CustomerID: id, Lane: c.lane, StaleForMs: now.Sub(c.oldest).Milliseconds(), Missing: true})
	}
	sort.Slice(stale, func(i, j int) bool {
		if stale[i].StaleForMs != stale[j].StaleForMs {
			return stale[i].StaleForMs > stale[j].StaleForMs
		}
		return stale[i].CustomerID < stale[j].CustomerID
	})
	// Customers still missing events come first: they are stale now.
	ex := append(stale[:min(len(stale), examples)], plan.Stale.Examples...)
	plan.Stale.Examples = ex[:min(len(ex), examples)]
	return events, nil
}

// setDuplicates moves the offsets of dups (per partition: records whose
// position was not loaded but whose message was) from Missing to
// Duplicates and recounts the lane.
func (lf *LaneFinding) setDuplicates(dups map[int32][]int64) {
	lf.Missing, lf.Backlog = 0, 0
	for i := range lf.Partitions {
		pf := &lf.Partitions[i]
		if offs := dups[pf.Partition]; len(offs) > 0 {
			pf.Duplicates = RangesOf(offs)
			pf.Missing = pf.Missing.Minus(pf.Duplicates)
			if pf.Missing == nil {
				pf.Missing = Ranges{}
			}
			lf.Duplicates += pf.Duplicates.Len()
		}
		lf.Missing += pf.Missing.Len()
		if pf.Committed >= 0 {
			lf.Backlog += pf.Missing.Clip(pf.Committed, 1<<62).Len()
		}
	}
	lf.Loaded = lf.InWindow - lf.Missing
}

// messageKey is what events deduplicates on.
type messageKey struct{ customer, message string }

// loadedMessagesChunk bounds the messages of one lookup query: ids are
// bound into the query text, which the server parses within
// max_query_size (raised for these queries to fit ids of the longest
// allowed length).
const loadedMessagesChunk = 2000

// loadedMessages returns which of keys have a row in events. events is
// ordered by (customer_id, message_id), so each lookup reads only the
// customers' granules, and a message's presence is what a merge never
// changes: it keeps one row per key.
func loadedMessages(ctx context.Context, conn *chdb.Conn, keys []messageKey) (map[messageKey]bool, error) {
	wanted := map[messageKey]bool{}
	for _, k := range keys {
		wanted[k] = true
	}
	sorted := make([]messageKey, 0, len(wanted))
	for k := range wanted {
		sorted = append(sorted, k)
	}
	sort.Slice(sorted, func(i, j int) bool {
		if sorted[i].customer != sorted[j].customer {
			return sorted[i].customer < sorted[j].customer
		}
		return sorted[i].message < sorted[j].message
	})
	qctx := chdb.Settings(ctx, map[string]any{"max_query_size": 16 << 20})
	out := map[messageKey]bool{}
	for lo := 0; lo < len(sorted); lo += loadedMessagesChunk {
		chunk := sorted[lo:min(lo+loadedMessagesChunk, len(sorted))]
		var customers, messages []string
		for i, k := range chunk {
			if i == 0 || k.customer != chunk[i-1].customer {
				customers = append(customers, k.customer)
			}
			messages = append(messages, k.message)
		}
		err := ingest.LoadedMessages(qctx, conn, customers, messages, func(customer, message string) error {
			if k := (messageKey{customer: customer, message: message}); wanted[k] {
				out[k] = true
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("look up messages in events: %w", err)
		}
	}
	return out, nil
}

// windowDeliveries counts, per topic, what event_positions holds for the
// window's positions beyond one message per record: Duplicates are
// positions carrying a message another position of the window carries too,
// Redelivered the extra loads of one position. event_positions keeps every
// delivery, so neither count changes when events merges.
func windowDeliveries(ctx context.Context, conn *chdb.Conn, spans map[string]map[int32]Range) (map[string][2]int64, error) {
	filter, args := windowFilter(spans)
	byTopic, err := ingest.DeliveriesByTopic(ctx, conn, filter, args)
	if err != nil {
		return nil, fmt.Errorf("count the window's deliveries: %w", err)
	}
	out := make(map[string][2]int64, len(byTopic))
	for topic, d := range byTopic {
		out[topic] = [2]int64{int64(d.Positions) - int64(d.Messages), int64(d.Rows) - int64(d.Positions)}
	}
	return out, nil
}

// windowCustomers lists the customers with loaded events in the window.
func windowCustomers(ctx context.Context, conn *chdb.Conn, spans map[string]map[int32]Range) ([]string, error) {
	filter, args := windowFilter(spans)
	out, err := ingest.PositionCustomers(ctx, conn, filter, args)
	if err != nil {
		return nil, fmt.Errorf("list the window's customers: %w", err)
	}
	return out, nil
}

// lateCustomerIDs lists the customers with a late event in the window.
func lateCustomerIDs(ctx context.Context, conn *chdb.Conn, spans map[string]map[int32]Range, lateAfterMs int64) ([]string, error) {
	filter, args := windowFilter(spans)
	out, err := conn.Strings(ctx, "SELECT customer_id FROM ("+ingest.LoadLag(filter)+") GROUP BY customer_id HAVING max(lag) > ?", append(args, lateAfterMs)...)
	if err != nil {
		return nil, fmt.Errorf("list customers with late events: %w", err)
	}
	return out, nil
}

// derived compares the window's customers' materialized state with a replay.
func (p *Planner) derived(ctx context.Context, plan *Plan, spans map[string]map[int32]Range, unloaded []*ingest.Event, examples int) error {
	var customers []string
	var err error
	if p.Cfg.Replay == "affected" {
		customers, err = lateCustomerIDs(ctx, p.Conn, spans, plan.LateAfterMs)
		plan.Notes = append(plan.Notes, "the replay covered only customers with late or missing events (backfill.replay = affected)")
	} else {
		customers, err = windowCustomers(ctx, p.Conn, spans)
	}
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, c := range customers {
		seen[c] = true
	}
	for _, ev := range unloaded {
		if id := ev.CustomerID(); !seen[id] {
			seen[id] = true
			customers = append(customers, id)
		}
	}
	sort.Strings(customers)
	diffs, err := p.State.Diff(ctx, customers, unloaded)
	if err != nil {
		return fmt.Errorf("replay the window's customers: %w", err)
	}
	sf := &StateFindings{Checked: int64(len(customers)), Customers: []string{}}
	stale := map[string]bool{}
	attrs := map[string]bool{}
	aud := map[string]*AudienceDiff{}
	for _, d := range diffs {
		stale[d.CustomerID] = true
		switch d.Kind {
		case "attribute":
			attrs[d.CustomerID] = true
		case "membership":
			a := aud[d.Name]
			if a == nil {
				a = &AudienceDiff{AudienceID: d.Name}
				aud[d.Name] = a
			}
			if d.Replayed == "member" {
				a.ShouldEnter++
			} else {
				a.ShouldExit++
			}
		}
		if len(sf.Examples) < examples {
			sf.Examples = append(sf.Examples, d)
		}
	}
	for c := range stale {
		sf.Customers = append(sf.Customers, c)
	}
	sort.Strings(sf.Customers)
	sf.Attributes = int64(len(attrs))
	for _, a := range aud {
		sf.Audiences = append(sf.Audiences, *a)
	}
	sort.Slice(sf.Audiences, func(i, j int) bool { return sf.Audiences[i].AudienceID < sf.Audiences[j].AudienceID })
	plan.Stale.Derived = sf
	return nil
}

func (p *Planner) log() *slog.Logger {
	if p.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return p.Log
}
