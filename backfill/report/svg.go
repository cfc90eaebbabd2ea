package report

import (
	"fmt"
	"html"
	"math"
	"strings"
	"time"
)

// Charts are plain SVG written here rather than by a charting library: the
// report must be one self-contained file (no script from a CDN), readable
// in a mail client or a status page, and the handful of shapes it needs
// (lines, bars, ranges) are a few dozen lines each. Every drawn element
// carries a class and data-* attributes, so a test can find in a browser's
// DOM what was drawn for which series.

// palette is colour-blind safe (Okabe-Ito).
var palette = []string{"#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"}

const (
	chartW, chartH                     = 760, 260
	marginL, marginR, marginT, marginB = 64, 16, 30, 44
	plotW                              = chartW - marginL - marginR
	plotH                              = chartH - marginT - marginB
	legendGap                          = 14
	noDataText                         = "no data in the window"
)

// Series is one named line or bar set.
type Series struct {
	Name   string
	Values []float64
}

func color(i int) string { return palette[i%len(palette)] }

// niceMax rounds v up to 1, 2 or 5 times a power of ten.
func niceMax(v float64) float64 {
	if v <= 0 || math.IsNaN(v) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func fmtNum(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v == math.Trunc(v):
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.1f", v)
	}
}

func open(b *strings.Builder, id, title, kind string, legendNames []string) {
	h := chartH + legendHeight(legendNames)
	fmt.Fprintf(b, `<svg class="chart" data-chart="%s" data-kind="%s" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg">`,
		id, kind, chartW, h, chartW, h, html.EscapeString(title))
	fmt.Fprintf(b, `<title>%s</title><text class="chart-title" x="%d" y="18" font-size="14" font-weight="600">%s</text>`,
		html.EscapeString(title), marginL, html.EscapeString(title))
}

// yAxis draws horizontal grid lines and labels up to top.
func yAxis(b *strings.Builder, top float64, unit string) {
	for i := 0; i <= 4; i++ {
		v := top * float64(i) / 4
		y := float64(marginT+plotH) - float64(plotH)*float64(i)/4
		fmt.Fprintf(b, `<line class="grid" x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>`, marginL, marginL+plotW, y, y)
		fmt.Fprintf(b, `<text class="tick" x="%d" y="%.1f" font-size="11" text-anchor="end">%s</text>`, marginL-6, y+4, fmtNum(v))
	}
	if unit != "" {
		fmt.Fprintf(b, `<text class="unit" x="12" y="%d" font-size="11" transform="rotate(-90 12 %d)" text-anchor="middle">%s</text>`,
			marginT+plotH/2, marginT+plotH/2, html.EscapeString(unit))
	}
}

// legendRows lays the legend out in rows that fit the chart's width and
// returns each item's row and x.
func legendRows(names []string) (rows, xs []int) {
	x, row := marginL, 0
	for _, n := range names {
		w := 14 + 7*len(n) + legendGap
		if x > marginL && x+w > chartW-marginR {
			x, row = marginL, row+1
		}
		rows, xs = append(rows, row), append(xs, x)
		x += w
	}
	return rows, xs
}

// legendHeight is the extra height the legend's rows past the first need.
func legendHeight(names []string) int {
	rows, _ := legendRows(names)
	if len(rows) == 0 {
		return 0
	}
	return 16 * rows[len(rows)-1]
}

func legend(b *strings.Builder, names []string) {
	rows, xs := legendRows(names)
	for i, n := range names {
		y := chartH - 14 + 16*rows[i]
		fmt.Fprintf(b, `<g class="legend-item" data-series="%s"><rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d" font-size="11">%s</text></g>`,
			html.EscapeString(n), xs[i], y, color(i), xs[i]+14, y+9, html.EscapeString(n))
	}
}

func noData(b *strings.Builder) {
	fmt.Fprintf(b, `<text class="no-data" x="%d" y="%d" font-size="13" fill="#777" text-anchor="middle">%s</text></svg>`,
		marginL+plotW/2, marginT+plotH/2, noDataText)
}

// lineChart draws series over the times xs (one value per time).
func lineChart(id, title, unit string, xs []time.Time, series []Series) string {
	var b strings.Builder
	names := make([]string, len(series))
	for si, s := range series {
		names[si] = s.Name
	}
	open(&b, id, title, "line", names)
	top := 0.0
	for _, s := range series {
		for _, v := range s.Values {
			top = math.Max(top, v)
		}
	}
	if len(xs) == 0 || len(series) == 0 {
		noData(&b)
		return b.String()
	}
	top = niceMax(top)
	yAxis(&b, top, unit)
	x := func(i int) float64 {
		if len(xs) == 1 {
			return float64(marginL + plotW/2)
		}
		return float64(marginL) + float64(plotW)*float64(i)/float64(len(xs)-1)
	}
	y := func(v float64) float64 { return float64(marginT+plotH) - float64(plotH)*v/top }
	// Five time labels along the x axis, with seconds when the axis is short.
	layout := "15:04"
	if len(xs) > 1 && xs[len(xs)-1].Sub(xs[0]) < 10*time.Minute {
		layout = "15:04:05"
	}
	for k := 0; k <= 4; k++ {
		i := k * (len(xs) - 1) / 4
		// The outer labels align inside the plot so they are not cut.
		anchor := map[int]string{0: "start", 4: "end"}[k]
		if anchor == "" {
			anchor = "middle"
		}
		fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%d" font-size="11" text-anchor="%s">%s</text>`, x(i), marginT+plotH+16, anchor, xs[i].UTC().Format(layout))
	}
	for si, s := range series {
		var d strings.Builder
		for i, v := range s.Values {
			cmd := "L"
			if i == 0 {
				cmd = "M"
			}
			fmt.Fprintf(&d, "%s%.1f %.1f ", cmd, x(i), y(v))
		}
		fmt.Fprintf(&b, `<path class="series" data-series="%s" data-points="%d" d="%s" fill="none" stroke="%s" stroke-width="2"/>`,
			html.EscapeString(s.Name), len(s.Values), strings.TrimSpace(d.String()), color(si))
	}
	legend(&b, names)
	b.WriteString("</svg>")
	return b.String()
}

