package materialize

import (
	"fmt"
	"math"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/tideline-dev/tideline/definition"
)

// ParseAudience reads one audience definition. file names it in errors.
// A non-nil error is DefinitionErrors listing every problem found.
func ParseAudience(file string, src []byte) (*Audience, error) {
	p := &defParser{file: file}
	a := p.audience(src)
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	a.File = file
	a.Source = append([]byte(nil), src...)
	return a, nil
}

type defParser struct {
	file  string
	errs  DefinitionErrors
	count int
}

func (p *defParser) fail(n ast.Node, field, format string, args ...any) {
	e := &DefinitionError{File: p.file, Field: field, Msg: fmt.Sprintf(format, args...)}
	e.Line, e.Column = definition.Position(n)
	p.errs = append(p.errs, e)
}

// entry is one key of a mapping, with its nodes for positions.
type entry struct {
	key   string
	keyN  ast.Node
	value ast.Node
}

// mapping returns n's entries in order, or false (after reporting) when n
// is not a mapping or repeats a key.
func (p *defParser) mapping(n ast.Node, field, what string) ([]entry, bool) {
	n = definition.Unwrap(n)
	var values []*ast.MappingValueNode
	switch m := n.(type) {
	case *ast.MappingNode:
		values = m.Values
	case *ast.MappingValueNode:
		values = []*ast.MappingValueNode{m}
	default:
		p.fail(n, field, "expected %s (a mapping of keys to values), found %s", what, describe(n))
		return nil, false
	}
	seen := map[string]bool{}
	out := make([]entry, 0, len(values))
	ok := true
	for _, mv := range values {
		key := definition.Key(mv.Key)
		if seen[key] {
			p.fail(mv.Key, join(field, key), "%q is given twice", key)
			ok = false
			continue
		}
		seen[key] = true
		out = append(out, entry{key: key, keyN: mv.Key, value: mv.Value})
	}
	return out, ok
}

func describe(n ast.Node) string {
	switch n.(type) {
	case nil, *ast.NullNode:
		return "nothing"
	case *ast.StringNode, *ast.LiteralNode:
		return "text"
	case *ast.IntegerNode, *ast.FloatNode:
		return "a number"
	case *ast.BoolNode:
		return "true/false"
	case *ast.SequenceNode:
		return "a list"
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.AliasNode:
		return "an alias (*name)"
	default:
		return n.Type().String()
	}
}

func join(field, key string) string {
	if field == "" {
		return key
	}
	return field + "." + key
}

func (p *defParser) audience(src []byte) *Audience {
	a := &Audience{}
	f, err := parser.ParseBytes(src, 0)
	if err != nil {
		e := &DefinitionError{File: p.file, Msg: "not valid YAML: " + err.Error()}
		if se, ok := err.(*yaml.SyntaxError); ok {
			e.Msg = "not valid YAML: " + se.Message
			if se.Token != nil && se.Token.Position != nil {
				e.Line, e.Column = se.Token.Position.Line, se.Token.Position.Column
			}
		}
		p.errs = append(p.errs, e)
		return a
	}
	var docs []*ast.DocumentNode
	for _, d := range f.Docs {
		if d.Body != nil {
			docs = append(docs, d)
		}
	}
	if len(docs) != 1 {
		p.fail(nil, "", "a file holds exactly one audience, found %d YAML documents", len(docs))
		return a
	}
	entries, ok := p.mapping(docs[0].Body, "", "an audience")
	if !ok {
		return a
	}
	var whenN ast.Node
	for _, e := range entries {
		switch e.key {
		case "id":
			a.ID, _ = p.text(e.value, "id")
		case "name":
			a.Name, _ = p.text(e.value, "name")
		case "description":
			a.Description, _ = p.text(e.value, "description")
		case "when":
			whenN = e.value
		case "lanes":
			a.Lanes = p.lanes(e.value, "lanes")
		case "completeness":
			s, ok := p.text(e.value, "completeness")
			switch c := Completeness(s); {
			case !ok:
			case c == CompletenessWatermark || c == CompletenessEager:
				a.Completeness = c
			default:
				p.fail(e.value, "completeness", "%q is not a policy: use watermark (attribute conditions wait for the lanes that carry traits) or eager (decide on the values present)", s)
			}
		default:
			p.fail(e.keyN, e.key, "unknown field: an audience has id, name, description, when, lanes and completeness")
		}
	}
	body := docs[0].Body
	switch {
	case a.ID == "" && !p.failedAt("id"):
		p.fail(body, "id", "missing: give the audience an id of lower-case letters, digits and underscores, e.g. gold_repeat_buyers")
	case a.ID != "" && !idRe.MatchString(a.ID):
		p.fail(findValue(entries, "id"), "id", "%q is not a valid id: use lower-case letters, digits and underscores, starting with a letter (at most 63)", a.ID)
	}
	if a.Name == "" && !p.failedAt("name") {
		a.Name = a.ID
	}
	if a.Completeness == "" {
		a.Completeness = CompletenessWatermark
	}
	if whenN == nil {
		p.fail(body, "when", "missing: give the membership condition, e.g. when: {attribute: plan, equals: gold}")
		return a
	}
	a.When = p.condition(whenN, "when", 1)
	return a
}

