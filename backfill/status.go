package backfill

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// WriteStatus lists runs: those in progress first, then past ones, with
// what each did.
func WriteStatus(w io.Writer, runs []Run, now time.Time, staleAfter time.Duration) error {
	if len(runs) == 0 {
		_, err := fmt.Fprintln(w, "No backfill runs recorded yet. Start with: tideline backfill plan --from ... --to ...")
		return err
	}
	var live, past []Run
	for _, r := range runs {
		if r.State == StateRunning && r.Alive(now, staleAfter) {
			live = append(live, r)
		} else {
			past = append(past, r)
		}
	}
	ew := &errWriter{w: w}
	section := func(title string, rs []Run) {
		if len(rs) == 0 {
			return
		}
		ew.printf("%s\n", title)
		tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "run\tkind\tstate\tphase\tplan\twho\tstarted (UTC)\ttook\twindow\tmissing\treingested\trestored\trederived\tqualif.\tfire\tlate\tskip")
		for _, r := range rs {
			state := r.State
			if r.State == StateRunning && !r.Alive(now, staleAfter) {
				state = "running (no heartbeat)"
			}
			end := now
			if r.FinishedAtMs > 0 {
				end = time.UnixMilli(int64(r.FinishedAtMs))
			}
			took := end.Sub(time.UnixMilli(int64(r.StartedAtMs))).Round(time.Second)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
				r.RunID, r.Kind, state, r.Phase, r.PlanID, r.Who,
				time.UnixMilli(int64(r.StartedAtMs)).UTC().Format("2006-01-02 15:04:05"), took, r.Window(),
				num(int64(r.EventsMissing)), num(int64(r.EventsReingested)), num(int64(r.EventsRestored)), num(int64(r.CustomersRederive)),
				num(int64(r.Qualifications)), num(int64(r.Fired)), num(int64(r.FiredLate)), num(int64(r.Skipped)))
		}
		_ = tw.Flush()
		for _, r := range rs {
			if r.Error != "" {
				ew.printf("  %s: %s\n", r.RunID, r.Error)
			}
		}
	}
	section("In progress:", live)
	if len(live) > 0 && len(past) > 0 {
		ew.printf("\n")
	}
	section("Past runs:", past)
	return ew.err
}
