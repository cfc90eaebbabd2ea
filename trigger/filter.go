package trigger

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/tideline-dev/tideline/definition"
)

// Condition operators of event filters.
const (
	OpEq     = "eq"
	OpNe     = "ne"
	OpGt     = "gt"
	OpGte    = "gte"
	OpLt     = "lt"
	OpLte    = "lte"
	OpIn     = "in"
	OpNotIn  = "not_in"
	OpExists = "exists"
)

// Condition is one test on an event property or context field. Events are
// matched in Go after the poller read them, so no value from a campaign
// file ever reaches SQL.
type Condition struct {
	// Property is the path as written: a dotted path into the event's
	// properties, or into its context when it starts with "context.".
	Property string
	// Path is Property parsed.
	Path definition.FieldPath
	// Op is one of eq, ne, gt, gte, lt, lte, in, not_in, exists.
	Op string
	// Value is a string, float64 or bool; a []any for in and not_in; a
	// bool for exists.
	Value any
}

// String writes the condition the way explain shows it.
func (c Condition) String() string {
	switch c.Op {
	case OpExists:
		if c.Value == true {
			return c.Property + " exists"
		}
		return c.Property + " does not exist"
	case OpIn, OpNotIn:
		parts := make([]string, 0, len(c.Value.([]any)))
		for _, v := range c.Value.([]any) {
			parts = append(parts, fmtValue(v))
		}
		word := "in"
		if c.Op == OpNotIn {
			word = "not in"
		}
		return fmt.Sprintf("%s %s [%s]", c.Property, word, strings.Join(parts, ", "))
	}
	sym := map[string]string{OpEq: "=", OpNe: "!=", OpGt: ">", OpGte: ">=", OpLt: "<", OpLte: "<="}[c.Op]
	return fmt.Sprintf("%s %s %s", c.Property, sym, fmtValue(c.Value))
}

func fmtValue(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	return fmt.Sprint(v)
}

// parseConditions reads one path's YAML: a scalar (equality) or a map
// of operators to values, e.g. {gt: 100} or {in: [EUR, USD]}.
func parseConditions(prop string, x any) ([]Condition, error) {
	path, err := definition.ParseFieldPath(prop)
	if err != nil {
		return nil, err
	}
	m, ok := x.(map[string]any)
	if !ok {
		v, err := scalar(x)
		if err != nil {
			return nil, err
		}
		return []Condition{{Property: prop, Path: path, Op: OpEq, Value: v}}, nil
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("no operator: write e.g. {gt: 100} or {in: [a, b]}")
	}
	ops := make([]string, 0, len(m))
	for op := range m {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	var out []Condition
	for _, op := range ops {
		raw := m[op]
		c := Condition{Property: prop, Path: path, Op: op}
		switch op {
		case OpEq, OpNe:
			v, err := scalar(raw)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", op, err)
			}
			c.Value = v
		case OpGt, OpGte, OpLt, OpLte:
			f, ok := number(raw)
			if !ok {
				return nil, fmt.Errorf("%s: want a number, got %v", op, raw)
			}
			c.Value = f
		case OpIn, OpNotIn:
			list, ok := raw.([]any)
			if !ok || len(list) == 0 {
				return nil, fmt.Errorf("%s: want a non-empty list, e.g. [EUR, USD]", op)
			}
			vals := make([]any, 0, len(list))
			for _, item := range list {
				v, err := scalar(item)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", op, err)
				}
				vals = append(vals, v)
			}
			c.Value = vals
		case OpExists:
			b, ok := raw.(bool)
			if !ok {
				return nil, fmt.Errorf("exists: want true or false, got %v", raw)
			}
			c.Value = b
		default:
			return nil, fmt.Errorf("unknown operator %q: use eq, ne, gt, gte, lt, lte, in, not_in or exists", op)
		}
		out = append(out, c)
	}
	return out, nil
}

