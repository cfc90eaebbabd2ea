package materialize

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/tideline-dev/tideline/internal/chdb"
	tsql "github.com/tideline-dev/tideline/sql"
)

//go:embed audiences/*.yaml
var builtinAudiences embed.FS

// LoadDefinitions reads every *.yaml and *.yml file of dir as an audience.
// When dir is DefaultAudiencesDir and does not exist (an installed binary
// run outside the repository), the built-in definitions are read instead.
// A non-nil error lists every problem of every file (DefinitionErrors), or
// says why the folder could not be read.
func LoadDefinitions(dir string) ([]*Audience, error) {
	fsys, root := fs.FS(os.DirFS(dir)), dir
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) && filepath.Clean(dir) == DefaultAudiencesDir {
		sub, err := fs.Sub(builtinAudiences, "audiences")
		if err != nil {
			return nil, fmt.Errorf("built-in audiences: %w", err)
		}
		fsys, root = sub, "(built-in) "+DefaultAudiencesDir
	}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read audiences folder %s (set materialize.audiences_dir): %w", dir, err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && (strings.HasSuffix(e.Name(), ".yaml") || strings.HasSuffix(e.Name(), ".yml")) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	var out []*Audience
	var errs DefinitionErrors
	for _, name := range names {
		src, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", filepath.Join(root, name), err)
		}
		a, err := ParseAudience(filepath.Join(root, name), src)
		if err != nil {
			var des DefinitionErrors
			if errors.As(err, &des) {
				errs = append(errs, des...)
				continue
			}
			return nil, err
		}
		out = append(out, a)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return out, nil
}

// ApplyReport says what Apply changed.
type ApplyReport struct {
	// ViewsCreated are the attribute and signal views created (and
	// backfilled from history).
	ViewsCreated []string
	// ViewsDropped are views no audience or setting needs any more.
	ViewsDropped []string
	// Applied are audiences new or changed; Unchanged were already applied;
	// Deactivated were applied before but are no longer defined.
	Applied, Unchanged, Deactivated []string
}

