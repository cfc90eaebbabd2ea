package materialize

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The external tables the evaluator sends with its queries. Sending ids and
// times as external data keeps them out of the SQL text.
const (
	// batchTable has one row per raw customer id of the batch (member_id)
	// with the resolved customer it belongs to (customer_id) and the moment
	// its history started to count for that customer (linked_ms: 0 for the
	// customer's own id, the linking identify's event time for an anonymous
	// id).
	batchTable = "batch"
	// timesTable has the moments to evaluate each customer at: t for the
	// condition, te for the attribute conditions of eager audiences.
	timesTable = "times"
)

// lowBound renders the first hour bucket a signal read needs when the
// earliest evaluation time is low and the longest window w, as a DateTime
// expression.
type lowBound func(w time.Duration) string

// runLow is the bound of a real query whose earliest time is low (epoch ms).
func runLow(low uint64) lowBound {
	return func(w time.Duration) string {
		ms := uint64(w / time.Millisecond)
		if ms >= low {
			return "toDateTime(0)"
		}
		// An hour of slack keeps the bound right in any time zone: buckets
		// start on the server's local hour.
		sec := int64((low-ms)/1000) - 3600
		if sec < 0 {
			sec = 0
		}
		return "toDateTime(" + strconv.FormatInt(sec, 10) + ")"
	}
}