// scalar normalises a YAML scalar to string, float64 or bool.
func scalar(x any) (any, error) {
	switch t := x.(type) {
	case string, bool:
		return t, nil
	}
	if f, ok := number(x); ok {
		return f, nil
	}
	return nil, fmt.Errorf("want a string, number or boolean, got %v", x)
}

func number(x any) (float64, bool) {
	switch t := x.(type) {
	case int:
		return float64(t), true
	case int64:
		return float64(t), true
	case uint64:
		return float64(t), true
	case float64:
		return t, true
	case json.Number:
		f, err := t.Float64()
		return f, err == nil
	}
	return 0, false
}

// Fields is what an event filter reads of an event besides its name.
type Fields struct {
	// Properties and Context are the event's objects as JSON.
	Properties, Context string
	// ContextIP is the events table's context_ip: context.ip as sent, else
	// the address the collector saw the request from. context.ip reads it
	// when the context has none, as Segment's API fills context.ip in.
	ContextIP string
}

// Matches reports whether an event named name with the given fields
// passes the filter. A malformed object matches no condition on it, so a
// filter with such conditions rejects the event.
func (f EventFilter) Matches(name string, in Fields) bool {
	if name != f.Name {
		return false
	}
	var props, ctx map[string]any
	var propsRead, ctxRead bool
	for _, c := range f.Where {
		var doc map[string]any
		switch c.Path.Source {
		case definition.SourceContext:
			if !ctxRead {
				// The events table stores an absent context as ''.
				ctx, ctxRead = map[string]any{}, true
				if in.Context != "" {
					ctx = decodeObject(in.Context)
				}
				if ip := in.ContextIP; ip != "" {
					if ctx == nil {
						ctx = map[string]any{}
					}
					if _, ok := ctx["ip"]; !ok {
						ctx["ip"] = ip
					}
				}
			}
			doc = ctx
		default:
			if !propsRead {
				props, propsRead = decodeObject(in.Properties), true
			}
			doc = props
		}
		if doc == nil || !c.holds(doc) {
			return false
		}
	}
	return true
}

// decodeObject reads a JSON object keeping numbers exact; nil when s is
// not one.
func decodeObject(s string) map[string]any {
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil
	}
	return m
}

func (c Condition) holds(doc map[string]any) bool {
	v, found := lookup(doc, c.Path.Names)
	switch c.Op {
	case OpExists:
		return found == c.Value.(bool)
	case OpNe:
		return !found || !equal(v, c.Value)
	case OpNotIn:
		if !found {
			return true
		}
		for _, want := range c.Value.([]any) {
			if equal(v, want) {
				return false
			}
		}
		return true
	}
	if !found {
		return false
	}
	switch c.Op {
	case OpEq:
		return equal(v, c.Value)
	case OpIn:
		for _, want := range c.Value.([]any) {
			if equal(v, want) {
				return true
			}
		}
		return false
	}
	got, ok := numeric(v)
	if !ok {
		return false
	}
	want := c.Value.(float64)
	switch c.Op {
	case OpGt:
		return got > want
	case OpGte:
		return got >= want
	case OpLt:
		return got < want
	case OpLte:
		return got <= want
	}
	return false
}

// lookup follows names through nested objects.
func lookup(m map[string]any, names []string) (any, bool) {
	var cur any = m
	for _, part := range names {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[part]; !ok {
			return nil, false
		}
	}
	return cur, cur != nil
}

// numeric reads a JSON number, or a string holding one: SDKs often send
// amounts as strings.
func numeric(v any) (float64, bool) {
	switch t := v.(type) {
	case json.Number:
		f, err := t.Float64()
		return f, err == nil
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
		return f, err == nil
	}
	return 0, false
}

// equal compares a JSON value with a campaign value: numerically when
// both read as numbers, else as strings or booleans.
func equal(got, want any) bool {
	switch w := want.(type) {
	case bool:
		b, ok := got.(bool)
		return ok && b == w
	case float64:
		f, ok := numeric(got)
		return ok && f == w
	case string:
		switch g := got.(type) {
		case string:
			return g == w
		case json.Number:
			return g.String() == w
		}
	}
	return false
}