// laneRe is what a lane name looks like (the loader's lanes are named so).
var laneRe = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// lanes reads a non-empty list of distinct lane names.
func (p *defParser) lanes(n ast.Node, field string) []string {
	seq, ok := definition.Unwrap(n).(*ast.SequenceNode)
	if !ok || len(seq.Values) == 0 {
		p.fail(n, field, "expected a non-empty list of lanes, e.g. [web], found %s", describe(definition.Unwrap(n)))
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for i, v := range seq.Values {
		f := fmt.Sprintf("%s[%d]", field, i)
		s, ok := p.text(v, f)
		switch {
		case !ok:
			return nil
		case !laneRe.MatchString(s):
			p.fail(v, f, "%q is not a lane name: lower-case letters, digits and underscores, e.g. web or server", s)
			return nil
		case seen[s]:
			p.fail(v, f, "lane %q is listed twice", s)
			return nil
		}
		seen[s] = true
		out = append(out, s)
	}
	return out
}

func (p *defParser) failedAt(field string) bool {
	for _, e := range p.errs {
		if e.Field == field {
			return true
		}
	}
	return false
}

func findValue(entries []entry, key string) ast.Node {
	for _, e := range entries {
		if e.key == key {
			return e.value
		}
	}
	return nil
}

var conditionKinds = []string{"all", "any", "not", "attribute", "performed", "not_performed"}

func (p *defParser) condition(n ast.Node, field string, depth int) *Condition {
	if depth > maxDepth {
		p.fail(n, field, "conditions are nested deeper than %d levels", maxDepth)
		return nil
	}
	p.count++
	if p.count == maxConditions+1 {
		p.fail(n, field, "an audience has at most %d conditions", maxConditions)
	}
	entries, ok := p.mapping(n, field, "a condition")
	if !ok {
		return nil
	}
	var kinds []string
	for _, e := range entries {
		for _, k := range conditionKinds {
			if e.key == k {
				kinds = append(kinds, k)
			}
		}
	}
	switch len(kinds) {
	case 0:
		p.fail(n, field, "a condition needs one of all, any, not, attribute, performed or not_performed")
		return nil
	case 1:
	default:
		p.fail(n, field, "a condition has exactly one of all, any, not, attribute, performed or not_performed; found %s (wrap them in all: [...] or any: [...])", strings.Join(kinds, " and "))
		return nil
	}
	c := &Condition{Field: field}
	switch kinds[0] {
	case "all", "any":
		c.Kind = KindAll
		if kinds[0] == "any" {
			c.Kind = KindAny
		}
		for _, e := range entries {
			if e.key != kinds[0] {
				p.fail(e.keyN, join(field, e.key), "unknown field: %s takes only a list of conditions", kinds[0])
			}
		}
		list := definition.Unwrap(findValue(entries, kinds[0]))
		seq, ok := list.(*ast.SequenceNode)
		if !ok || len(seq.Values) == 0 {
			p.fail(list, join(field, kinds[0]), "expected a non-empty list of conditions, found %s", describe(list))
			return nil
		}
		for i, v := range seq.Values {
			if ch := p.condition(v, fmt.Sprintf("%s.%s[%d]", field, kinds[0], i), depth+1); ch != nil {
				c.Children = append(c.Children, ch)
			}
		}
	case "not":
		c.Kind = KindNot
		for _, e := range entries {
			if e.key != "not" {
				p.fail(e.keyN, join(field, e.key), "unknown field: not takes one condition")
			}
		}
		if ch := p.condition(findValue(entries, "not"), join(field, "not"), depth+1); ch != nil {
			c.Children = []*Condition{ch}
		}
	case "attribute":
		c.Kind = KindAttribute
		p.attribute(c, entries, n, field)
	default:
		c.Kind = KindPerformed
		p.performed(c, entries, kinds[0], field)
	}
	return c
}

func (p *defParser) attribute(c *Condition, entries []entry, n ast.Node, field string) {
	for _, e := range entries {
		f := join(field, e.key)
		switch {
		case e.key == "attribute":
			name, ok := p.text(e.value, f)
			if ok && !attributeRe.MatchString(name) {
				p.fail(e.value, f, "%q is not a valid attribute name: use letters, digits and underscores (at most 63)", name)
			}
			c.Attribute = name
		case isOp(e.key):
			if c.Pred != nil {
				p.fail(e.keyN, f, "an attribute condition has one operator; %s is already given", c.Pred.Op)
				continue
			}
			c.Pred = p.predicate(Op(e.key), e.value, f)
		default:
			p.fail(e.keyN, f, "unknown field: an attribute condition has attribute and one of %s", opList())
		}
	}
	if c.Pred == nil && !p.anyFailUnder(field) {
		p.fail(n, field, "attribute %q needs an operator: one of %s", c.Attribute, opList())
	}
}

func (p *defParser) anyFailUnder(field string) bool {
	for _, e := range p.errs {
		if e.Field == field || strings.HasPrefix(e.Field, field+".") {
			return true
		}
	}
	return false
}

func isOp(k string) bool {
	for _, op := range predicateOps {
		if string(op) == k {
			return true
		}
	}
	return false
}

func opList() string {
	s := make([]string, len(predicateOps))
	for i, op := range predicateOps {
		s[i] = string(op)
	}
	return strings.Join(s, ", ")
}

func (p *defParser) predicate(op Op, n ast.Node, field string) *Predicate {
	pr := &Predicate{Op: op}
	switch op {
	case OpExists:
		b, ok := definition.Unwrap(n).(*ast.BoolNode)
		if !ok {
			p.fail(n, field, "expected true or false, found %s", describe(definition.Unwrap(n)))
			return nil
		}
		pr.Exists = b.Value
	case OpIn, OpNotIn:
		seq, ok := definition.Unwrap(n).(*ast.SequenceNode)
		if !ok || len(seq.Values) == 0 {
			p.fail(n, field, "expected a non-empty list of values, e.g. [gold, silver], found %s", describe(definition.Unwrap(n)))
			return nil
		}
		if len(seq.Values) > maxInValues {
			p.fail(n, field, "at most %d values", maxInValues)
			return nil
		}
		for i, v := range seq.Values {
			val, ok := p.value(v, fmt.Sprintf("%s[%d]", field, i))
			if !ok {
				return nil
			}
			pr.Values = append(pr.Values, val)
		}
	case OpLt, OpLte, OpGt, OpGte:
		val, ok := p.value(n, field)
		if !ok {
			return nil
		}
		if val.Kind != ValueNumber {
			p.fail(n, field, "%s compares numbers; %s is not a number", op, val)
			return nil
		}
		pr.Values = []Value{val}
	default:
		val, ok := p.value(n, field)
		if !ok {
			return nil
		}
		pr.Values = []Value{val}
	}
	return pr
}

func (p *defParser) value(n ast.Node, field string) (Value, bool) {
	switch v := definition.Unwrap(n).(type) {
	case *ast.StringNode:
		return Value{Kind: ValueString, Str: v.Value}, p.checkText(n, field, v.Value, 4096) && p.matchable(n, field, v.Value)
	case *ast.LiteralNode:
		return Value{Kind: ValueString, Str: v.Value.Value}, p.checkText(n, field, v.Value.Value, 4096) && p.matchable(n, field, v.Value.Value)
	case *ast.IntegerNode:
		switch x := v.Value.(type) {
		case int64:
			return Value{Kind: ValueNumber, Num: float64(x)}, true
		case uint64:
			return Value{Kind: ValueNumber, Num: float64(x)}, true
		}
	case *ast.FloatNode:
		if math.IsNaN(v.Value) || math.IsInf(v.Value, 0) {
			p.fail(n, field, "the number must be finite")
			return Value{}, false
		}
		return Value{Kind: ValueNumber, Num: v.Value}, true
	case *ast.BoolNode:
		return Value{Kind: ValueBool, Bool: v.Value}, true
	}
	p.fail(n, field, "expected a text, number or true/false value, found %s", describe(definition.Unwrap(n)))
	return Value{}, false
}

// matchable refuses a text value the JSON functions of ClickHouse 18.16
// cannot return exactly from stored traits and properties, so that no
// condition could ever be true: one ending with a backslash (the scanner
// takes the closing quote for an escaped one) or holding a tab, newline or
// other control character.
func (p *defParser) matchable(n ast.Node, field, s string) bool {
	switch {
	case strings.HasSuffix(s, `\`):
		p.fail(n, field, "the value %q ends with a backslash, which ClickHouse's JSON extraction does not return: it cannot be matched", s)
	case strings.ContainsFunc(s, unicode.IsControl):
		p.fail(n, field, "the value %q contains a tab, newline or other control character, which ClickHouse's JSON extraction does not return exactly: it cannot be matched", s)
	default:
		return true
	}
	return false
}

// text reads a scalar as text (numbers as written).
func (p *defParser) text(n ast.Node, field string) (string, bool) {
	var s string
	switch v := definition.Unwrap(n).(type) {
	case *ast.StringNode:
		s = v.Value
	case *ast.LiteralNode:
		s = v.Value.Value
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode:
		s = v.GetToken().Value
	default:
		p.fail(n, field, "expected text, found %s", describe(definition.Unwrap(n)))
		return "", false
	}
	return s, p.checkText(n, field, s, 4096)
}

func (p *defParser) checkText(n ast.Node, field, s string, max int) bool {
	switch {
	case !utf8.ValidString(s):
		p.fail(n, field, "not valid UTF-8")
	case len(s) > max:
		p.fail(n, field, "longer than %d bytes", max)
	case strings.ContainsFunc(s, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\t' }):
		p.fail(n, field, "contains control characters")
	default:
		return true
	}
	return false
}

// name reads an event or property name: non-empty text without quotes,
// backslashes or control characters, which JSON would escape and the
// ClickHouse JSON functions would then not find.
func (p *defParser) name(n ast.Node, field, what string) string {
	s, ok := p.text(n, field)
	if !ok {
		return ""
	}
	switch {
	case strings.TrimSpace(s) == "":
		p.fail(n, field, "%s is empty", what)
	case len(s) > maxNameLen:
		p.fail(n, field, "%s is longer than %d bytes", what, maxNameLen)
	case strings.ContainsAny(s, "\"\\\n\t"):
		p.fail(n, field, "%s %q contains a quote, backslash, tab or newline, which JSON escapes: it cannot be matched", what, s)
	default:
		return s
	}
	return ""
}

// anyGroup, as the group of a performed condition of type group, counts
// the calls of every group.
const anyGroup = "*"

func (p *defParser) performed(c *Condition, entries []entry, kind, field string) {
	c.Negated = kind == "not_performed"
	c.Type = "track"
	var countN ast.Node
	for _, e := range entries {
		f := join(field, e.key)
		switch e.key {
		case "performed", "not_performed":
			c.Event = p.name(e.value, f, "the event name")
		case "type":
			t, ok := p.text(e.value, f)
			if ok && t != "track" && t != "page" && t != "screen" && t != "group" {
				p.fail(e.value, f, "%q: type is track (the default), page, screen or group", t)
			}
			c.Type = t
		case "within":
			s, ok := p.text(e.value, f)
			if !ok {
				continue
			}
			d, err := parseWindow(s)
			if err != nil {
				p.fail(e.value, f, "%v", err)
				continue
			}
			c.Within = d
		case "at_least", "at_most":
			if c.Negated {
				p.fail(e.keyN, f, "not_performed takes no %s: it means zero times (use performed with at_most instead)", e.key)
				continue
			}
			v, ok := p.value(e.value, f)
			if !ok {
				continue
			}
			if v.Kind != ValueNumber || v.Num < 0 {
				p.fail(e.value, f, "expected a number of at least 0, found %s", v)
				continue
			}
			num := v.Num
			if e.key == "at_least" {
				c.AtLeast = &num
			} else {
				c.AtMost = &num
			}
			countN = e.value
		case "sum":
			if c.Negated {
				p.fail(e.keyN, f, "not_performed takes no sum")
				continue
			}
			c.Sum = p.name(e.value, f, "the property name")
		case "where":
			p.where(c, e.value, f)
		default:
			p.fail(e.keyN, f, "unknown field: %s takes type, where, within, at_least, at_most and sum", kind)
		}
	}
	if c.Type == "group" {
		// performed names the group: a groupId, or * for any group.
		c.Group, c.Event = c.Event, ""
		if c.Group == anyGroup {
			c.Group = ""
		}
	}
	if c.Sum == "" && countN != nil {
		for _, b := range []*float64{c.AtLeast, c.AtMost} {
			if b != nil && *b != math.Trunc(*b) {
				p.fail(countN, field, "a count bound must be a whole number, found %v", *b)
				break
			}
		}
	}
	if c.Sum != "" && c.AtLeast == nil && c.AtMost == nil && !p.anyFailUnder(field) {
		p.fail(findValue(entries, "sum"), join(field, "sum"), "sum needs at_least or at_most, e.g. at_least: 500")
	}
	if c.AtLeast != nil && c.AtMost != nil && *c.AtLeast > *c.AtMost {
		p.fail(countN, field, "at_least %v is more than at_most %v: no customer can match", *c.AtLeast, *c.AtMost)
	}
	if c.Sum == "" && c.AtLeast == nil && c.AtMost == nil && !c.Negated {
		one := 1.0
		c.AtLeast = &one
	}
}

func (p *defParser) where(c *Condition, n ast.Node, field string) {
	seq, ok := definition.Unwrap(n).(*ast.SequenceNode)
	if !ok || len(seq.Values) == 0 {
		p.fail(n, field, "expected a non-empty list of property filters, e.g. - {property: currency, equals: USD}, found %s", describe(definition.Unwrap(n)))
		return
	}
	for i, item := range seq.Values {
		f := fmt.Sprintf("%s[%d]", field, i)
		entries, ok := p.mapping(item, f, "a property filter")
		if !ok {
			continue
		}
		pf := &PropertyFilter{}
		for _, e := range entries {
			ef := join(f, e.key)
			switch {
			case e.key == "property":
				pf.Property = p.name(e.value, ef, "the property name")
				if strings.HasPrefix(pf.Property, "context.") || pf.Property == "context" {
					col, err := contextColumn(pf.Property)
					if err != nil {
						p.fail(e.value, ef, "%v", err)
						pf.Property = ""
						continue
					}
					pf.Column = col
				}
			case isOp(e.key):
				if pf.Pred != nil {
					p.fail(e.keyN, ef, "a property filter has one operator; %s is already given", pf.Pred.Op)
					continue
				}
				pf.Pred = p.predicate(Op(e.key), e.value, ef)
			default:
				p.fail(e.keyN, ef, "unknown field: a property filter has property and one of %s", opList())
			}
		}
		switch {
		case pf.Property == "" && !p.anyFailUnder(f):
			p.fail(item, f, "missing property: name the event property to filter on")
		case pf.Pred == nil && !p.anyFailUnder(f):
			p.fail(item, f, "property %q needs an operator: one of %s", pf.Property, opList())
		case pf.Property != "" && pf.Pred != nil:
			c.Where = append(c.Where, pf)
		}
	}
}
