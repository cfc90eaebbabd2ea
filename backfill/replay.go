package backfill

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/component"
	"github.com/tideline-dev/tideline/materialize"
	tsql "github.com/tideline-dev/tideline/sql"
)

// Replay recomputes customers' attributes and audience memberships from
// their raw events and compares them with the materialized state. It
// replays in a scratch database on the same server with materialize's own
// views and evaluator, so "what the state should be" means exactly what
// materialize computes from a complete, on-time history: the customers'
// events (and their linked identities') are copied in, the events not yet
// loaded are added, the applied audiences are installed, and one
// evaluation runs as of the live evaluator's evaluation time.
type Replay struct {
	// Conn is the live database; CH opens the scratch database beside it.
	Conn *chdb.Conn
	CH   chdb.Config
	// Materialize is the live evaluator's configuration (its id, lanes and
	// attribute settings).
	Materialize materialize.Config
	Log         *slog.Logger
	// Keep leaves the scratch database in place for inspection.
	Keep bool
	// Timeout bounds one query on the scratch database (copying a big
	// window's history takes minutes); default CH.ReadTimeout.
	Timeout time.Duration

	scratchDB *chdb.Conn
}

func (r *Replay) log() *slog.Logger {
	if r.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Log
}

// Diff implements StateReplayer.
func (r *Replay) Diff(ctx context.Context, customers []string, unloaded []*ingest.Event) ([]StateDiff, error) {
	if len(customers) == 0 && len(unloaded) == 0 {
		return nil, nil
	}
	start := time.Now()
	closure, err := r.identities(ctx, customers, unloaded)
	if err != nil {
		return nil, err
	}
	scratch, err := r.prepare(ctx)
	if err != nil {
		return nil, err
	}
	if err := r.fill(ctx, scratch, closure, unloaded); err != nil {
		return nil, err
	}
	var diffs []StateDiff
	attrs, err := r.attributeDiffs(ctx, scratch, closure)
	if err != nil {
		return nil, err
	}
	diffs = append(diffs, attrs...)
	members, err := r.membershipDiffs(ctx, scratch, closure)
	if err != nil {
		return nil, err
	}
	diffs = append(diffs, members...)
	sort.Slice(diffs, func(i, j int) bool {
		a, b := diffs[i], diffs[j]
		if a.CustomerID != b.CustomerID {
			return a.CustomerID < b.CustomerID
		}
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		return a.Name < b.Name
	})
	r.log().Info("replayed customers' raw events", "customers", len(customers), "with_linked_identities", len(closure), "unloaded_events", len(unloaded), "differences", len(diffs), "took", time.Since(start).Round(time.Millisecond))
	return diffs, nil
}