// symbolicLow is the bound explain prints.
func symbolicLow(w time.Duration) string {
	return fmt.Sprintf("toDateTime(intDiv({T_low} - %d, 1000) - 3600)", w/time.Millisecond)
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

// eagerAttributes are the attributes some eager audience reads.
func (p *Plan) eagerAttributes() map[string]bool {
	out := map[string]bool{}
	for _, c := range p.Audiences {
		if c.Audience.Completeness == CompletenessEager {
			for _, a := range c.Attributes {
				out[a] = true
			}
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

// evalQuery evaluates every audience of p for the rows of the times table:
// per (customer_id, t) it returns m_<i>, 1 when the customer is in audience
// i (plan order) as of t. As of t means on every input visible at t: an
// attribute's latest value among the messages with event time <= t, the
// signal occurrences with event time <= t (and inside the window ending at
// t), each counting only from the moment its raw id was linked to the
// customer. Eager audiences read their attributes as of te instead.
//
// 18.16 allows one JOIN per SELECT and no CTEs, hence the nesting.
func (p *Plan) evalQuery(low lowBound) string {
	var b strings.Builder
	b.WriteString("SELECT\n    customer_id,\n    t")
	for i, c := range p.Audiences {
		fmt.Fprintf(&b, ",\n    toUInt8(%s) AS m_%d", indentLines(c.Condition, "        "), i)
	}
	b.WriteString("\nFROM\n(\n    " + indentLines(p.inputsAt(low), "    ") + "\n)")
	return b.String()
}

// inputsAt is the inner part of evalQuery: per (customer_id, t) of the
// times table, every column the conditions read (attributes as of t, and as
// of te for eager audiences; the features).
func (p *Plan) inputsAt(low lowBound) string {
	var b strings.Builder
	b.WriteString("SELECT\n    customer_id,\n    t")
	eager := p.eagerAttributes()
	for _, a := range p.queryAttributes() {
		b.WriteString(",\n    " + indentLines(attributeAsOf(a, "t", attrColumn(a.Name), hasColumn(a.Name)), "    "))
		if eager[a.Name] {
			b.WriteString(",\n    " + indentLines(attributeAsOf(a, "te", eagerAttrColumn(a.Name), eagerHasColumn(a.Name)), "    "))
		}
	}
	for _, f := range p.Features {
		in := "x -> x.4 <= t"
		if f.Window > 0 {
			in = fmt.Sprintf("x -> x.4 <= t AND x.1 > t - %d", f.Window/time.Millisecond)
		}
		if f.Sum {
			fmt.Fprintf(&b, ",\n    arraySum(arrayMap(x -> x.3, arrayFilter(%s, o_%s))) AS %s", in, f.Signal.ID, f.Column)
		} else {
			fmt.Fprintf(&b, ",\n    arrayUniq(arrayMap(x -> x.2, arrayFilter(%s, o_%s))) AS %s", in, f.Signal.ID, f.Column)
		}
	}
	b.WriteString("\nFROM\n(\n    ")
	b.WriteString(indentLines(p.inputsQuery(low, false), "    "))
	b.WriteString("\n) AS inputs\nALL INNER JOIN " + timesTable + " USING customer_id")
	return b.String()
}

// attributeAsOf renders the value and presence columns of attribute a as of
// the time column at: the latest visible message by (event time, message id),
// or for set_once the first non-null one.
func attributeAsOf(a AttributeMode, at, value, has string) string {
	tmp := "v_" + value
	pick := fmt.Sprintf("arrayReduce('max', arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 <= %s, h_%s))) AS %s", at, a.Name, tmp)
	if a.SetOnce {
		// The first non-null value: the least (is_null, time, message).
		pick = fmt.Sprintf("arrayReduce('min', arrayMap(x -> (x.4, x.1, x.2, x.3), arrayFilter(x -> x.5 <= %s, h_%s))) AS %s_k", at, a.Name, tmp) +
			fmt.Sprintf(",\n(%s_k.2, %s_k.3, %s_k.4, %s_k.1) AS %s", tmp, tmp, tmp, tmp, tmp)
	}
	return pick + fmt.Sprintf(",\n%s.3 AS %s,\ntoUInt8(%s.1 > 0 AND %s.4 = 0) AS %s", tmp, value, tmp, tmp, has)
}

// inputsQuery returns per customer of the batch every input its audiences
// read, as arrays: h_<attribute> of (event_time_ms, message_id, value,
// is_null, visible_ms), o_<signal> of (event_time_ms, message_id, value,
// visible_ms), where visible_ms is when the message started to count for
// the customer (its event time, or the link of its raw id if later), and,
// with first, first_ms: the moment the customer's first event became
// visible (dating needs it; evaluation does not).
func (p *Plan) inputsQuery(low lowBound, first bool) string {
	attrs := p.queryAttributes()
	var b strings.Builder
	b.WriteString("SELECT\n    customer_id")
	if first {
		b.WriteString(",\n    first_ms")
	}
	for _, a := range attrs {
		fmt.Fprintf(&b, ",\n    arrayMap(x -> (x.1, x.2, x.3, x.4, x.5), arrayFilter(x -> x.6 = %s, hist)) AS h_%s", quote(a.Name), a.Name)
	}
	for _, s := range p.Signals {
		fmt.Fprintf(&b, ",\n    arrayMap(x -> (x.1, x.2, x.3, x.4), arrayFilter(x -> x.5 = %s, occ)) AS o_%s", quote(s.ID), s.ID)
	}
	b.WriteString("\nFROM\n(\n    SELECT customer_id")
	if first {
		b.WriteString(", first_ms")
	}
	if len(attrs) > 0 {
		b.WriteString(", hist")
	}
	b.WriteString("\n    FROM\n    (\n        ")
	customers := "SELECT DISTINCT customer_id FROM " + batchTable
	if first {
		customers = firstSeenPart()
	}
	b.WriteString(indentLines(customers, "        "))
	b.WriteString("\n    ) AS customers")
	if len(attrs) > 0 {
		b.WriteString("\n    ANY LEFT JOIN\n    (\n        ")
		b.WriteString(indentLines(p.attributePart(attrs), "        "))
		b.WriteString("\n    ) AS attributes USING customer_id")
	}
	b.WriteString("\n) AS with_attributes")
	if len(p.Signals) > 0 {
		b.WriteString("\nANY LEFT JOIN\n(\n    ")
		b.WriteString(indentLines(p.signalPart(low), "    "))
		b.WriteString("\n) AS signals USING customer_id")
	}
	return b.String()
}

// firstSeenPart is every customer of the batch with the moment its first
// event became visible.
func firstSeenPart() string {
	return `SELECT customer_id, min(greatest(first, linked_ms)) AS first_ms
FROM ` + batchTable + `
ALL LEFT JOIN
(
    SELECT customer_id AS member_id, minMerge(first_seen_ms) AS first
    FROM customer_event_buckets
    WHERE customer_id IN (SELECT member_id FROM ` + batchTable + `)
    GROUP BY member_id
) AS seen USING member_id
GROUP BY customer_id`
}

func (p *Plan) attributePart(attrs []AttributeMode) string {
	names := make([]string, len(attrs))
	for i, a := range attrs {
		names[i] = quote(a.Name)
	}
	return `SELECT customer_id, groupArray((h.1, h.2, h.3, h.4, greatest(h.1, linked_ms), attribute)) AS hist
FROM
(
    SELECT customer_id, linked_ms, attribute, changes
    FROM
    (
        SELECT customer_id AS member_id, attribute, groupUniqArrayMerge(changes) AS changes
        FROM ` + p.historySource() + `
        WHERE customer_id IN (SELECT member_id FROM ` + batchTable + `)
          AND attribute IN (` + strings.Join(names, ", ") + `)
        GROUP BY member_id, attribute
    ) AS member_attributes
    ALL INNER JOIN ` + batchTable + ` USING member_id
)
ARRAY JOIN changes AS h
GROUP BY customer_id`
}

func (p *Plan) signalPart(low lowBound) string {
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
	ids := make([]string, 0, len(p.Signals))
	for _, s := range p.Signals {
		ids = append(ids, s.ID)
	}
	sort.Strings(ids)
	var ors []string
	for _, id := range ids {
		if ever[id] {
			ors = append(ors, "signal = "+quote(id))
		} else {
			ors = append(ors, "(signal = "+quote(id)+" AND bucket >= "+low(longest[id])+")")
		}
	}
	return `SELECT customer_id, groupArray((o.1, o.2, o.3, greatest(o.1, linked_ms), signal)) AS occ
FROM
(
    SELECT customer_id, linked_ms, signal, occurrences
    FROM
    (
        SELECT customer_id AS member_id, signal, groupUniqArrayMerge(occurrences) AS occurrences
        FROM ` + p.signalSource() + `
        WHERE customer_id IN (SELECT member_id FROM ` + batchTable + `)
          AND (` + strings.Join(ors, "\n            OR ") + `)
        GROUP BY member_id, signal
    ) AS member_signals
    ALL INNER JOIN ` + batchTable + ` USING member_id
)
ARRAY JOIN occurrences AS o
GROUP BY customer_id`
}

// historySource is what attributePart reads the attribute history from:
// customer_attribute_history, plus, for attributes it does not keep yet,
// the history apply's backfill would compute from events.
func (p *Plan) historySource() string {
	if p.unkept == nil || len(p.unkept.attributes) == 0 {
		return "customer_attribute_history"
	}
	parts := []string{"SELECT customer_id, attribute, changes FROM customer_attribute_history"}
	for _, a := range p.unkept.attributes {
		parts = append(parts, attributeHistorySelect(a))
	}
	return "(\n            " + indentLines(strings.Join(parts, "\nUNION ALL\n"), "            ") + "\n        )"
}

// signalSource is signalPart's customer_signals, as historySource is for
// the attribute history.
func (p *Plan) signalSource() string {
	if p.unkept == nil || len(p.unkept.signals) == 0 {
		return "customer_signals"
	}
	parts := []string{"SELECT customer_id, signal, bucket, occurrences FROM customer_signals"}
	for _, s := range p.unkept.signals {
		parts = append(parts, signalSelect(s))
	}
	return "(\n            " + indentLines(strings.Join(parts, "\nUNION ALL\n"), "            ") + "\n        )"
}

func indentLines(s, indent string) string {
	return strings.ReplaceAll(s, "\n", "\n"+indent)
}