// Apply installs plan: it creates the views its attributes and signals need
// (backfilling every attribute or signal that is new from the events
// already loaded), records the audiences so the evaluator picks them up,
// deactivates applied audiences missing from plan, and drops views nothing
// needs any more. It is idempotent; run it again after a failure. settle is
// the wait between creating a view and backfilling (Config.ApplySettle).
func Apply(ctx context.Context, conn *chdb.Conn, plan *Plan, settle time.Duration, log *slog.Logger) (*ApplyReport, error) {
	rep := &ApplyReport{}
	attrs, sigs, err := readCatalogs(ctx, conn)
	if err != nil {
		return nil, err
	}
	applied, err := readAudiences(ctx, conn)
	if err != nil {
		return nil, err
	}
	existing, err := managedViews(ctx, conn)
	if err != nil {
		return nil, err
	}

	// The new views first (the old ones keep working meanwhile), then the
	// history of what is new, then the catalog: a catalog row means the
	// attribute or signal is complete.
	av, hv, sv := attributesView(plan.Attributes), attributeHistoryView(plan.Attributes), signalsView(plan.Signals)
	created := false
	historyCreated := false
	for _, v := range []*View{av, hv, sv} {
		if v == nil || existing[v.Name] {
			continue
		}
		if err := tsql.Exec(ctx, conn, v.DDL); err != nil {
			return nil, fmt.Errorf("create view %s: %w", v.Name, err)
		}
		rep.ViewsCreated = append(rep.ViewsCreated, v.Name)
		created = true
		historyCreated = historyCreated || v == hv
	}
	var newAttrs []AttributeMode
	for _, a := range plan.Attributes {
		if have, ok := attrs[a.Name]; !ok || !have.active {
			newAttrs = append(newAttrs, a)
		}
	}
	var newSigs []*Signal
	for _, s := range plan.Signals {
		if have, ok := sigs[s.ID]; !ok || !have.active {
			newSigs = append(newSigs, s)
		}
	}
	if created && len(newAttrs)+len(newSigs) > 0 && settle > 0 {
		log.Info("views created; waiting for inserts in flight before backfilling", "settle", settle.String())
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(settle):
		}
	}
	for _, a := range newAttrs {
		start := time.Now()
		if err := conn.Exec(ctx, "INSERT INTO customer_attributes (customer_id, attribute, last_value, first_value)\n"+attributeSelect(a.Name)); err != nil {
			return nil, fmt.Errorf("backfill attribute %s from events: %w", a.Name, err)
		}
		log.Info("attribute backfilled from events", "attribute", a.Name, "took", time.Since(start).Round(time.Millisecond).String())
	}
	// The history of every attribute is filled when its view is new: for a
	// new attribute, and for all of them the first time history is kept. A
	// set of values ignores what the view also wrote meanwhile.
	for _, a := range plan.Attributes {
		if !historyCreated && !slices.ContainsFunc(newAttrs, func(n AttributeMode) bool { return n.Name == a.Name }) {
			continue
		}
		if err := conn.Exec(ctx, "INSERT INTO customer_attribute_history (customer_id, attribute, changes)\n"+attributeHistorySelect(a.Name)); err != nil {
			return nil, fmt.Errorf("backfill the history of attribute %s from events: %w", a.Name, err)
		}
	}
	for _, s := range newSigs {
		start := time.Now()
		if err := conn.Exec(ctx, "INSERT INTO customer_signals (customer_id, signal, bucket, occurrences)\n"+signalSelect(s)); err != nil {
			return nil, fmt.Errorf("backfill signal %s from events: %w", s.ID, err)
		}
		log.Info("signal backfilled from events", "signal", s.ID, "event", s.Event, "took", time.Since(start).Round(time.Millisecond).String())
	}
	now := chdb.NowMs()
	var attrRows []attributeRow
	for _, a := range plan.Attributes {
		if have, ok := attrs[a.Name]; !ok || !have.active || have.setOnce != a.SetOnce || have.view != av.Name {
			attrRows = append(attrRows, attributeRow{name: a.Name, setOnce: a.SetOnce, active: true, view: av.Name})
		}
	}
	var sigRows []signalRow
	for _, s := range plan.Signals {
		if have, ok := sigs[s.ID]; !ok || !have.active || have.view != sv.Name {
			sigRows = append(sigRows, signalRowOf(s, sv.Name, true))
		}
	}
	if err := writeAttributeCatalog(ctx, conn, attrRows, now); err != nil {
		return nil, err
	}
	if err := writeSignalCatalog(ctx, conn, sigRows, now); err != nil {
		return nil, err
	}

	// Audiences: new or changed versions, then deactivations.
	var audRows []audienceRow
	inPlan := map[string]bool{}
	for _, c := range plan.Audiences {
		inPlan[c.Audience.ID] = true
		if have, ok := applied[c.Audience.ID]; ok && have.active && have.version == c.Version {
			rep.Unchanged = append(rep.Unchanged, c.Audience.ID)
			continue
		}
		audRows = append(audRows, audienceRow{id: c.Audience.ID, name: c.Audience.Name, definition: string(c.Audience.Source), condition: c.Condition, version: c.Version, active: true})
		rep.Applied = append(rep.Applied, c.Audience.ID)
	}
	for id, have := range applied {
		if have.active && !inPlan[id] {
			have.active = false
			audRows = append(audRows, have)
			rep.Deactivated = append(rep.Deactivated, id)
		}
	}
	sort.Strings(rep.Deactivated)
	if err := writeAudiences(ctx, conn, audRows, now); err != nil {
		return nil, err
	}

	// Views and catalog rows no longer needed go last, once no active
	// audience reads them.
	for name := range existing {
		if (av == nil || name != av.Name) && (hv == nil || name != hv.Name) && (sv == nil || name != sv.Name) {
			if err := conn.Exec(ctx, "DROP TABLE IF EXISTS "+name+conn.OnCluster()); err != nil {
				return nil, fmt.Errorf("drop view %s: %w", name, err)
			}
			rep.ViewsDropped = append(rep.ViewsDropped, name)
		}
	}
	sort.Strings(rep.ViewsDropped)
	wantAttr := map[string]bool{}
	for _, a := range plan.Attributes {
		wantAttr[a.Name] = true
	}
	var dropAttrs []attributeRow
	for name, have := range attrs {
		if have.active && !wantAttr[name] {
			dropAttrs = append(dropAttrs, attributeRow{name: name, setOnce: have.setOnce})
		}
	}
	wantSig := map[string]bool{}
	for _, s := range plan.Signals {
		wantSig[s.ID] = true
	}
	var dropSigs []signalRow
	for id, have := range sigs {
		if have.active && !wantSig[id] {
			have.id, have.active, have.view = id, false, ""
			dropSigs = append(dropSigs, have)
		}
	}
	if err := writeAttributeCatalog(ctx, conn, dropAttrs, now+1); err != nil {
		return nil, err
	}
	if err := writeSignalCatalog(ctx, conn, dropSigs, now+1); err != nil {
		return nil, err
	}
	return rep, nil
}

