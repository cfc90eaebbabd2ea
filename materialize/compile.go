package materialize

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/tideline-dev/tideline/ingest"
)

// AttributeSettings says which attributes are maintained beyond those the
// audiences use, and which of them keep their first value.
type AttributeSettings struct {
	// Declared attributes are maintained even when no audience uses them
	// (analysts read them from customer_profile).
	Declared []string
	// SetOnce attributes keep their first non-null value instead of the
	// latest.
	SetOnce []string
}

// AttributeMode is a maintained attribute and how its value is chosen.
type AttributeMode struct {
	Name    string
	SetOnce bool
}

// Signal is what an audience counts or sums: events of one type and name,
// optionally restricted by property filters, with the property to sum.
// Each signal is kept in customer_signals by its own materialized view.
type Signal struct {
	// ID is a hash of the definition, so equal signals share one view.
	ID    string
	Type  string
	Event string
	// Group is the groupId a group signal counts the calls of ("" for
	// every group); group calls have no event name.
	Group string
	Where []*PropertyFilter
	// Value is the property summed ("" for a counting signal).
	Value string
}

// FilterSQL is the signal's condition over an events row.
func (s *Signal) FilterSQL() string {
	parts := []string{"type = " + quote(s.Type), "event = " + quote(s.Event)}
	if s.Group != "" {
		parts = append(parts, "group_id = "+quote(s.Group))
	}
	for _, f := range s.Where {
		if f.Column != "" {
			parts = append(parts, predicateSQL(f.Pred, f.Column, "("+f.Column+" != '')"))
			continue
		}
		parts = append(parts, predicateSQL(f.Pred, jsonValue("properties", f.Property), jsonPresent("properties", f.Property)))
	}
	return strings.Join(parts, "\n  AND ")
}

// valueSQL is the number kept with each occurrence: the summed property
// parsed as a number (0 when it is not one), or 0 for counting signals.
func (s *Signal) valueSQL() string {
	if s.Value == "" {
		return "toFloat64(0)"
	}
	return "toFloat64OrZero(" + jsonValue("properties", s.Value) + ")"
}

// Feature is a number per customer that conditions compare: the count of a
// signal's distinct messages, or the sum of its values, with event time in
// the window (T - Window, T]; Window 0 means every event up to T.
type Feature struct {
	Column string
	Signal *Signal
	Window time.Duration
	Sum    bool
}

// Compiled is one audience compiled to SQL.
type Compiled struct {
	Audience *Audience
	// Condition is a ClickHouse boolean expression over the attribute and
	// feature columns of the evaluation query.
	Condition string
	// Attributes the condition reads, sorted.
	Attributes []string
	// Features the condition reads, in first-use order.
	Features []*Feature
	// Version is a hash of what decides membership: the condition, the
	// modes of the attributes it reads and the completeness settings.
	Version string
	// Direction is what late data can do to the condition.
	Direction Direction
}

// Signals returns the distinct signals of c's features.
func (c *Compiled) Signals() []*Signal {
	var out []*Signal
	seen := map[string]bool{}
	for _, f := range c.Features {
		if !seen[f.Signal.ID] {
			seen[f.Signal.ID] = true
			out = append(out, f.Signal)
		}
	}
	return out
}

// Plan is a set of audiences compiled together: what must be maintained
// (attributes, signals) and what the evaluator computes (features).
type Plan struct {
	Audiences  []*Compiled
	Attributes []AttributeMode
	Signals    []*Signal
	Features   []*Feature
	// unkept are the attributes and signals whose views apply has not
	// created and backfilled yet: a preview reads them from events
	// instead, computed as apply's backfill would.
	unkept *unkept
}

type unkept struct {
	attributes []string
	signals    []*Signal
}

// Audience returns the compiled audience with id, or nil.
func (p *Plan) Audience(id string) *Compiled {
	for _, c := range p.Audiences {
		if c.Audience.ID == id {
			return c
		}
	}
	return nil
}

