package materialize

import (
	"bytes"
	"encoding/json"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/tideline-dev/tideline/ingest"
)

// model is the in-Go oracle: from the distinct messages of a stream it
// computes what ClickHouse must hold — attributes, event aggregates, signal
// totals and audience membership — by interpreting the definitions, not
// the generated SQL.
type model struct {
	msgs map[string]*ingest.Event
}

func newModel() *model { return &model{msgs: map[string]*ingest.Event{}} }

// add records an event; a redelivery of the same message changes nothing.
func (m *model) add(ev *ingest.Event) { m.msgs[ev.MessageID] = ev }

func evTime(ev *ingest.Event) uint64 { return uint64(ev.Timestamp.UnixMilli()) }

// topKey reads key of a JSON object the way the views do: a string value
// unescaped, anything else as its compact JSON text; isNull for null.
func topKey(raw json.RawMessage, key string) (value string, found, isNull bool) {
	if len(raw) == 0 {
		return "", false, false
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return "", false, false
	}
	v, ok := obj[key]
	if !ok {
		return "", false, false
	}
	v = bytes.TrimSpace(v)
	if string(v) == "null" {
		return "null", true, true
	}
	if len(v) > 0 && v[0] == '"' {
		var s string
		_ = json.Unmarshal(v, &s)
		return s, true, false
	}
	return string(v), true, false
}

// attrValue is an attribute's chosen value with where it came from.
type attrValue struct {
	value     string
	isNull    bool
	eventTime uint64
	message   string
}

// identity is the model of identify links.
type identity struct {
	owner   map[string]string   // anon:<id> -> winning user
	members map[string][]string // customer -> raw ids
	retired map[string]bool
	// linkAt and linkMsg: when, and by which identify, an anonymous id's
	// history started to count for its user.
	linkAt  map[string]uint64
	linkMsg map[string]string
}

// visible is when ev started to count for its customer: its event time,
// or the link of its anonymous id if that came later.
func (id *identity) visible(ev *ingest.Event) uint64 {
	return max(evTime(ev), id.linkAt[ev.CustomerID()])
}

func (m *model) identity() *identity {
	type claim struct {
		user string
		t    uint64
		msg  string
	}
	best := map[string]claim{}
	raw := map[string]bool{}
	for _, ev := range m.msgs {
		raw[ev.CustomerID()] = true
		if ev.Type != ingest.TypeIdentify || ev.UserID == "" || ev.AnonymousID == "" {
			continue
		}
		anon := anonPrefix + ev.AnonymousID
		c := claim{ev.UserID, evTime(ev), ev.MessageID}
		if b, ok := best[anon]; !ok || c.t < b.t || c.t == b.t && c.msg < b.msg {
			best[anon] = c
		}
	}
	id := &identity{owner: map[string]string{}, members: map[string][]string{}, retired: map[string]bool{}, linkAt: map[string]uint64{}, linkMsg: map[string]string{}}
	for anon, c := range best {
		id.owner[anon] = c.user
		id.linkAt[anon], id.linkMsg[anon] = c.t, c.msg
	}
	for r := range raw {
		if _, linked := id.owner[r]; linked {
			id.retired[r] = true
			continue
		}
		id.members[r] = append(id.members[r], r)
	}
	for anon, user := range id.owner {
		// The linking identify is an event of the user, so the user is
		// already a customer here.
		id.members[user] = append(id.members[user], anon)
	}
	for c, ms := range id.members {
		sort.Strings(ms)
		id.members[c] = ms
	}
	return id
}

// attribute picks the value of name among the events of ids: the latest
// by (event time, message id), or for set_once the first non-null.
func (m *model) attribute(ids []string, name string, setOnce bool) (attrValue, bool) {
	return m.attributeAsOf(ids, name, setOnce, nil, math.MaxUint64)
}

// attributeAsOf is attribute among the events visible at asOf (id nil:
// every event, whenever linked).
func (m *model) attributeAsOf(ids []string, name string, setOnce bool, id *identity, asOf uint64) (attrValue, bool) {
	in := map[string]bool{}
	for _, id := range ids {
		in[id] = true
	}
	var best attrValue
	found := false
	for _, ev := range m.msgs {
		if !in[ev.CustomerID()] || id != nil && id.visible(ev) > asOf {
			continue
		}
		v, ok, isNull := topKey(ev.Traits, name)
		if !ok {
			continue
		}
		c := attrValue{value: v, isNull: isNull, eventTime: evTime(ev), message: ev.MessageID}
		var better bool
		switch {
		case !found:
			better = true
		case setOnce:
			better = !c.isNull && best.isNull ||
				c.isNull == best.isNull && (c.eventTime < best.eventTime || c.eventTime == best.eventTime && c.message < best.message)
		default:
			better = c.eventTime > best.eventTime || c.eventTime == best.eventTime && c.message > best.message
		}
		if better {
			best, found = c, true
		}
	}
	return best, found
}