// barChart draws one stacked bar per category; series are the stacks.
func barChart(id, title, unit string, categories []string, series []Series) string {
	var b strings.Builder
	names := make([]string, len(series))
	for si, s := range series {
		names[si] = s.Name
	}
	open(&b, id, title, "bar", names)
	top := 0.0
	for ci := range categories {
		sum := 0.0
		for _, s := range series {
			sum += s.Values[ci]
		}
		top = math.Max(top, sum)
	}
	if len(categories) == 0 || top == 0 {
		noData(&b)
		return b.String()
	}
	top = niceMax(top)
	yAxis(&b, top, unit)
	slot := float64(plotW) / float64(len(categories))
	w := math.Min(slot*0.6, 80)
	for ci, c := range categories {
		x := float64(marginL) + slot*float64(ci) + (slot-w)/2
		base := float64(marginT + plotH)
		for si, s := range series {
			v := s.Values[ci]
			if v <= 0 {
				continue
			}
			h := float64(plotH) * v / top
			base -= h
			fmt.Fprintf(&b, `<rect class="bar" data-category="%s" data-series="%s" data-value="%s" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %s</title></rect>`,
				html.EscapeString(c), html.EscapeString(s.Name), fmtNum(v), x, base, w, h, color(si),
				html.EscapeString(c), html.EscapeString(s.Name), fmtNum(v))
		}
		label := c
		if len(label) > 22 {
			label = label[:21] + "…"
		}
		fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%d" font-size="11" text-anchor="middle">%s</text>`, x+w/2, marginT+plotH+16, html.EscapeString(label))
	}
	legend(&b, names)
	b.WriteString("</svg>")
	return b.String()
}

// Span is one row of a range chart: the offsets Missing within [Lo, Hi).
type Span struct {
	Label   string
	Lo, Hi  int64
	Missing [][2]int64
}

// rangeChart draws each row's extent as a light bar and its missing
// ranges on it in red.
func rangeChart(id, title string, rows []Span) string {
	var b strings.Builder
	h := marginT + 26*max(len(rows), 1) + 30
	fmt.Fprintf(&b, `<svg class="chart" data-chart="%s" data-kind="range" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg">`,
		id, chartW, h, chartW, h, html.EscapeString(title))
	fmt.Fprintf(&b, `<title>%s</title><text class="chart-title" x="%d" y="18" font-size="14" font-weight="600">%s</text>`,
		html.EscapeString(title), marginL, html.EscapeString(title))
	if len(rows) == 0 {
		fmt.Fprintf(&b, `<text class="no-data" x="%d" y="%d" font-size="13" fill="#777" text-anchor="middle">nothing missing</text></svg>`, marginL+plotW/2, marginT+16)
		return b.String()
	}
	const left = 150
	width := float64(chartW - left - marginR)
	for i, r := range rows {
		y := float64(marginT + 26*i)
		span := float64(max(r.Hi-r.Lo, 1))
		fmt.Fprintf(&b, `<text class="tick" x="%d" y="%.1f" font-size="11" text-anchor="end">%s</text>`, left-6, y+13, html.EscapeString(r.Label))
		fmt.Fprintf(&b, `<rect class="extent" data-row="%s" x="%d" y="%.1f" width="%.1f" height="16" fill="#e8eef4"/>`, html.EscapeString(r.Label), left, y, width)
		for _, m := range r.Missing {
			x := float64(left) + width*float64(m[0]-r.Lo)/span
			w := math.Max(width*float64(m[1]-m[0])/span, 2)
			fmt.Fprintf(&b, `<rect class="missing" data-row="%s" data-from="%d" data-to="%d" x="%.1f" y="%.1f" width="%.1f" height="16" fill="#D55E00"><title>%s offsets %d-%d (%d records)</title></rect>`,
				html.EscapeString(r.Label), m[0], m[1], x, y, w, html.EscapeString(r.Label), m[0], m[1]-1, m[1]-m[0])
		}
	}
	fmt.Fprintf(&b, `<text class="tick" x="%d" y="%d" font-size="11">offsets of the window, left to right; red: not in ClickHouse</text>`, left, h-8)
	b.WriteString("</svg>")
	return b.String()
}