// Compile compiles audiences. Every error is a DefinitionErrors.
func Compile(auds []*Audience, attrs AttributeSettings) (*Plan, error) {
	setOnce := map[string]bool{}
	for _, a := range attrs.SetOnce {
		setOnce[a] = true
	}
	cp := &compiler{signals: map[string]*Signal{}, features: map[string]*Feature{}}
	plan := &Plan{}
	var errs DefinitionErrors
	ids := map[string]string{}
	used := map[string]bool{}
	for _, a := range auds {
		if prev, dup := ids[a.ID]; dup {
			errs = append(errs, &DefinitionError{File: a.File, Field: "id", Msg: fmt.Sprintf("audience %q is also defined in %s: ids must be unique", a.ID, prev)})
			continue
		}
		ids[a.ID] = a.File
		c := cp.audience(a, setOnce)
		for _, name := range c.Attributes {
			used[name] = true
		}
		plan.Audiences = append(plan.Audiences, c)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	for _, name := range attrs.Declared {
		used[name] = true
	}
	for name := range used {
		plan.Attributes = append(plan.Attributes, AttributeMode{Name: name, SetOnce: setOnce[name]})
	}
	sort.Slice(plan.Attributes, func(i, j int) bool { return plan.Attributes[i].Name < plan.Attributes[j].Name })
	for _, s := range cp.signals {
		plan.Signals = append(plan.Signals, s)
	}
	sort.Slice(plan.Signals, func(i, j int) bool { return plan.Signals[i].ID < plan.Signals[j].ID })
	for _, f := range cp.features {
		plan.Features = append(plan.Features, f)
	}
	sort.Slice(plan.Features, func(i, j int) bool { return plan.Features[i].Column < plan.Features[j].Column })
	return plan, nil
}

type compiler struct {
	signals  map[string]*Signal
	features map[string]*Feature
	// per audience
	attrs map[string]bool
	feats []*Feature
	eager bool
}

func (cp *compiler) audience(a *Audience, setOnce map[string]bool) *Compiled {
	cp.attrs, cp.feats = map[string]bool{}, nil
	cp.eager = a.Completeness == CompletenessEager
	cond := cp.cond(a.When, "", true)
	c := &Compiled{Audience: a, Condition: cond, Features: cp.feats, Direction: directionOf(a.When, a.Completeness)}
	for name := range cp.attrs {
		c.Attributes = append(c.Attributes, name)
	}
	sort.Strings(c.Attributes)
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00", a.ID, cond)
	for _, name := range c.Attributes {
		fmt.Fprintf(h, "%s=%v\x00", name, setOnce[name])
	}
	if len(a.Lanes) > 0 {
		fmt.Fprintf(h, "lanes=%s\x00", strings.Join(a.Lanes, ","))
	}
	c.Version = hex.EncodeToString(h.Sum(nil))[:16]
	return c
}

// cond renders a condition; nested groups are parenthesised and indented.
func (cp *compiler) cond(n *Condition, indent string, top bool) string {
	switch n.Kind {
	case KindAll, KindAny:
		op := "AND"
		if n.Kind == KindAny {
			op = "OR"
		}
		inner := indent
		if !top {
			inner += "    "
		}
		parts := make([]string, len(n.Children))
		for i, ch := range n.Children {
			parts[i] = cp.cond(ch, inner, false)
		}
		if len(parts) == 1 {
			return parts[0]
		}
		body := strings.Join(parts, "\n"+inner+op+" ")
		if top {
			return body
		}
		return "(\n" + inner + body + "\n" + indent + ")"
	case KindNot:
		inner := cp.cond(n.Children[0], indent, false)
		if strings.HasPrefix(inner, "(") && !strings.HasPrefix(inner, "NOT ") {
			// Groups and predicates come fully parenthesised.
			return "NOT " + inner
		}
		return "NOT (" + inner + ")"
	case KindAttribute:
		cp.attrs[n.Attribute] = true
		if cp.eager {
			return predicateSQL(n.Pred, eagerAttrColumn(n.Attribute), eagerHasColumn(n.Attribute))
		}
		return predicateSQL(n.Pred, attrColumn(n.Attribute), hasColumn(n.Attribute))
	default:
		f := cp.feature(n)
		switch {
		case n.Negated:
			return "(" + f.Column + " = 0)"
		case n.AtLeast != nil && n.AtMost != nil:
			return "(" + f.Column + " >= " + number(*n.AtLeast) + " AND " + f.Column + " <= " + number(*n.AtMost) + ")"
		case n.AtMost != nil:
			return "(" + f.Column + " <= " + number(*n.AtMost) + ")"
		default:
			return "(" + f.Column + " >= " + number(*n.AtLeast) + ")"
		}
	}
}

// The value and presence columns of an attribute as of the evaluation time,
// and (eager) as of the freshest watermark whatever the evaluation time.
func attrColumn(name string) string      { return "attr_" + name }
func hasColumn(name string) string       { return "has_" + name }
func eagerAttrColumn(name string) string { return "eager_attr_" + name }
func eagerHasColumn(name string) string  { return "eager_has_" + name }

func (cp *compiler) feature(n *Condition) *Feature {
	sig := &Signal{Type: n.Type, Event: n.Event, Group: n.Group, Where: sortedFilters(n.Where), Value: n.Sum}
	sig.ID = signalID(sig)
	if prev, ok := cp.signals[sig.ID]; ok {
		sig = prev
	} else {
		cp.signals[sig.ID] = sig
	}
	col := featureColumn(sig, n.Within)
	f, ok := cp.features[col]
	if !ok {
		f = &Feature{Column: col, Signal: sig, Window: n.Within, Sum: sig.Value != ""}
		cp.features[col] = f
	}
	for _, have := range cp.feats {
		if have == f {
			return f
		}
	}
	cp.feats = append(cp.feats, f)
	return f
}

func sortedFilters(in []*PropertyFilter) []*PropertyFilter {
	out := append([]*PropertyFilter(nil), in...)
	sort.SliceStable(out, func(i, j int) bool { return filterKey(out[i]) < filterKey(out[j]) })
	return out
}

func filterKey(f *PropertyFilter) string {
	vals := make([]string, len(f.Pred.Values))
	for i, v := range f.Pred.Values {
		vals[i] = fmt.Sprintf("%d:%s", v.Kind, v)
	}
	return fmt.Sprintf("%s\x00%s\x00%v\x00%s", f.Property, f.Pred.Op, f.Pred.Exists, strings.Join(vals, "\x01"))
}

func signalID(s *Signal) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00", s.Type, s.Event, s.Value)
	if s.Group != "" {
		fmt.Fprintf(h, "group\x00%s\x00", s.Group)
	}
	for _, f := range s.Where {
		fmt.Fprintf(h, "%s\x02", filterKey(f))
	}
	return "s" + hex.EncodeToString(h.Sum(nil))[:10]
}

