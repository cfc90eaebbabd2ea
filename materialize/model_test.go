package materialize

import (
	"bytes"
	"encoding/json"
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
	id := &identity{owner: map[string]string{}, members: map[string][]string{}, retired: map[string]bool{}}
	for anon, c := range best {
		id.owner[anon] = c.user
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
	in := map[string]bool{}
	for _, id := range ids {
		in[id] = true
	}
	var best attrValue
	found := false
	for _, ev := range m.msgs {
		if !in[ev.CustomerID()] {
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

// occurrence is one signal occurrence.
type occurrence struct {
	t     uint64
	msg   string
	value float64
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
		o := occurrence{t: evTime(ev), msg: ev.MessageID}
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
		if o.t > asOf || f.Window > 0 && o.t <= lo {
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

// members computes each audience's members as of asOf.
func (m *model) members(p *Plan, asOf uint64) map[string][]string {
	id := m.identity()
	setOnce := map[string]bool{}
	for _, a := range p.Attributes {
		setOnce[a.Name] = a.SetOnce
	}
	out := map[string][]string{}
	for c, ids := range id.members {
		occ := map[string][]occurrence{}
		for _, s := range p.Signals {
			occ[s.ID] = m.occurrences(ids, s)
		}
		var eval func(n *Condition) bool
		eval = func(n *Condition) bool {
			switch n.Kind {
			case KindAll:
				for _, ch := range n.Children {
					if !eval(ch) {
						return false
					}
				}
				return true
			case KindAny:
				for _, ch := range n.Children {
					if eval(ch) {
						return true
					}
				}
				return false
			case KindNot:
				return !eval(n.Children[0])
			case KindAttribute:
				v, ok := m.attribute(ids, n.Attribute, setOnce[n.Attribute])
				return predHolds(n.Pred, v.value, ok && !v.isNull)
			default:
				var f *Feature
				sig := &Signal{Type: n.Type, Event: n.Event, Where: sortedFilters(n.Where), Value: n.Sum}
				sig.ID = signalID(sig)
				for _, pf := range p.Features {
					if pf.Signal.ID == sig.ID && pf.Window == n.Within {
						f = pf
					}
				}
				x := feature(occ[sig.ID], f, asOf)
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
		for _, a := range p.Audiences {
			if eval(a.Audience.When) {
				out[a.Audience.ID] = append(out[a.Audience.ID], c)
			}
		}
	}
	for _, v := range out {
		sort.Strings(v)
	}
	return out
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
