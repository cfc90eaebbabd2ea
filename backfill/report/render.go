package report

import (
	"fmt"
	"html/template"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Chart is one rendered chart with the caption that says how to read it.
type Chart struct {
	ID, Title, Caption string
	SVG                string
}

// Charts renders every chart of the report, in reading order.
func (d *Data) Charts() []Chart {
	lagAge := d.laneSeries(func(l LaneSeries) []float64 { return l.WatermarkAgeSeconds }, "wm age")
	lagAge = append(lagAge, d.laneSeries(func(l LaneSeries) []float64 { return l.LagSeconds }, "lag")...)
	flow := d.laneSeries(func(l LaneSeries) []float64 { return l.Received }, "received")
	flow = append(flow, d.laneSeries(func(l LaneSeries) []float64 { return l.Loaded }, "loaded")...)
	campaigns, byDecision, byReason := d.Decisions()
	applies, applied := d.applyChart()
	per := "per " + fmtBucket(d.Bucket)
	return []Chart{
		{ID: "lag", Title: "Lag and watermark age per lane", SVG: lineChart("lag", "Lag and watermark age per lane", "seconds", d.Times, lagAge),
			Caption: "Watermark age: how long the oldest event received but not yet loaded had waited. Mean lag: receipt to insert, by receive time."},
		{ID: "flow", Title: "Events received vs loaded " + per, SVG: lineChart("flow", "Events received vs loaded "+per, "events", d.Times, flow),
			Caption: "A gap between a lane's received and loaded lines is its backlog; loaded above received afterwards is the drain."},
		{ID: "missing", Title: "Missing offset ranges", SVG: rangeChart("missing", "Missing offset ranges", d.missingSpans()),
			Caption: "Per lane and partition, the window's offsets; red ranges are in Kafka but not in ClickHouse (what apply re-ingests)."},
		{ID: "stale", Title: "Customers with stale state " + per, SVG: lineChart("stale", "Customers with stale state "+per, "customers", d.Times, []Series{{Name: "stale customers", Values: d.StaleCustomers}}),
			Caption: "Customers with an event that waited longer than the late threshold, from its receipt until it was loaded."},
		{ID: "decisions", Title: "Pending qualifications by decision", SVG: barChart("decisions", "Pending qualifications by decision", "qualifications", campaigns, byDecision),
			Caption: "Qualifications without a send-ledger entry, and what each campaign's staleness policy decides for them."},
		{ID: "reasons", Title: "Pending qualifications by reason", SVG: barChart("reasons", "Pending qualifications by reason", "qualifications", campaigns, byReason),
			Caption: "The same qualifications by decision and reason."},
		{ID: "apply", Title: "What apply did", SVG: barChart("apply", "What apply did", "count", applies, applied),
			Caption: "Each apply of the plan, oldest first: events re-ingested and restored, customers re-derived, campaigns fired, fired late and skipped."},
	}
}

func fmtBucket(b time.Duration) string {
	switch b {
	case time.Second:
		return "second"
	case time.Minute:
		return "minute"
	case time.Hour:
		return "hour"
	}
	return strings.TrimSuffix(strings.TrimSuffix(b.String(), "0s"), "0m")
}

// Headline are the few numbers a reader wants first.
type Headline struct{ Label, Value string }

// headlines summarise the window.
func (d *Data) headlines() []Headline {
	var out []Headline
	if p := d.Plan; p != nil {
		inWindow, loaded, missing, backlog, unavailable, late := p.Totals()
		out = append(out,
			Headline{"events in the window", fmt.Sprint(inWindow)},
			Headline{"loaded", fmt.Sprint(loaded)},
			Headline{"missing", fmt.Sprintf("%d (%d backlog, %d unavailable)", missing, backlog, unavailable)},
			Headline{"loaded late", fmt.Sprint(late)},
			Headline{"customers with late events", fmt.Sprint(p.Stale.LateCustomers)},
			Headline{"customers with missing events", fmt.Sprint(p.Stale.MissingCustomers)},
			Headline{"pending qualifications", fmt.Sprint(len(p.Qualifications.Pending))},
		)
	} else if r := d.Run; r != nil {
		out = append(out,
			Headline{"events in the window", fmt.Sprint(r.EventsInWindow)},
			Headline{"missing", fmt.Sprint(r.EventsMissing)},
			Headline{"loaded late", fmt.Sprint(r.EventsLate)},
			Headline{"customers stale", fmt.Sprint(r.CustomersStale)},
			Headline{"qualifications", fmt.Sprint(r.Qualifications)},
		)
	}
	var worst float64
	for _, l := range d.Lanes {
		for _, v := range l.WatermarkAgeSeconds {
			worst = max(worst, v)
		}
	}
	out = append(out, Headline{"worst watermark age", (time.Duration(worst) * time.Second).String()})
	return out
}

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"svg": func(s string) template.HTML { return template.HTML(s) }, // rendered by this package, labels escaped
	"ms":  func(ms uint64) string { return msTime(ms) },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.D.Title}}</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1b1f24;margin:0 auto;max-width:820px;padding:24px}