// featureColumn names a feature readably, e.g. count_purchase_7d or
// sum_purchase_amount_30d. A name that cannot say everything (filters, page
// events, names that are not plain words) carries part of the signal id, so
// distinct features never share a column.
func featureColumn(s *Signal, window time.Duration) string {
	ev := slug(s.Event)
	if s.Type == "group" {
		ev = "group"
		if s.Group != "" {
			ev += "_" + slug(s.Group)
		}
	}
	exact := s.Type == "track" && len(s.Where) == 0 && ev == s.Event
	name := "count_" + ev
	if s.Value != "" {
		p := slug(s.Value)
		exact = exact && p == s.Value
		name = "sum_" + ev + "_" + p
	}
	name += "_" + FormatWindow(window)
	if !exact {
		name += "_" + s.ID[1:7]
	}
	return name
}

func slug(s string) string {
	var b strings.Builder
	under := false
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			under = false
		} else if !under && b.Len() > 0 {
			b.WriteByte('_')
			under = true
		}
	}
	out := strings.TrimRight(b.String(), "_")
	if len(out) > 32 {
		out = strings.TrimRight(out[:32], "_")
	}
	if out == "" {
		out = "event"
	}
	return out
}

// attributeSelect is the SELECT that turns events rows into
// customer_attributes states for attribute name: what the attributes view
// computes for it on every insert, and what apply runs once over history
// when the attribute is new.
func attributeSelect(name string) string {
	v, isNull := jsonValue("traits", name), jsonIsNull("traits", name)
	tuple := "(" + v + ", " + isNull + ", event_time_ms, ingest_time_ms, message_id)"
	return "SELECT\n" +
		"    customer_id,\n" +
		"    " + quote(name) + " AS attribute,\n" +
		"    argMaxState(" + tuple + ", (event_time_ms, message_id, bitNot(ingest_time_ms))) AS last_value,\n" +
		"    argMinState(" + tuple + ", (" + isNull + ", event_time_ms, message_id, ingest_time_ms)) AS first_value\n" +
		"FROM " + ingest.EventsTable + "\n" +
		"WHERE visitParamHas(traits, " + quote(name) + ")\n" +
		"GROUP BY customer_id"
}

