package materialize

import (
	"fmt"
	"strings"
)

// only returns the plan of one audience: its attributes, signals and features.
func (p *Plan) only(c *Compiled) *Plan {
	sub := &Plan{Audiences: []*Compiled{c}, Features: c.Features, Signals: c.Signals()}
	for _, m := range p.Attributes {
		for _, a := range c.Attributes {
			if m.Name == a {
				sub.Attributes = append(sub.Attributes, m)
			}
		}
	}
	return sub
}

// Explain describes how audience id is evaluated: the condition, what each
// column means, the views that maintain its inputs and the query the
// evaluator runs. It is what `tideline audiences explain` prints.
func (p *Plan) Explain(id string) (string, error) {
	c := p.Audience(id)
	if c == nil {
		return "", fmt.Errorf("%w %q", ErrUnknownAudience, id)
	}
	sub := p.only(c)
	var b strings.Builder
	a := c.Audience
	fmt.Fprintf(&b, "-- audience %s: %s\n", a.ID, a.Name)
	if a.Description != "" {
		for _, line := range wrap(strings.TrimSpace(a.Description), 74) {
			fmt.Fprintf(&b, "--   %s\n", line)
		}
	}
	fmt.Fprintf(&b, "-- file:    %s\n-- version: %s\n", a.File, c.Version)
	b.WriteString(`--
-- A customer is a member while the condition below holds. It is evaluated
-- per customer (a user together with the anonymous ids an identify linked to
-- it) on the inputs visible at a moment: attribute values and event
-- occurrences with event time up to it.
--
-- completeness
`)
	lanes := "derived: the evaluated lanes that have carried its inputs (input_lanes; `tideline audiences list` shows them)"
	if len(a.Lanes) > 0 {
		lanes = strings.Join(a.Lanes, ", ") + " (lanes: in the definition)"
	}
	fmt.Fprintf(&b, "--   lanes:        %s\n", lanes)
	fmt.Fprintf(&b, "--   attributes:   %s\n", a.Completeness)
	fmt.Fprintf(&b, "--   late data:    %s: %s\n", c.Direction, directionWords[c.Direction])
	b.WriteString(`--   Decisions late data could falsify are made as of the smallest watermark
--   of its lanes; the others as of the freshest lane watermark.
--   A qualification is dated by the moment the condition became true and
--   stayed true, with the message that made it so.

-- condition
`)
	b.WriteString(c.Condition)
	b.WriteString("\n\n-- columns\n")
	for _, m := range sub.Attributes {
		how := "latest value by event time (ties: greatest message id)"
		if m.SetOnce {
			how = "first non-null value by event time (set_once)"
		}
		fmt.Fprintf(&b, "--   %s: trait %q, %s; %s: 1 when set and not null\n", attrColumn(m.Name), m.Name, how, hasColumn(m.Name))
	}
	for _, f := range sub.Features {
		fmt.Fprintf(&b, "--   %s: %s\n", f.Column, f.Describe())
	}
	b.WriteString(`
-- how the inputs are kept: on every insert into events, one view computes
-- every maintained attribute and one every signal (` + "`tideline audiences apply`" + `
-- creates them, and runs these SELECTs once over history for what is new).
-- For this audience they compute:
`)
	for _, m := range sub.Attributes {
		b.WriteString(attributeSelect(m.Name))
		b.WriteString(";\n\n")
		b.WriteString(attributeHistorySelect(m.Name))
		b.WriteString(";\n\n")
	}
	for _, s := range sub.Signals {
		b.WriteString(signalSelect(s))
		b.WriteString(";\n\n")
	}
	b.WriteString(`-- evaluation query, run for batches of customers: ` + "`batch`" + ` is an external
-- table (member_id: a raw customer id, customer_id: the customer it belongs to,
-- linked_ms: when the raw id started to count for it), ` + "`times`" + ` the moments to
-- evaluate each customer at (t; te for eager attributes), {T_low} the
-- earliest of them, epoch ms. m_0 is membership as of t.
`)
	b.WriteString(sub.evalQuery(symbolicLow))
	b.WriteString("\n")
	return b.String(), nil
}

var directionWords = map[Direction]string{
	DirectionFixed:   "late data cannot change it; decided on the data present",
	DirectionRising:  "late events can only make it true; entries are decided on the data present, exits wait",
	DirectionFalling: "late events can only make it false; exits are decided on the data present, entries wait",
	DirectionEither:  "late data can change it either way; entries and exits wait",
}

func wrap(s string, width int) []string {
	var lines []string
	var cur string
	for _, w := range strings.Fields(s) {
		if cur != "" && len(cur)+1+len(w) > width {
			lines = append(lines, cur)
			cur = ""
		}
		if cur != "" {
			cur += " "
		}
		cur += w
	}
	if cur != "" {
		lines = append(lines, cur)
	}
	return lines
}

// ViewsSQL is the DDL of the views apply maintains for the whole plan: one
// for every attribute, one for every signal.
func (p *Plan) ViewsSQL() string {
	var b strings.Builder
	for _, v := range []*View{attributesView(p.Attributes), attributeHistoryView(p.Attributes), signalsView(p.Signals)} {
		if v != nil {
			b.WriteString(v.DDL)
			b.WriteString(";\n\n")
		}
	}
	return b.String()
}
