package backfill

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteSummary writes the plan as an incident report: the window, the lanes
// affected, late and missing events, stale customers and the campaigns
// affected, and what apply would do.
func WriteSummary(w io.Writer, p *Plan, planPath string) error {
	ew := &errWriter{w: w}
	ew.printf("Backfill plan %s, made %s by %s\n", p.ID, p.CreatedAt.UTC().Format("2006-01-02 15:04:05 MST"), p.CreatedBy)
	ew.printf("Window   %s (Kafka record time: when the collector received the events)\n", p.Window)
	ew.printf("Lanes    %s    source %s    database %s\n", strings.Join(p.Lanes, ", "), p.Source, p.Database)

	inWindow, loaded, missing, backlog, unavailable, late := p.Totals()
	ew.printf("\nEvents: %s in the window, %s loaded, %s missing, %s loaded late (over %s)\n",
		num(inWindow), num(loaded), num(missing), num(late), dur(p.LateAfterMs))
	if dups, again := p.Deliveries(); dups > 0 || again > 0 {
		ew.printf("Duplicate deliveries: %s records carry a message already loaded from another record (client retries, redelivery) and %s records were loaded more than once; none of them is missing\n",
			num(dups), num(again))
	}
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "lane\tin window\tloaded\tmissing\tbacklog\tlate\tlag p50\tp90\tp99\tmax\t")
	for _, l := range p.LaneFindings {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", l.Lane, num(l.InWindow), num(l.Loaded), num(l.Missing),
			num(l.Backlog), num(l.Late), dur(l.Lag.P50), dur(l.Lag.P90), dur(l.Lag.P99), dur(l.Lag.Max))
	}
	_ = tw.Flush()
	for _, l := range p.LaneFindings {
		if l.Loaded == 0 || len(l.Lag.Histogram) == 0 {
			continue
		}
		var parts []string
		for _, b := range l.Lag.Histogram {
			if b.Count == 0 {
				continue
			}
			label := "≤" + dur(b.UpToMs)
			if b.UpToMs == 0 {
				label = ">" + dur(lagBoundsMs[len(lagBoundsMs)-1])
			}
			parts = append(parts, label+" "+num(b.Count))
		}
		ew.printf("  %s lag: %s\n", l.Lane, strings.Join(parts, " | "))
	}
	if missing > 0 {
		ew.printf("\nMissing offsets (in Kafka, not in ClickHouse):\n")
		for _, l := range p.LaneFindings {
			for _, pf := range l.Partitions {
				if len(pf.Missing) == 0 {
					continue
				}
				ew.printf("  %s/%d: %s records at %s\n", l.Topic, pf.Partition, num(pf.Missing.Len()), pf.Missing)
			}
		}
		if backlog > 0 {
			ew.printf("  %s of them are still ahead of the loader (its backlog): the live loader will load them\n", num(backlog))
		}
		if unavailable > 0 {
			ew.printf("  %s of them are no longer in %s\n", num(unavailable), p.Source)
		}
	}

	s := p.Stale
	ew.printf("\nCustomers:\n")
	if s.LateCustomers > 0 {
		ew.printf("  %s had late events: their state was stale for p50 %s, p90 %s, up to %s\n",
			num(s.LateCustomers), dur(s.StaleFor.P50), dur(s.StaleFor.P90), dur(s.StaleFor.Max))
	} else {
		ew.printf("  none had late events\n")
	}
	if s.MissingCustomers > 0 {
		ew.printf("  %s have events still missing, the oldest received %s: stale until applied\n",
			num(s.MissingCustomers), s.OldestMissing.UTC().Format("2006-01-02 15:04:05 MST"))
	}
	if d := s.Derived; d != nil {
		ew.printf("  replay of %s customers' raw events: %s differ from materialized state", num(d.Checked), num(int64(len(d.Customers))))
		var parts []string
		if d.Attributes > 0 {
			parts = append(parts, fmt.Sprintf("%s in attributes", num(d.Attributes)))
		}
		for _, a := range d.Audiences {
			parts = append(parts, fmt.Sprintf("audience %s: %s should enter, %s should exit", a.AudienceID, num(a.ShouldEnter), num(a.ShouldExit)))
		}
		if len(parts) > 0 {
			ew.printf(" (%s)", strings.Join(parts, "; "))
		}
		ew.printf("\n")
		for _, e := range d.Examples {
			ew.printf("    %s %s %s: materialized %s, replay %s\n", e.CustomerID, e.Kind, e.Name, quoteEmpty(e.Materialized), quoteEmpty(e.Replayed))
		}
	}
	if len(s.Examples) > 0 {
		ew.printf("  stale the longest:\n")
		for _, c := range s.Examples {
			note := ""
			if c.Missing {
				note = ", events missing"
			}
			ew.printf("    %s (%s) %s%s\n", c.CustomerID, c.Lane, dur(c.StaleForMs), note)
		}
	}

	q := p.Qualifications
	decisions := map[string]int64{}
	for _, pq := range q.Pending {
		if pq.Owner != OwnerPoller {
			decisions[pq.Decision]++
		}
	}
	if q.Checked {
		ew.printf("\nCampaigns: %s qualifications in the window have no ledger entry\n", num(int64(len(q.Pending))))
		if len(q.Campaigns) > 0 {
			tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintln(tw, "campaign\taudience\tqualified\tledgered\tpending\tfire\tfire_late\tskip\twait\tpoller's\t")
			for _, c := range q.Campaigns {
				pending := c.Qualified - c.Ledgered
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", c.CampaignID, orDash(c.AudienceID), num(c.Qualified), num(c.Ledgered),
					num(pending), num(c.Decisions["fire"]), num(c.Decisions["fire_late"]), num(c.Decisions["skip"]), num(c.Decisions["wait"]), num(c.LeftToPoller))
			}
			_ = tw.Flush()
			for _, c := range q.Campaigns {
				if len(c.Reasons) == 0 {
					continue
				}
				keys := make([]string, 0, len(c.Reasons))
				for k := range c.Reasons {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				var parts []string
				for _, k := range keys {
					parts = append(parts, fmt.Sprintf("%s %s", k, num(c.Reasons[k])))
				}
				ew.printf("  %s: %s\n", c.CampaignID, strings.Join(parts, ", "))
			}
			for _, c := range q.Campaigns {
				if c.Deferred > 0 {
					ew.printf("  %s: %s fires deferred to the end of the customers' quiet hours\n", c.CampaignID, num(c.Deferred))
				}
				if th := c.Throttle; th != nil && th.Fires > 0 {
					ew.printf("  %s: %s fires throttled at %g/s (burst %d): the release takes about %s\n",
						c.CampaignID, num(th.Fires), th.Rate, th.Burst, time.Duration(th.ReleaseSeconds*float64(time.Second)).Round(time.Second))
				}
			}
		}
	}

	ew.printf("\nApply would: ")
	var remaining []string
	if n := missing - backlog - unavailable; n > 0 {
		remaining = append(remaining, fmt.Sprintf("re-ingest %s records through the backfill lane", num(n)))
	}
	if d := s.Derived; d != nil && len(d.Customers) > 0 {
		remaining = append(remaining, fmt.Sprintf("re-derive %s customers", num(int64(len(d.Customers)))))
	}
	var own, poller int64
	for _, pq := range q.Pending {
		if pq.Owner == OwnerPoller {
			poller++
		} else {
			own++
		}
	}
	if own > 0 {
		remaining = append(remaining, fmt.Sprintf("decide %s qualifications (%s fire, %s fire late, %s skip, %s wait for their unless window)", num(own),
			num(decisions["fire"]), num(decisions["fire_late"]), num(decisions["skip"]), num(decisions["wait"])))
	}
	if poller > 0 {
		remaining = append(remaining, fmt.Sprintf("leave %s qualifications to the running poller, which has not read them yet", num(poller)))
	}
	if len(remaining) == 0 {
		ew.printf("nothing: the window is complete and consistent\n")
	} else {
		ew.printf("%s\n", strings.Join(remaining, "; "))
	}
	for _, n := range p.Notes {
		ew.printf("Note: %s\n", n)
	}
	if planPath != "" && len(remaining) > 0 {
		ew.printf("\nNext: tideline backfill apply %s --dry-run, then without --dry-run\n", planPath)
	}
	return ew.err
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(b []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(b)
	e.err = err
	return n, err
}

func (e *errWriter) printf(format string, args ...any) { fmt.Fprintf(e, format, args...) }

// num formats n with thin thousands separators.
func num(n int64) string {
	s := strconv.FormatInt(n, 10)
	if n < 0 {
		return "-" + num(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// dur formats milliseconds the way an incident report would: 420ms, 9.5s,
// 1m35s, 23m, 2h1m, 3h.
func dur(ms int64) string {
	d := time.Duration(ms) * time.Millisecond
	switch {
	case ms == 0:
		return "0"
	case d < time.Second:
		return d.String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		d = d.Round(time.Second)
		m, sec := int(d/time.Minute), int(d%time.Minute/time.Second)
		if sec == 0 {
			return fmt.Sprintf("%dm", m)
		}
		return fmt.Sprintf("%dm%ds", m, sec)
	default:
		d = d.Round(time.Minute)
		h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
		if m == 0 {
			return fmt.Sprintf("%dh", h)
		}
		return fmt.Sprintf("%dh%dm", h, m)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func quoteEmpty(s string) string {
	if s == "" {
		return `""`
	}
	return s
}
