package materialize

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// batchTable is the external table the evaluator sends with each query: one
// row per raw customer id of the batch (member_id) with the resolved
// customer it belongs to (customer_id). Sending ids as external data keeps
// them out of the SQL text.
const batchTable = "batch"

// timeRefs renders the evaluation times into the query: numbers when the
// evaluator runs it, symbols when explain prints it.
type timeRefs struct {
	// T is the evaluation time and Prev the previous pass's, epoch ms.
	T, Prev string
	// bucketFrom is the first hour bucket a signal read with the given
	// longest window needs, as a DateTime expression.
	bucketFrom func(w time.Duration) string
}

// runTimes are the refs of a real pass.
func runTimes(asOf, prev uint64) timeRefs {
	return timeRefs{
		T:    strconv.FormatUint(asOf, 10),
		Prev: strconv.FormatUint(prev, 10),
		bucketFrom: func(w time.Duration) string {
			low := asOf
			if prev > 0 && prev < asOf {
				low = prev
			}
			ms := uint64(w / time.Millisecond)
			if ms > low {
				return "toDateTime(0)"
			}
			// An hour of slack keeps the bound right in any time zone:
			// buckets start on the server's local hour.
			sec := int64((low-ms)/1000) - 3600
			if sec < 0 {
				sec = 0
			}
			return "toDateTime(" + strconv.FormatInt(sec, 10) + ")"
		},
	}
}

// symbolicTimes are the refs explain prints.
var symbolicTimes = timeRefs{
	T:    "{T}",
	Prev: "{T_prev}",
	bucketFrom: func(w time.Duration) string {
		return fmt.Sprintf("toDateTime(intDiv(least({T}, {T_prev}) - %d, 1000) - 3600)", w/time.Millisecond)
	},
}

// queryAttributes are the attributes the audiences read, with their modes.
func (p *Plan) queryAttributes() []AttributeMode {
	used := map[string]bool{}
	for _, c := range p.Audiences {
		for _, a := range c.Attributes {
			used[a] = true
		}
	}
	var out []AttributeMode
	for _, m := range p.Attributes {
		if used[m.Name] {
			out = append(out, m)
		}
	}
	return out
}

// windowedFeatures are the features with a window, whose end can pass.
func (p *Plan) windowedFeatures() []*Feature {
	var out []*Feature
	for _, f := range p.Features {
		if f.Window > 0 {
			out = append(out, f)
		}
	}
	return out
}

// evalQuery is the query that evaluates every audience of p for the
// customers of the batch table as of T. Per customer it returns:
//
//	m_<i>          1 when the customer is in audience i (plan order)
//	at_<a>, am_<a> event time and message id of attribute a's current value
//	b_<feature>    the earliest moment in (T_prev, T] at which an event left
//	               the feature's window (0: none) — when a time-driven change happened
//	dt_<signal>,   the latest occurrence of the signal with event time in
//	di_<signal>    (T_prev, T] — the event that can have caused a change
//
// 18.16 allows one JOIN per SELECT and no CTEs, hence the nesting: the
// customers of the batch, joined with their attributes, joined with their
// signal features.
func (p *Plan) evalQuery(r timeRefs) string {
	var b strings.Builder
	b.WriteString("SELECT\n    customer_id")
	for i, c := range p.Audiences {
		fmt.Fprintf(&b, ",\n    toUInt8(%s) AS m_%d", indentLines(c.Condition, "        "), i)
	}
	for _, a := range p.queryAttributes() {
		fmt.Fprintf(&b, ",\n    at_%s,\n    am_%s", a.Name, a.Name)
	}
	for _, f := range p.windowedFeatures() {
		fmt.Fprintf(&b, ",\n    b_%s", f.Column)
	}
	for _, s := range p.Signals {
		fmt.Fprintf(&b, ",\n    dt_%s,\n    di_%s", s.ID, s.ID)
	}
	b.WriteString("\nFROM\n(\n    ")
	b.WriteString(indentLines(p.attributePart(), "    "))
	b.WriteString("\n)")
	if len(p.Signals) > 0 {
		b.WriteString("\nANY LEFT JOIN\n(\n    ")
		b.WriteString(indentLines(p.signalPart(r), "    "))
		b.WriteString("\n) USING customer_id")
	}
	return b.String()
}

