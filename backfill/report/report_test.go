package report

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/tideline-dev/tideline/backfill"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
)

// seedOutage writes a window of events: the web lane loaded a second after
// receipt throughout; the server lane likewise for its first half, then
// stalled, its second half loaded all at once outage after the window start.
func seedOutage(t *testing.T, conn *chdb.Conn, w backfill.Window, outage time.Duration) {
	t.Helper()
	ctx := context.Background()
	batch, err := conn.PrepareBatch(ctx, `INSERT INTO events (message_id, type, customer_id, user_id, anonymous_id, event,
		properties, traits, event_time, event_time_ms, sent_at_ms, received_at_ms, ingest_time_ms, source, lane,
		kafka_topic, kafka_partition, kafka_offset)`)
	if err != nil {
		t.Fatal(err)
	}
	minutes := int(w.To.Sub(w.From) / time.Minute)
	for m := range minutes {
		for i := range 10 {
			recv := w.From.Add(time.Duration(m)*time.Minute + time.Duration(i)*6*time.Second)
			for _, lane := range []string{"web", "server"} {
				load := recv.Add(time.Second)
				if lane == "server" && m >= minutes/2 {
					load = w.From.Add(outage)
				}
				id := fmt.Sprintf("%s-%d-%d", lane, m, i)
				cust := fmt.Sprintf("c%d", (m*10+i)%25)
				if err := batch.Append(id, "track", cust, cust, "", "x", "{}", "{}", recv, uint64(recv.UnixMilli()), uint64(0),
					uint64(recv.UnixMilli()), uint64(load.UnixMilli()), lane, lane, "events."+lane, int32(0), int64(m*10+i)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
}

func seedApply(t *testing.T, conn *chdb.Conn, planID string, w backfill.Window) {
	t.Helper()
	ctx := context.Background()
	batch, err := conn.PrepareBatch(ctx, `INSERT INTO backfill_runs (run_id, plan_id, kind, state, phase, window_from_ms, window_to_ms,
		started_at_ms, finished_at_ms, events_reingested, customers_rederived, fired, fired_late, skipped, updated_at_ms)`)
	if err != nil {
		t.Fatal(err)
	}
	now := uint64(time.Now().UnixMilli())
	if err := batch.Append("run-apply-1", planID, backfill.KindApply, backfill.StateCompleted, backfill.PhaseDone,
		uint64(w.FromMs()), uint64(w.ToMs()), now-5000, now, uint64(70), uint64(12), uint64(3), uint64(1), uint64(5), now); err != nil {
		t.Fatal(err)
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
}

func testPlan(w backfill.Window) *backfill.Plan {
	return &backfill.Plan{
		ID: "plan-test", Window: w, LateAfterMs: 60000,
		LaneFindings: []backfill.LaneFinding{{Lane: "server", InWindow: 1000, Loaded: 930, Missing: 70, Partitions: []backfill.PartitionFinding{
			{Partition: 0, Window: backfill.Range{From: 0, To: 1000}, Missing: backfill.Ranges{{From: 400, To: 450}, {From: 700, To: 720}}},
		}}},
		Qualifications: backfill.QualificationFindings{Checked: true, Campaigns: []backfill.CampaignFinding{
			{CampaignID: "welcome_gold", Decisions: map[string]int64{"fire": 3, "skip": 5}, Reasons: map[string]int64{"fire:fresh": 3, "skip:stale": 5}},
		}},
	}
}

// TestReportRendersInChromium gathers a report over a seeded outage, checks
// its series against what was seeded, and renders the page in headless
// Chromium, asserting on the elements the browser laid out.
func TestReportRendersInChromium(t *testing.T) {
	conn := testenv.ClickHouse(t)
	from := time.Now().Add(-3 * time.Hour).Truncate(time.Minute).UTC()
	w := backfill.Window{From: from, To: from.Add(30 * time.Minute)}
	outage := 40 * time.Minute
	seedOutage(t, conn, w, outage)
	plan := testPlan(w)
	seedApply(t, conn, plan.ID, w)

	d, err := Gather(context.Background(), conn, Source{Plan: plan})
	if err != nil {
		t.Fatal(err)
	}
	// 40 minutes in at most 120 intervals.
	if d.Bucket != 30*time.Second {
		t.Fatalf("bucket %s, want 30s", d.Bucket)
	}
	// The axis runs until the server lane's last load, outage after the start.
	if got, want := len(d.Times), int(outage/d.Bucket)+1; got != want {
		t.Errorf("%d intervals, want %d", got, want)
	}
	ages := map[string]float64{}
	received := map[string]float64{}
	for _, l := range d.Lanes {
		for i, v := range l.WatermarkAgeSeconds {
			ages[l.Lane] = max(ages[l.Lane], v)
			received[l.Lane] += l.Received[i]
		}
	}
	if received["web"] != 300 || received["server"] != 300 {
		t.Errorf("received %v, want 300 per lane", received)
	}
	// The server watermark stopped at the first stalled event (minute 15)
	// and was furthest behind just before the load at minute 40.
	if a := ages["server"]; a < 24*60 || a > 25*60 {
		t.Errorf("server watermark age peaked at %.0fs, want 24-25 min", a)
	}
	if a := ages["web"]; a > 60 {
		t.Errorf("web watermark age peaked at %.0fs, want under a minute", a)
	}
	if len(d.Applies) != 1 {
		t.Fatalf("%d applies, want 1", len(d.Applies))
	}

	// A report of the recorded run finds its window and its plan's applies.
	byRun, err := Gather(context.Background(), conn, Source{RunID: "run-apply-1"})
	if err != nil {
		t.Fatal(err)
	}
	if !byRun.Window.From.Equal(w.From) || !byRun.Window.To.Equal(w.To) || len(byRun.Applies) != 1 || len(byRun.Times) != len(d.Times) {
		t.Errorf("report of the run: window %v, %d applies, %d intervals; want %v, 1, %d", byRun.Window, len(byRun.Applies), len(byRun.Times), w, len(d.Times))
	}
	if _, err := Gather(context.Background(), conn, Source{RunID: "no-such-run"}); err == nil {
		t.Error("a report of an unknown run did not fail")
	}

	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	md, err := d.WriteFiles(page)
	if err != nil {
		t.Fatal(err)
	}
	mdText, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range d.Charts() {
		if !strings.Contains(string(mdText), "report-charts/"+c.ID+".svg") {
			t.Errorf("markdown does not show chart %s", c.ID)
		}
		if _, err := os.Stat(filepath.Join(dir, "report-charts", c.ID+".svg")); err != nil {
			t.Error(err)
		}
	}

	if shot := os.Getenv("TIDELINE_REPORT_SCREENSHOT"); shot != "" {
		screenshot(t, page, shot)
	}
	dom := renderDOM(t, page)
	charts := map[string]*html.Node{}
	walk(dom, func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "svg" && hasClass(n, "chart") {
			charts[attr(n, "data-chart")] = n
		}
	})
	want := map[string]int{"lag": 4, "flow": 4, "missing": 2, "stale": 1, "decisions": 2, "reasons": 2, "apply": 5}
	for id, shapes := range want {
		n := charts[id]
		if n == nil {
			t.Errorf("chart %s not in the rendered page", id)
			continue
		}
		if wdt, _ := strconv.Atoi(attr(n, "data-drawn-width")); wdt < 100 {
			t.Errorf("chart %s drawn %q px wide by the browser, want a laid-out chart", id, attr(n, "data-drawn-width"))
		}
		if got, _ := strconv.Atoi(attr(n, "data-shapes")); got != shapes {
			t.Errorf("chart %s: the browser counted %q drawn series/bars/ranges, want %d", id, attr(n, "data-shapes"), shapes)
		}
	}
	// Each line has a point per interval; the missing ranges are the plan's.
	walk(charts["lag"], func(n *html.Node) {
		if hasClass(n, "series") && attr(n, "data-points") != strconv.Itoa(len(d.Times)) {
			t.Errorf("lag series %s has %s points, want %d", attr(n, "data-series"), attr(n, "data-points"), len(d.Times))
		}
	})
	var ranges []string
	walk(charts["missing"], func(n *html.Node) {
		if hasClass(n, "missing") {
			ranges = append(ranges, attr(n, "data-from")+"-"+attr(n, "data-to"))
		}
	})
	if strings.Join(ranges, ",") != "400-450,700-720" {
		t.Errorf("missing ranges drawn %v, want 400-450,700-720", ranges)
	}
}

// renderDOM loads page in headless Chromium and returns the DOM after its
// scripts ran.
func renderDOM(t *testing.T, page string) *html.Node {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("headless Chromium is required to check the report's rendering: apt-get install -y chromium (scripts/test.sh installs it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, chromiumFlags(t.TempDir(), "--dump-dom", "file://"+page)...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom: %v", err)
	}
	doc, err := html.Parse(strings.NewReader(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// screenshot writes a PNG of page as Chromium draws it; the README's
// picture of the report comes from here:
// TIDELINE_REPORT_SCREENSHOT=$PWD/docs/report.png go test ./backfill/report -run Chromium
func screenshot(t *testing.T, page, png string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "chromium", chromiumFlags(t.TempDir(), "--hide-scrollbars", "--window-size=860,2300", "--screenshot="+png, "file://"+page)...).CombinedOutput()
	if err != nil {
		t.Fatalf("chromium --screenshot: %v\n%s", err, out)
	}
}

// chromiumFlags run Chromium headless and offline, with a profile of its own.
func chromiumFlags(profile string, extra ...string) []string {
	return append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--user-data-dir=" + profile}, extra...)
}

func walk(n *html.Node, fn func(*html.Node)) {
	if n == nil {
		return
	}
	fn(n)
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		walk(c, fn)
	}
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func hasClass(n *html.Node, c string) bool {
	for _, f := range strings.Fields(attr(n, "class")) {
		if f == c {
			return true
		}
	}
	return false
}

func TestBucketFor(t *testing.T) {
	for _, c := range []struct{ span, want time.Duration }{
		{30 * time.Second, time.Second},
		{3 * time.Minute, 2 * time.Second},
		{40 * time.Minute, 30 * time.Second},
		{270 * time.Minute, 5 * time.Minute},
		{30 * 24 * time.Hour, 6 * time.Hour},
	} {
		if got := bucketFor(c.span); got != c.want {
			t.Errorf("bucketFor(%s) = %s, want %s", c.span, got, c.want)
		}
	}
}