// occurrence is one signal occurrence; vis is when it started to count
// for the customer.
type occurrence struct {
	t, vis uint64
	msg    string
	value  float64
}

func numericValue(s string) (float64, bool) {
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}

func predHolds(p *Predicate, value string, present bool) bool {
	eq := func(v Value) bool {
		switch v.Kind {
		case ValueNumber:
			f, ok := numericValue(value)
			return ok && f == v.Num
		case ValueBool:
			return value == strconv.FormatBool(v.Bool)
		default:
			return value == v.Str
		}
	}
	switch p.Op {
	case OpExists:
		return present == p.Exists
	case OpEquals:
		return present && eq(p.Values[0])
	case OpNotEquals:
		return !(present && eq(p.Values[0]))
	case OpIn, OpNotIn:
		any := false
		for _, v := range p.Values {
			any = any || eq(v)
		}
		if p.Op == OpIn {
			return present && any
		}
		return !(present && any)
	default:
		f, ok := numericValue(value)
		if !present || !ok {
			return false
		}
		n := p.Values[0].Num
		switch p.Op {
		case OpLt:
			return f < n
		case OpLte:
			return f <= n
		case OpGt:
			return f > n
		default:
			return f >= n
		}
	}
}

// occurrences are s's occurrences among the events of ids.
func (m *model) occurrences(ids []string, s *Signal) []occurrence {
	in := map[string]bool{}
	for _, id := range ids {
		in[id] = true
	}
	var out []occurrence
	for _, ev := range m.msgs {
		if !in[ev.CustomerID()] || ev.Type != s.Type || ev.EventName() != s.Event {
			continue
		}
		ok := true
		for _, f := range s.Where {
			v, found, isNull := topKey(ev.Properties, f.Property)
			ok = ok && predHolds(f.Pred, v, found && !isNull)
		}
		if !ok {
			continue
		}
		o := occurrence{t: evTime(ev), vis: evTime(ev), msg: ev.MessageID}
		if s.Value != "" {
			v, _, _ := topKey(ev.Properties, s.Value)
			o.value, _ = numericValue(v)
		}
		out = append(out, o)
	}
	return out
}

// feature computes f over occurrences as of asOf.
func feature(occ []occurrence, f *Feature, asOf uint64) float64 {
	lo := uint64(0)
	if f.Window > 0 {
		lo = asOf - uint64(f.Window/time.Millisecond)
	}
	var n, sum float64
	for _, o := range occ {
		if o.vis > asOf || f.Window > 0 && o.t <= lo {
			continue
		}
		n++
		sum += o.value
	}
	if f.Sum {
		return sum
	}
	return n
}

// customerModel evaluates one customer's audiences at any moment: on the
// inputs visible then, attributes as of then, each raw id's history
// counting from its link.
type customerModel struct {
	m       *model
	p       *Plan
	id      *identity
	ids     []string
	setOnce map[string]bool
	occ     map[string][]occurrence
}

func (m *model) customer(p *Plan, id *identity, c string) *customerModel {
	cm := &customerModel{m: m, p: p, id: id, ids: id.members[c], setOnce: map[string]bool{}, occ: map[string][]occurrence{}}
	for _, a := range p.Attributes {
		cm.setOnce[a.Name] = a.SetOnce
	}
	for _, s := range p.Signals {
		occ := m.occurrences(cm.ids, s)
		for i := range occ {
			occ[i].vis = max(occ[i].t, id.linkAt[m.msgs[occ[i].msg].CustomerID()])
		}
		cm.occ[s.ID] = occ
	}
	return cm
}

// holds says whether the customer satisfies n at asOf.
func (cm *customerModel) holds(n *Condition, asOf uint64) bool {
	switch n.Kind {
	case KindAll:
		for _, ch := range n.Children {
			if !cm.holds(ch, asOf) {
				return false
			}
		}
		return true
	case KindAny:
		for _, ch := range n.Children {
			if cm.holds(ch, asOf) {
				return true
			}
		}
		return false
	case KindNot:
		return !cm.holds(n.Children[0], asOf)
	case KindAttribute:
		v, ok := cm.m.attributeAsOf(cm.ids, n.Attribute, cm.setOnce[n.Attribute], cm.id, asOf)
		return predHolds(n.Pred, v.value, ok && !v.isNull)
	default:
		var f *Feature
		sig := &Signal{Type: n.Type, Event: n.Event, Where: sortedFilters(n.Where), Value: n.Sum}
		sig.ID = signalID(sig)
		for _, pf := range cm.p.Features {
			if pf.Signal.ID == sig.ID && pf.Window == n.Within {
				f = pf
			}
		}
		x := feature(cm.occ[sig.ID], f, asOf)
		switch {
		case n.Negated:
			return x == 0
		case n.AtLeast != nil && x < *n.AtLeast:
			return false
		case n.AtMost != nil && x > *n.AtMost:
			return false
		}
		return true
	}
}