func (p *Plan) attributePart() string {
	attrs := p.queryAttributes()
	customers := "SELECT DISTINCT customer_id FROM " + batchTable
	if len(attrs) == 0 {
		return customers
	}
	var b strings.Builder
	b.WriteString("SELECT customer_id")
	for _, a := range attrs {
		fmt.Fprintf(&b, ", %s, %s, at_%s, am_%s", attrColumn(a.Name), hasColumn(a.Name), a.Name, a.Name)
	}
	b.WriteString("\nFROM (" + customers + ")\nANY LEFT JOIN\n(\n    SELECT\n        customer_id")
	names := make([]string, len(attrs))
	for i, a := range attrs {
		names[i] = quote(a.Name)
		state := "last"
		if a.SetOnce {
			state = "first"
		}
		// t_<name> is (value, is_null, event_time_ms, ingest_time_ms,
		// message_id); a missing attribute reads as the all-zero tuple.
		fmt.Fprintf(&b, ",\n        anyIf(%s, attribute = %s) AS t_%s", state, quote(a.Name), a.Name)
		fmt.Fprintf(&b, ",\n        t_%s.1 AS %s", a.Name, attrColumn(a.Name))
		fmt.Fprintf(&b, ",\n        toUInt8(t_%s.3 > 0 AND t_%s.2 = 0) AS %s", a.Name, a.Name, hasColumn(a.Name))
		fmt.Fprintf(&b, ",\n        t_%s.3 AS at_%s,\n        t_%s.5 AS am_%s", a.Name, a.Name, a.Name, a.Name)
	}
	b.WriteString("\n    FROM\n    (\n")
	b.WriteString("        SELECT customer_id, attribute, argMaxMerge(last_value) AS last, argMinMerge(first_value) AS first\n")
	b.WriteString("        FROM\n        (\n")
	b.WriteString("            SELECT customer_id AS member_id, attribute, last_value, first_value\n")
	b.WriteString("            FROM customer_attributes\n")
	b.WriteString("            WHERE customer_id IN (SELECT member_id FROM " + batchTable + ")\n")
	b.WriteString("              AND attribute IN (" + strings.Join(names, ", ") + ")\n")
	b.WriteString("        )\n")
	b.WriteString("        ALL INNER JOIN " + batchTable + " USING member_id\n")
	b.WriteString("        GROUP BY customer_id, attribute\n")
	b.WriteString("    )\n    GROUP BY customer_id\n) USING customer_id")
	return b.String()
}

func (p *Plan) signalPart(r timeRefs) string {
	longest := map[string]time.Duration{}
	ever := map[string]bool{}
	for _, f := range p.Features {
		if f.Window == 0 {
			ever[f.Signal.ID] = true
		}
		if f.Window > longest[f.Signal.ID] {
			longest[f.Signal.ID] = f.Window
		}
	}
	var b strings.Builder
	b.WriteString("SELECT\n    customer_id")
	for _, s := range p.Signals {
		fmt.Fprintf(&b, ",\n    anyIf(occ, signal = %s) AS o_%s", quote(s.ID), s.ID)
	}
	for _, f := range p.Features {
		in := "x -> x.1 <= " + r.T
		if f.Window > 0 {
			in = fmt.Sprintf("x -> x.1 > %s - %d AND x.1 <= %s", r.T, f.Window/time.Millisecond, r.T)
		}
		if f.Sum {
			fmt.Fprintf(&b, ",\n    arraySum(arrayMap(x -> x.3, arrayFilter(%s, o_%s))) AS %s", in, f.Signal.ID, f.Column)
		} else {
			fmt.Fprintf(&b, ",\n    arrayUniq(arrayMap(x -> x.2, arrayFilter(%s, o_%s))) AS %s", in, f.Signal.ID, f.Column)
		}
	}
	for _, f := range p.windowedFeatures() {
		fmt.Fprintf(&b, ",\n    arrayReduce('min', arrayFilter(t -> t > %s AND t <= %s, arrayMap(x -> x.1 + %d, o_%s))) AS b_%s",
			r.Prev, r.T, f.Window/time.Millisecond, f.Signal.ID, f.Column)
	}
	for _, s := range p.Signals {
		fmt.Fprintf(&b, ",\n    arrayReduce('max', arrayMap(x -> (x.1, x.2), arrayFilter(x -> x.1 > %s AND x.1 <= %s, o_%s))) AS d_%s", r.Prev, r.T, s.ID, s.ID)
		fmt.Fprintf(&b, ",\n    d_%s.1 AS dt_%s,\n    d_%s.2 AS di_%s", s.ID, s.ID, s.ID, s.ID)
	}
	b.WriteString("\nFROM\n(\n")
	b.WriteString("    SELECT customer_id, signal, groupUniqArrayMerge(occurrences) AS occ\n")
	b.WriteString("    FROM\n    (\n")
	b.WriteString("        SELECT customer_id AS member_id, signal, occurrences\n")
	b.WriteString("        FROM customer_signals\n")
	b.WriteString("        WHERE customer_id IN (SELECT member_id FROM " + batchTable + ")\n")
	var ors []string
	ids := make([]string, 0, len(p.Signals))
	for _, s := range p.Signals {
		ids = append(ids, s.ID)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if ever[id] {
			ors = append(ors, "signal = "+quote(id))
		} else {
			ors = append(ors, "(signal = "+quote(id)+" AND bucket >= "+r.bucketFrom(longest[id])+")")
		}
	}
	b.WriteString("          AND (" + strings.Join(ors, "\n            OR ") + ")\n")
	b.WriteString("    )\n")
	b.WriteString("    ALL INNER JOIN " + batchTable + " USING member_id\n")
	b.WriteString("    GROUP BY customer_id, signal\n")
	b.WriteString(")\nGROUP BY customer_id")
	return b.String()
}

func indentLines(s, indent string) string {
	return strings.ReplaceAll(s, "\n", "\n"+indent)
}