// signalSelect is the SELECT that turns events rows into customer_signals
// states for s, as attributeSelect is for an attribute.
func signalSelect(s *Signal) string {
	return "SELECT\n" +
		"    customer_id,\n" +
		"    " + quote(s.ID) + " AS signal,\n" +
		"    toStartOfHour(event_time) AS bucket,\n" +
		"    groupUniqArrayState((event_time_ms, message_id, " + s.valueSQL() + ")) AS occurrences\n" +
		"FROM " + ingest.EventsTable + "\n" +
		"WHERE " + s.FilterSQL() + "\n" +
		"GROUP BY customer_id, bucket"
}

// View is a materialized view apply maintains: one for every maintained
// attribute, one for every signal. One view per kind instead of one per
// attribute or signal keeps each insert into events down to one extra part
// per kind. Name carries a hash of what the view covers, so a changed set
// is a new view: apply creates it before dropping the old one, and as the
// states are idempotent the overlap counts nothing twice.
type View struct {
	Name string
	DDL  string
}

// attributesView is the view that maintains attrs (nil when there are none).
func attributesView(attrs []AttributeMode) *View {
	if len(attrs) == 0 {
		return nil
	}
	names, elems := traitElements(attrs)
	name := "mv_attributes_" + setHash(names)
	tuple := "(a.2, a.3, event_time_ms, ingest_time_ms, message_id)"
	ddl := "CREATE MATERIALIZED VIEW IF NOT EXISTS " + name + " TO customer_attributes AS\n" +
		"SELECT\n" +
		"    customer_id,\n" +
		"    a.1 AS attribute,\n" +
		"    argMaxState(" + tuple + ", (event_time_ms, message_id, bitNot(ingest_time_ms))) AS last_value,\n" +
		"    argMinState(" + tuple + ", (a.3, event_time_ms, message_id, ingest_time_ms)) AS first_value\n" +
		traitRows("event_time_ms, ingest_time_ms, message_id", elems)
	return &View{Name: name, DDL: ddl}
}

// traitRows is the FROM of the trait views, from FROM to GROUP BY: the
// events with traits, their customer, traits and cols, one row a per
// attribute set (elems, from traitElements), grouped by customer and
// attribute.
func traitRows(cols, elems string) string {
	return "FROM\n(\n" +
		"    -- only rows with traits reach the per-attribute expressions\n" +
		"    SELECT customer_id, traits, " + cols + "\n" +
		"    FROM " + ingest.EventsTable + "\n" +
		"    WHERE traits NOT IN ('', '{}')\n" +
		")\n" +
		"ARRAY JOIN arrayFilter(x -> x.4 = 1, [\n" + elems + "\n]) AS a\n" +
		"GROUP BY customer_id, attribute"
}

// traitElements are attrs' names, sorted, and the ARRAY JOIN elements
// that read each from a row's traits as (name, value, is_null, present),
// one a line.
func traitElements(attrs []AttributeMode) (names []string, elems string) {
	names = make([]string, len(attrs))
	for i, a := range attrs {
		names[i] = a.Name
	}
	sort.Strings(names)
	lines := make([]string, len(names))
	for i, n := range names {
		lines[i] = "    (" + quote(n) + ", " + jsonValue("traits", n) + ", " + jsonIsNull("traits", n) + ", toUInt8(visitParamHas(traits, " + quote(n) + ")))"
	}
	return names, strings.Join(lines, ",\n")
}

// attributeHistorySelect is the SELECT that turns events rows into
// customer_attribute_history states for attribute name, as attributeSelect
// is for customer_attributes.
func attributeHistorySelect(name string) string {
	return "SELECT\n" +
		"    customer_id,\n" +
		"    " + quote(name) + " AS attribute,\n" +
		"    groupUniqArrayState((event_time_ms, message_id, " + jsonValue("traits", name) + ", " + jsonIsNull("traits", name) + ")) AS changes\n" +
		"FROM " + ingest.EventsTable + "\n" +
		"WHERE visitParamHas(traits, " + quote(name) + ")\n" +
		"GROUP BY customer_id"
}

// attributeHistoryView is the view that keeps the history of attrs (nil
// when there are none).
func attributeHistoryView(attrs []AttributeMode) *View {
	if len(attrs) == 0 {
		return nil
	}
	names, elems := traitElements(attrs)
	name := "mv_attribute_history_" + setHash(names)
	ddl := "CREATE MATERIALIZED VIEW IF NOT EXISTS " + name + " TO customer_attribute_history AS\n" +
		"SELECT\n" +
		"    customer_id,\n" +
		"    a.1 AS attribute,\n" +
		"    groupUniqArrayState((event_time_ms, message_id, a.2, a.3)) AS changes\n" +
		traitRows("event_time_ms, message_id", elems)
	return &View{Name: name, DDL: ddl}
}

