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
-- it) as of T, the smallest watermark of the evaluated lanes: every event
-- received before T is loaded, so a window never ends past missing data.

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
		b.WriteString(AttributeSelect(m.Name))
		b.WriteString(";\n\n")
	}
	for _, s := range sub.Signals {
		b.WriteString(SignalSelect(s))
		b.WriteString(";\n\n")
	}
	b.WriteString(`-- evaluation query, run for batches of customers: ` + "`batch`" + ` is an external
-- table (member_id: a raw customer id, customer_id: the customer it belongs to),
-- {T} the evaluation time and {T_prev} the previous pass's, epoch ms.
-- m_0 is membership; b_* and dt_*/di_* tell when and why it changed.
`)
	b.WriteString(sub.evalQuery(symbolicTimes))
	b.WriteString("\n")
	return b.String(), nil
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
	for _, v := range []*View{AttributesView(p.Attributes), SignalsView(p.Signals)} {
		if v != nil {
			b.WriteString(v.DDL)
			b.WriteString(";\n\n")
		}
	}
	return b.String()
}