// managedViews lists the attribute and signal views apply made.
func managedViews(ctx context.Context, conn *chdb.Conn) (map[string]bool, error) {
	names, err := conn.Strings(ctx, "SELECT name FROM system.tables WHERE database = currentDatabase() AND engine = 'MaterializedView'")
	if err != nil {
		return nil, fmt.Errorf("list materialized views: %w", err)
	}
	out := map[string]bool{}
	for _, name := range names {
		if (strings.HasPrefix(name, "mv_attributes_") || strings.HasPrefix(name, "mv_attribute_history_") || strings.HasPrefix(name, "mv_signals_")) && chdb.ValidIdentifier(name) {
			out[name] = true
		}
	}
	return out, nil
}

type attributeRow struct {
	name, view      string
	setOnce, active bool
}

// readCatalogs reads the attributes and signals apply has installed.
func readCatalogs(ctx context.Context, conn *chdb.Conn) (map[string]attributeRow, map[string]signalRow, error) {
	attrs, err := readAttributeCatalog(ctx, conn)
	if err != nil {
		return nil, nil, err
	}
	sigs, err := readSignalCatalog(ctx, conn)
	if err != nil {
		return nil, nil, err
	}
	return attrs, sigs, nil
}

func readAttributeCatalog(ctx context.Context, conn *chdb.Conn) (map[string]attributeRow, error) {
	out := map[string]attributeRow{}
	err := conn.Each(ctx, "SELECT attribute, set_once, view_name, active FROM attribute_catalog FINAL", nil, func(rows chdb.Rows) error {
		var r attributeRow
		var so, act uint8
		if err := rows.Scan(&r.name, &so, &r.view, &act); err != nil {
			return err
		}
		r.setOnce, r.active = so == 1, act == 1
		out[r.name] = r
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read attribute_catalog (is the schema migrated? tideline migrate): %w", err)
	}
	return out, nil
}

func writeAttributeCatalog(ctx context.Context, conn *chdb.Conn, rows []attributeRow, now uint64) error {
	if len(rows) == 0 {
		return nil
	}
	b, err := conn.PrepareBatch(ctx, "INSERT INTO attribute_catalog (attribute, set_once, view_name, active, applied_at_ms)")
	if err != nil {
		return fmt.Errorf("prepare attribute_catalog insert: %w", err)
	}
	for _, r := range rows {
		if err := b.Append(r.name, boolByte(r.setOnce), r.view, boolByte(r.active), now); err != nil {
			_ = b.Abort()
			return fmt.Errorf("append attribute_catalog row: %w", err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("insert attribute_catalog: %w", err)
	}
	return nil
}

type signalRow struct {
	id, typ, event, value, filters, view string
	active                               bool
}

func signalRowOf(s *Signal, view string, active bool) signalRow {
	r := signalRow{id: s.ID, typ: s.Type, event: s.Event, value: s.Value, view: view, active: active}
	if len(s.Where) > 0 || s.Group != "" {
		r.filters = s.FilterSQL()
	}
	return r
}

func readSignalCatalog(ctx context.Context, conn *chdb.Conn) (map[string]signalRow, error) {
	out := map[string]signalRow{}
	err := conn.Each(ctx, "SELECT signal, type, event, value_property, filters, view_name, active FROM signal_catalog FINAL", nil, func(rows chdb.Rows) error {
		var r signalRow
		var act uint8
		if err := rows.Scan(&r.id, &r.typ, &r.event, &r.value, &r.filters, &r.view, &act); err != nil {
			return err
		}
		r.active = act == 1
		out[r.id] = r
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read signal_catalog: %w", err)
	}
	return out, nil
}

func writeSignalCatalog(ctx context.Context, conn *chdb.Conn, rows []signalRow, now uint64) error {
	if len(rows) == 0 {
		return nil
	}
	b, err := conn.PrepareBatch(ctx, "INSERT INTO signal_catalog (signal, type, event, value_property, filters, view_name, active, applied_at_ms)")
	if err != nil {
		return fmt.Errorf("prepare signal_catalog insert: %w", err)
	}
	for _, r := range rows {
		if err := b.Append(r.id, r.typ, r.event, r.value, r.filters, r.view, boolByte(r.active), now); err != nil {
			_ = b.Abort()
			return fmt.Errorf("append signal_catalog row: %w", err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("insert signal_catalog: %w", err)
	}
	return nil
}

type audienceRow struct {
	id, name, definition, condition, version string
	active                                   bool
	appliedAtMs                              uint64
}

func readAudiences(ctx context.Context, conn *chdb.Conn) (map[string]audienceRow, error) {
	out := map[string]audienceRow{}
	err := conn.Each(ctx, "SELECT audience_id, name, definition, condition_sql, version, active, applied_at_ms FROM audiences FINAL", nil, func(rows chdb.Rows) error {
		var r audienceRow
		var act uint8
		if err := rows.Scan(&r.id, &r.name, &r.definition, &r.condition, &r.version, &act, &r.appliedAtMs); err != nil {
			return err
		}
		r.active = act == 1
		out[r.id] = r
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read audiences: %w", err)
	}
	return out, nil
}

func writeAudiences(ctx context.Context, conn *chdb.Conn, rows []audienceRow, now uint64) error {
	if len(rows) == 0 {
		return nil
	}
	b, err := conn.PrepareBatch(ctx, "INSERT INTO audiences (audience_id, name, definition, condition_sql, version, active, applied_at_ms)")
	if err != nil {
		return fmt.Errorf("prepare audiences insert: %w", err)
	}
	for _, r := range rows {
		if err := b.Append(r.id, r.name, r.definition, r.condition, r.version, boolByte(r.active), now); err != nil {
			_ = b.Abort()
			return fmt.Errorf("append audiences row: %w", err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("insert audiences: %w", err)
	}
	return nil
}

func boolByte(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// AppliedAudience is an audience as recorded by apply.
type AppliedAudience struct {
	ID, Name, Version string
	Active            bool
	AppliedAtMs       uint64
	Definition        string
	Condition         string
}

// ListApplied returns every audience apply recorded, active or not, by id.
func ListApplied(ctx context.Context, conn *chdb.Conn) ([]AppliedAudience, error) {
	rows, err := readAudiences(ctx, conn)
	if err != nil {
		return nil, err
	}
	out := make([]AppliedAudience, 0, len(rows))
	for _, r := range rows {
		out = append(out, AppliedAudience{ID: r.id, Name: r.name, Version: r.version, Active: r.active, AppliedAtMs: r.appliedAtMs, Definition: r.definition, Condition: r.condition})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// InsertAudiences records audiences as apply does, each with its own
// AppliedAtMs, without compiling or checking them: the rows of a
// demonstration dataset. Apply is how definitions are recorded.
func InsertAudiences(ctx context.Context, conn *chdb.Conn, as []AppliedAudience) error {
	for _, a := range as {
		r := audienceRow{id: a.ID, name: a.Name, definition: a.Definition, condition: a.Condition, version: a.Version, active: a.Active}
		if err := writeAudiences(ctx, conn, []audienceRow{r}, a.AppliedAtMs); err != nil {
			return err
		}
	}
	return nil
}

// LoadApplied compiles the active audiences recorded in ClickHouse, with the
// attribute modes recorded by apply: exactly what the evaluator evaluates.
// Definitions that no longer compile are skipped and returned in skipped
// (they stay out of evaluation until re-applied).
func LoadApplied(ctx context.Context, conn *chdb.Conn) (plan *Plan, skipped DefinitionErrors, err error) {
	applied, err := readAudiences(ctx, conn)
	if err != nil {
		return nil, nil, err
	}
	attrs, err := readAttributeCatalog(ctx, conn)
	if err != nil {
		return nil, nil, err
	}
	var settings AttributeSettings
	for name, a := range attrs {
		if a.active && a.setOnce {
			settings.SetOnce = append(settings.SetOnce, name)
		}
	}
	sort.Strings(settings.SetOnce)
	var auds []*Audience
	var bad DefinitionErrors
	ids := make([]string, 0, len(applied))
	for id := range applied {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		r := applied[id]
		if !r.active {
			continue
		}
		a, err := ParseAudience("audiences table: "+id, []byte(r.definition))
		if err != nil {
			var des DefinitionErrors
			if errors.As(err, &des) {
				bad = append(bad, des...)
				continue
			}
			return nil, nil, err
		}
		auds = append(auds, a)
	}
	plan, err = Compile(auds, settings)
	if err != nil {
		return nil, nil, err
	}
	return plan, bad, nil
}