// members computes each audience's members as of asOf.
func (m *model) members(p *Plan, asOf uint64) map[string][]string {
	id := m.identity()
	out := map[string][]string{}
	for c := range id.members {
		cm := m.customer(p, id, c)
		for _, a := range p.Audiences {
			if cm.holds(a.Audience.When, asOf) {
				out[a.Audience.ID] = append(out[a.Audience.ID], c)
			}
		}
	}
	for _, v := range out {
		sort.Strings(v)
	}
	return out
}

// qualification is when a customer's membership of an audience took the
// value it has, and the message that made it so ("" when only time did).
type qualification struct {
	member bool
	t      uint64
	msg    string
}

// qualifications answers, for every customer and audience, what a user
// means by "when did this customer qualify (or stop)?": the earliest moment
// from which the condition has held its value at asOf without a break. It
// is found by brute force: the condition can only change when one of the
// customer's events becomes visible, when an event leaves a window, or at
// a link, so it is evaluated at every such moment.
func (m *model) qualifications(p *Plan, asOf uint64) map[[2]string]qualification {
	id := m.identity()
	out := map[[2]string]qualification{}
	for c, ids := range id.members {
		cm := m.customer(p, id, c)
		in := map[string]bool{}
		for _, r := range ids {
			in[r] = true
		}
		var evs []*ingest.Event
		for _, ev := range m.msgs {
			if in[ev.CustomerID()] {
				evs = append(evs, ev)
			}
		}
		for _, a := range p.Audiences {
			moments := map[uint64]bool{asOf: true}
			for _, ev := range evs {
				if v := id.visible(ev); v <= asOf {
					moments[v] = true
				}
				for _, f := range a.Features {
					if end := evTime(ev) + uint64(f.Window/time.Millisecond); f.Window > 0 && end <= asOf {
						moments[end] = true
					}
				}
			}
			var at []uint64
			for t := range moments {
				at = append(at, t)
			}
			sort.Slice(at, func(i, j int) bool { return at[i] > at[j] })
			want := cm.holds(a.Audience.When, asOf)
			since := at[len(at)-1]
			for k := 1; k < len(at); k++ {
				if cm.holds(a.Audience.When, at[k]) != want {
					since = at[k-1]
					break
				}
			}
			q := qualification{member: want, t: since}
			// The message: an input of the audience that became visible at
			// that moment by its own event time, or the identify whose link
			// made an anonymous history visible then; the greatest id wins.
			for _, ev := range evs {
				if evTime(ev) == since && id.visible(ev) == since && isInput(ev, a) && ev.MessageID > q.msg {
					q.msg = ev.MessageID
				}
			}
			for _, r := range ids {
				if at, ok := id.linkAt[r]; ok && at == since && id.linkMsg[r] > q.msg {
					q.msg = id.linkMsg[r]
				}
			}
			out[[2]string{a.Audience.ID, c}] = q
		}
	}
	return out
}

// isInput says whether ev can change audience a: it sends one of the
// attributes a reads, or is an occurrence of one of its signals.
func isInput(ev *ingest.Event, a *Compiled) bool {
	for _, name := range a.Attributes {
		if _, ok, _ := topKey(ev.Traits, name); ok {
			return true
		}
	}
	for _, s := range a.Signals() {
		if ev.Type != s.Type || ev.EventName() != s.Event {
			continue
		}
		ok := true
		for _, f := range s.Where {
			v, found, isNull := topKey(ev.Properties, f.Property)
			ok = ok && predHolds(f.Pred, v, found && !isNull)
		}
		if ok {
			return true
		}
	}
	return false
}

// bucketKey identifies a customer_event_buckets row.
type bucketKey struct {
	customer, typ, event string
	hour                 int64
}

type bucketVal struct {
	count       uint64
	first, last uint64
}

// buckets computes customer_event_buckets; hours start in loc, the
// server's time zone.
func (m *model) buckets(loc *time.Location) map[bucketKey]bucketVal {
	seen := map[bucketKey]map[string]bool{}
	out := map[bucketKey]bucketVal{}
	for _, ev := range m.msgs {
		lt := ev.Timestamp.In(loc)
		hour := time.Date(lt.Year(), lt.Month(), lt.Day(), lt.Hour(), 0, 0, 0, loc).Unix()
		k := bucketKey{ev.CustomerID(), ev.Type, ev.EventName(), hour}
		if seen[k] == nil {
			seen[k] = map[string]bool{}
		}
		seen[k][ev.MessageID] = true
		v := out[k]
		t := evTime(ev)
		if v.first == 0 || t < v.first {
			v.first = t
		}
		if t > v.last {
			v.last = t
		}
		v.count = uint64(len(seen[k]))
		out[k] = v
	}
	return out
}