// identities extends customers with the identities linked to them, whose
// events a merged customer's state is computed from.
func (r *Replay) identities(ctx context.Context, customers []string, unloaded []*ingest.Event) ([]string, error) {
	set := map[string]bool{}
	var users, anons []string
	add := func(c string) {
		if c == "" || set[c] {
			return
		}
		set[c] = true
		if strings.HasPrefix(c, "anon:") {
			anons = append(anons, c)
		} else {
			users = append(users, c)
		}
	}
	for _, c := range customers {
		add(c)
	}
	for _, ev := range unloaded {
		add(ev.CustomerID())
		if ev.UserID != "" && ev.AnonymousID != "" {
			add(ev.UserID)
			add("anon:" + ev.AnonymousID)
		}
	}
	// Two hops: an anonymous id's users, then those users' other ids.
	for hop := 0; hop < 2; hop++ {
		found, err := materialize.LinkedByClaims(ctx, r.Conn, anons, users)
		if err != nil {
			return nil, err
		}
		for _, c := range found {
			add(c)
		}
	}
	out := make([]string, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	sort.Strings(out)
	return out, nil
}

// keptTables survive a reset: the migrations' record, and the catalogs,
// which say which views exist.
var keptTables = func() map[string]bool {
	kept := map[string]bool{"schema_migrations": true}
	for _, t := range materialize.CatalogTables {
		kept[t] = true
	}
	return kept
}()

// prepare returns an empty scratch database: created on first use (one per
// Replay, as DDL is slow on a busy server) and emptied on later uses.
func (r *Replay) prepare(ctx context.Context) (*chdb.Conn, error) {
	if r.scratchDB == nil {
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		prefix, _ := chdb.ScratchPrefix(r.Conn.Database)
		cfg := r.CH
		cfg.Database = prefix + hex.EncodeToString(b)
		cfg.ReadTimeout = max(cfg.ReadTimeout, r.Timeout)
		// The scratch database is one server's, in cluster mode too: a
		// replay is one process's computation over a window, read from the
		// cluster's Distributed tables, and needs neither shards nor
		// replicas of its own.
		cfg.Cluster = ""
		conn, err := chdb.Open(ctx, cfg, true)
		if err != nil {
			return nil, fmt.Errorf("create replay database: %w", err)
		}
		r.scratchDB = conn
		ms, err := tsql.Migrations()
		if err != nil {
			return nil, err
		}
		// Every migration, wherever numbered: the scratch database has the
		// live schema, so each view over events derives there what it
		// derives live.
		for _, m := range ms {
			if err := conn.Exec(ctx, m.Statement); err != nil {
				return nil, fmt.Errorf("schema of replay database %s, %s: %w", cfg.Database, m.Name, err)
			}
		}
		return conn, nil
	}
	conn := r.scratchDB
	// Only tables holding rows: TRUNCATE is DDL, slow on a busy server.
	tables, err := conn.Strings(ctx, "SELECT DISTINCT table FROM system.parts WHERE database = ? AND active", conn.Database)
	if err != nil {
		return nil, fmt.Errorf("list replay tables: %w", err)
	}
	for _, t := range tables {
		if keptTables[t] || !chdb.ValidIdentifier(t) {
			continue
		}
		if err := conn.Exec(ctx, "TRUNCATE TABLE "+t); err != nil {
			return nil, fmt.Errorf("reset replay table %s: %w", t, err)
		}
	}
	return conn, nil
}

// Close drops the scratch database.
func (r *Replay) Close() {
	if r.scratchDB == nil {
		return
	}
	if !r.Keep {
		_ = r.scratchDB.Exec(context.Background(), "DROP DATABASE IF EXISTS "+r.scratchDB.Database)
	}
	r.scratchDB.Close()
	r.scratchDB = nil
}

// fill installs the live audiences in the scratch database, copies the
// customers' events into it (the views derive their state on the way),
// adds the unloaded events, and evaluates once as of the live evaluator.
func (r *Replay) fill(ctx context.Context, scratch *chdb.Conn, customers []string, unloaded []*ingest.Event) error {
	applied, _, err := materialize.LoadApplied(ctx, r.Conn)
	if err != nil {
		return err
	}
	// The applied audiences with every attribute the live database
	// maintains (its settings declare some that no audience reads).
	settings, err := materialize.AppliedAttributes(ctx, r.Conn)
	if err != nil {
		return fmt.Errorf("read the live attributes: %w", err)
	}
	auds := make([]*materialize.Audience, 0, len(applied.Audiences))
	for _, c := range applied.Audiences {
		auds = append(auds, c.Audience)
	}
	plan, err := materialize.Compile(auds, settings)
	if err != nil {
		return fmt.Errorf("compile the live audiences for the replay: %w", err)
	}
	if _, err := materialize.Apply(ctx, scratch, plan, 0, slog.New(slog.DiscardHandler)); err != nil {
		return fmt.Errorf("install audiences in the replay database: %w", err)
	}
	// The live database name is a validated identifier (chdb.Config).
	if err := ingest.CopyEvents(ctx, scratch, r.Conn.Database, customers); err != nil {
		return fmt.Errorf("copy events into the replay database: %w", err)
	}
	if len(unloaded) > 0 {
		var rows ingest.EventRows
		for _, ev := range unloaded {
			rows.Add(ev, "backfill", "", 0, 0)
		}
		if err := rows.Insert(ctx, scratch, chdb.NowMs()); err != nil {
			return fmt.Errorf("add unloaded events to the replay: %w", err)
		}
	}
	asOf, err := materialize.EvaluatedTo(ctx, r.Conn, r.Materialize)
	if err != nil {
		return err
	}
	if asOf == 0 {
		return nil // nothing evaluated live yet: compare attributes only
	}
	var ps []ingest.Progress
	for i, lane := range r.Materialize.Lanes {
		ps = append(ps, ingest.Progress{Lane: lane, Topic: "replay." + lane, Partition: int32(i), WatermarkMs: asOf})
	}
	if err := ingest.InsertProgress(ctx, scratch, ps, chdb.NowMs()); err != nil {
		return err
	}
	cfg := r.Materialize
	cfg.EvaluatorID = "replay"
	ev, err := materialize.NewEvaluator(cfg, component.Env{Conn: scratch})
	if err != nil {
		return err
	}
	if _, err := ev.EvaluateOnce(ctx); err != nil {
		return fmt.Errorf("evaluate the replay: %w", err)
	}
	return nil
}

// bothSides reads one kind of state, keyed by customer and name, from the
// live database and from the replay's.
func bothSides[V any](live, replay string, read func(db string) (map[[2]string]V, error)) (map[[2]string]V, map[[2]string]V, error) {
	l, err := read(live)
	if err != nil {
		return nil, nil, err
	}
	r, err := read(replay)
	if err != nil {
		return nil, nil, err
	}
	return l, r, nil
}

func (r *Replay) attributeDiffs(ctx context.Context, scratch *chdb.Conn, customers []string) ([]StateDiff, error) {
	read := func(db string) (map[[2]string]string, error) {
		out := map[[2]string]string{}
		err := materialize.EachAttributeState(ctx, scratch, db, customers, func(a materialize.AttributeState) error {
			out[[2]string{a.CustomerID, a.Attribute}] = attrValue(a.Last, a.LastNull) + " (first " + attrValue(a.First, a.FirstNull) + ")"
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read attributes of %s: %w", db, err)
		}
		return out, nil
	}
	live, replayed, err := bothSides(r.Conn.Database, scratch.Database, read)
	if err != nil {
		return nil, err
	}
	var out []StateDiff
	for k, want := range replayed {
		if got := live[k]; got != want {
			out = append(out, StateDiff{CustomerID: k[0], Kind: "attribute", Name: k[1], Materialized: got, Replayed: want})
		}
	}
	for k, got := range live {
		if _, ok := replayed[k]; !ok {
			out = append(out, StateDiff{CustomerID: k[0], Kind: "attribute", Name: k[1], Materialized: got, Replayed: ""})
		}
	}
	return out, nil
}

func attrValue(v string, isNull bool) string {
	if isNull {
		return "null"
	}
	return fmt.Sprintf("%q", v)
}

func (r *Replay) membershipDiffs(ctx context.Context, scratch *chdb.Conn, customers []string) ([]StateDiff, error) {
	read := func(db string) (map[[2]string]bool, error) {
		out := map[[2]string]bool{}
		err := materialize.EachMembership(ctx, scratch, db, customers, func(aud, cust string, member bool) error {
			if member {
				out[[2]string{cust, aud}] = true
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read memberships of %s: %w", db, err)
		}
		return out, nil
	}
	live, replayed, err := bothSides(r.Conn.Database, scratch.Database, read)
	if err != nil {
		return nil, err
	}
	active, err := materialize.ListApplied(ctx, r.Conn)
	if err != nil {
		return nil, err
	}
	isActive := map[string]bool{}
	for _, a := range active {
		isActive[a.ID] = a.Active
	}
	var out []StateDiff
	for k := range replayed {
		if !live[k] {
			out = append(out, StateDiff{CustomerID: k[0], Kind: "membership", Name: k[1], Materialized: "not member", Replayed: "member"})
		}
	}
	for k := range live {
		if !replayed[k] && isActive[k[1]] {
			out = append(out, StateDiff{CustomerID: k[0], Kind: "membership", Name: k[1], Materialized: "member", Replayed: "not member"})
		}
	}
	return out, nil
}

// Rederive implements StateReplayer: it marks the customers touched (the
// evaluator re-evaluates touched customers) and runs evaluation passes of
// the live evaluator until the marks are consumed. A running evaluator
// does the same work at the same time, which is harmless: its writes are
// idempotent.
func (r *Replay) Rederive(ctx context.Context, customers []string) error {
	if len(customers) == 0 {
		return nil
	}
	if err := materialize.Retouch(ctx, r.Conn, customers, "backfill"); err != nil {
		return err
	}
	ev, err := materialize.NewEvaluator(r.Materialize, component.Env{Conn: r.Conn, Log: r.log()})
	if err != nil {
		return err
	}
	// The evaluator reads a touch once it is touch_settle old.
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(r.Materialize.TouchSettle + time.Second):
	}
	// Until a pass finds no new touches (the first may stop at
	// max_touches); live traffic keeps adding touches, so the passes are
	// bounded.
	for pass := 0; pass < 20; pass++ {
		st, err := ev.EvaluateOnce(ctx)
		if err != nil {
			return fmt.Errorf("re-evaluate customers: %w", err)
		}
		if st.NoWatermark {
			return fmt.Errorf("re-evaluate customers: the lanes %v have no watermark yet (is the loader running?)", r.Materialize.Lanes)
		}
		if st.Touches == 0 && pass > 0 {
			return nil
		}
	}
	return nil
}