h1{font-size:22px;margin:0 0 4px} .sub{color:#57606a;margin:0 0 18px}
.head{display:grid;grid-template-columns:repeat(auto-fill,minmax(180px,1fr));gap:8px;margin-bottom:20px}
.head div{background:#f6f8fa;border-radius:6px;padding:8px 10px} .head b{display:block;font-size:18px}
figure{margin:0 0 22px} figcaption{color:#57606a;font-size:12.5px;margin-top:2px} svg{max-width:100%;height:auto;font-family:inherit}
table{border-collapse:collapse;font-size:12.5px;margin-bottom:20px} td,th{border-bottom:1px solid #e1e4e8;padding:4px 8px;text-align:left}
</style></head><body>
<h1>{{.D.Title}}</h1>
<p class="sub">{{if .D.Plan}}plan {{.D.Plan.ID}}, {{end}}{{if .D.Run}}run {{.D.Run.RunID}} ({{.D.Run.Kind}}, {{.D.Run.State}}), {{end}}generated {{.D.Generated.Format "2006-01-02 15:04:05 MST"}} by tideline backfill report</p>
<div class="head">{{range .Head}}<div>{{.Label}}<b>{{.Value}}</b></div>{{end}}</div>
{{range .Charts}}<figure id="{{.ID}}">{{svg .SVG}}<figcaption>{{.Caption}}</figcaption></figure>
{{end}}
{{if .D.Applies}}<h2>Applies</h2><table><tr><th>run</th><th>state</th><th>started</th><th>finished</th><th>re-ingested</th><th>re-derived</th><th>fired</th><th>late</th><th>skipped</th></tr>
{{range .D.Applies}}<tr><td>{{.RunID}}</td><td>{{.State}}</td><td>{{ms .StartedAtMs}}</td><td>{{ms .FinishedAtMs}}</td><td>{{.EventsReingested}}</td><td>{{.CustomersRederive}}</td><td>{{.Fired}}</td><td>{{.FiredLate}}</td><td>{{.Skipped}}</td></tr>
{{end}}</table>{{end}}
<script>
// Records what the browser drew for each chart (its laid-out size and the
// number of shapes), so a reader's devtools and the report's test can see it.
for (const s of document.querySelectorAll("svg.chart")) {
  const b = s.getBBox();
  s.dataset.drawnWidth = Math.round(b.width);
  s.dataset.drawnHeight = Math.round(b.height);
  s.dataset.shapes = s.querySelectorAll("path.series, rect.bar, rect.missing").length;
}
</script>
</body></html>
`))

// WriteHTML writes the self-contained page.
func (d *Data) WriteHTML(w io.Writer) error {
	return page.Execute(w, struct {
		D      *Data
		Head   []Headline
		Charts []Chart
	}{d, d.headlines(), d.Charts()})
}

// WriteMarkdown writes the report for a status page: the headline numbers
// and the applies as tables, each chart as an image referenced by name
// (chartFile gives the file a chart's SVG is written to).
func (d *Data) WriteMarkdown(w io.Writer, chartFile func(id string) string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n", d.Title)
	if d.Plan != nil {
		fmt.Fprintf(&b, "Plan `%s`. ", d.Plan.ID)
	}
	fmt.Fprintf(&b, "Generated %s by `tideline backfill report`.\n\n| | |\n|---|---|\n", d.Generated.Format("2006-01-02 15:04 MST"))
	for _, h := range d.headlines() {
		fmt.Fprintf(&b, "| %s | %s |\n", h.Label, h.Value)
	}
	for _, c := range d.Charts() {
		fmt.Fprintf(&b, "\n## %s\n\n![%s](%s)\n\n%s\n", c.Title, c.Title, chartFile(c.ID), c.Caption)
	}
	if len(d.Applies) > 0 {
		b.WriteString("\n## Applies\n\n| run | state | started | re-ingested | re-derived | fired | late | skipped |\n|---|---|---|---|---|---|---|---|\n")
		for _, r := range d.Applies {
			fmt.Fprintf(&b, "| %s | %s | %s | %d | %d | %d | %d | %d |\n", r.RunID, r.State, msTime(r.StartedAtMs), r.EventsReingested, r.CustomersRederive, r.Fired, r.FiredLate, r.Skipped)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func msTime(ms uint64) string {
	if ms == 0 {
		return "-"
	}
	return time.UnixMilli(int64(ms)).UTC().Format("2006-01-02 15:04:05")
}

// WriteFiles writes the page to htmlPath, and beside it the Markdown (same
// name, .md) with its charts as SVG files in a folder named after it. It
// returns the Markdown's path.
func (d *Data) WriteFiles(htmlPath string) (string, error) {
	var page strings.Builder
	if err := d.WriteHTML(&page); err != nil {
		return "", fmt.Errorf("render report: %w", err)
	}
	if err := os.WriteFile(htmlPath, []byte(page.String()), 0o644); err != nil {
		return "", fmt.Errorf("write report: %w", err)
	}
	base := strings.TrimSuffix(htmlPath, filepath.Ext(htmlPath))
	dir := base + "-charts"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("write report charts: %w", err)
	}
	for _, c := range d.Charts() {
		if err := os.WriteFile(filepath.Join(dir, c.ID+".svg"), []byte(c.SVG), 0o644); err != nil {
			return "", fmt.Errorf("write report chart: %w", err)
		}
	}
	var md strings.Builder
	if err := d.WriteMarkdown(&md, func(id string) string { return filepath.Base(dir) + "/" + id + ".svg" }); err != nil {
		return "", err
	}
	mdPath := base + ".md"
	if err := os.WriteFile(mdPath, []byte(md.String()), 0o644); err != nil {
		return "", fmt.Errorf("write report markdown: %w", err)
	}
	return mdPath, nil
}