// signalsView is the view that maintains sigs (nil when there are none).
func signalsView(sigs []*Signal) *View {
	if len(sigs) == 0 {
		return nil
	}
	sorted := append([]*Signal(nil), sigs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].ID < sorted[j].ID })
	ids := make([]string, len(sorted))
	elems := make([]string, len(sorted))
	var events []string
	seen := map[string]bool{}
	// group_id and the context columns are read only when a signal needs
	// them, so the views of other signals keep their text.
	extra := map[string]bool{}
	for _, s := range sorted {
		if s.Group != "" {
			extra["group_id"] = true
		}
		for _, f := range s.Where {
			if f.Column != "" {
				extra[f.Column] = true
			}
		}
	}
	cols := "customer_id, type, event, properties, event_time, event_time_ms, message_id"
	if len(extra) > 0 {
		names := make([]string, 0, len(extra))
		for c := range extra {
			names = append(names, c)
		}
		sort.Strings(names)
		cols = "customer_id, type, event, " + strings.Join(names, ", ") + ", properties, event_time, event_time_ms, message_id"
	}
	for i, s := range sorted {
		ids[i] = s.ID
		elems[i] = "    (" + quote(s.ID) + ", " + s.valueSQL() + ", toUInt8(" + strings.ReplaceAll(s.FilterSQL(), "\n  ", " ") + "))"
		if k := "(" + quote(s.Type) + ", " + quote(s.Event) + ")"; !seen[k] {
			seen[k] = true
			events = append(events, k)
		}
	}
	sort.Strings(events)
	name := "mv_signals_" + setHash(ids)
	ddl := "CREATE MATERIALIZED VIEW IF NOT EXISTS " + name + " TO customer_signals AS\n" +
		"SELECT\n" +
		"    customer_id,\n" +
		"    s.1 AS signal,\n" +
		"    toStartOfHour(event_time) AS bucket,\n" +
		"    groupUniqArrayState((event_time_ms, message_id, s.2)) AS occurrences\n" +
		"FROM\n(\n" +
		"    -- only events some signal counts reach the per-signal expressions\n" +
		"    SELECT " + cols + "\n" +
		"    FROM " + ingest.EventsTable + "\n" +
		"    WHERE (type, event) IN (" + strings.Join(events, ", ") + ")\n" +
		")\n" +
		"ARRAY JOIN arrayFilter(x -> x.3 = 1, [\n" + strings.Join(elems, ",\n") + "\n]) AS s\n" +
		"GROUP BY customer_id, signal, bucket"
	return &View{Name: name, DDL: ddl}
}

func setHash(items []string) string {
	h := sha256.Sum256([]byte(strings.Join(items, "\x00")))
	return hex.EncodeToString(h[:])[:10]
}

// Describe says in words what a feature is, for explain.
func (f *Feature) Describe() string {
	var b strings.Builder
	if f.Sum {
		fmt.Fprintf(&b, "sum of property %q over distinct ", f.Signal.Value)
	} else {
		b.WriteString("number of distinct ")
	}
	switch {
	case f.Signal.Type != "group":
		fmt.Fprintf(&b, "%s %q messages", f.Signal.Type, f.Signal.Event)
	case f.Signal.Group == "":
		b.WriteString("group messages of any group")
	default:
		fmt.Fprintf(&b, "group messages of group %q", f.Signal.Group)
	}
	for i, w := range f.Signal.Where {
		if i == 0 {
			b.WriteString(" where ")
		} else {
			b.WriteString(" and ")
		}
		fmt.Fprintf(&b, "%s %s", w.Property, describePred(w.Pred))
	}
	if f.Window == 0 {
		b.WriteString(", ever (event time <= T)")
	} else {
		fmt.Fprintf(&b, " with event time in (T - %s, T]", FormatWindow(f.Window))
	}
	fmt.Fprintf(&b, "; signal %s", f.Signal.ID)
	return b.String()
}

func describePred(p *Predicate) string {
	if p.Op == OpExists {
		return fmt.Sprintf("exists: %v", p.Exists)
	}
	vals := make([]string, len(p.Values))
	for i, v := range p.Values {
		vals[i] = v.String()
	}
	if p.Op == OpIn || p.Op == OpNotIn {
		return fmt.Sprintf("%s [%s]", p.Op, strings.Join(vals, ", "))
	}
	return fmt.Sprintf("%s %s", p.Op, vals[0])
}
