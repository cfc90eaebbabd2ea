package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/materialize"
	"github.com/tideline-dev/tideline/trigger"
)

// printListJSON is printList as JSON: one object per audience, applied or local.
func printListJSON(applied []materialize.AppliedAudience, sizes map[string]uint64, complete map[string]materialize.AudienceCompleteness, local map[string]string, localErr string) error {
	type row struct {
		ID           string  `json:"id"`
		Name         string  `json:"name,omitempty"`
		Active       bool    `json:"active"`
		Applied      bool    `json:"applied"`
		Members      *uint64 `json:"members,omitempty"`
		AppliedAt    string  `json:"applied_at,omitempty"`
		Version      string  `json:"version,omitempty"`
		LocalVersion string  `json:"local_version,omitempty"`
		// What the evaluator last recorded of its completeness.
		Lanes      []string `json:"lanes,omitempty"`
		Direction  string   `json:"direction,omitempty"`
		CompleteTo string   `json:"complete_to,omitempty"`
		HeldBy     string   `json:"held_by,omitempty"`
	}
	out := struct {
		Audiences  []row  `json:"audiences"`
		LocalError string `json:"local_error,omitempty"`
	}{Audiences: []row{}, LocalError: localErr}
	seen := map[string]bool{}
	for _, a := range applied {
		seen[a.ID] = true
		r := row{ID: a.ID, Name: a.Name, Active: a.Active, Applied: true, Version: a.Version, LocalVersion: local[a.ID],
			AppliedAt: time.UnixMilli(int64(a.AppliedAtMs)).UTC().Format(time.RFC3339)}
		if a.Active {
			n := sizes[a.ID]
			r.Members = &n
		}
		if c, ok := complete[a.ID]; ok && a.Active {
			r.Lanes, r.Direction, r.HeldBy = c.Lanes, c.Direction, c.HeldBy
			r.CompleteTo = time.UnixMilli(int64(c.CompleteMs)).UTC().Format(time.RFC3339Nano)
		}
		out.Audiences = append(out.Audiences, r)
	}
	for _, id := range sortedIDs(local) {
		if !seen[id] {
			out.Audiences = append(out.Audiences, row{ID: id, LocalVersion: local[id]})
		}
	}
	return writeJSON(out)
}

// printDerivedLanes adds to explain what the evaluator last recorded of the
// audience's lanes and completeness, when ClickHouse answers: the lanes
// derived from what each lane has carried are known only there.
func printDerivedLanes(ctx context.Context, a *app, id string) {
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := chdb.Open(cctx, a.ch, false)
	if err != nil {
		fmt.Printf("\n-- lanes as the evaluator derived them: unknown (%v)\n", err)
		return
	}
	defer conn.Close()
	all, err := materialize.ReadCompleteness(cctx, conn)
	c, ok := all[id]
	if err != nil || !ok {
		fmt.Println("\n-- lanes as the evaluator derived them: not recorded yet (apply it, and run the evaluator)")
		return
	}
	held := "no lane is behind the freshest"
	if c.HeldBy != "" {
		held = fmt.Sprintf("held back by %s, %s behind the freshest lane", c.HeldBy, (time.Duration(c.EagerMs-c.CompleteMs) * time.Millisecond).Round(time.Second))
	}
	fmt.Printf("\n-- lanes as the evaluator derived them: %s (%s); complete to %s, %s\n",
		strings.Join(c.Lanes, ", "), c.Direction, time.UnixMilli(int64(c.CompleteMs)).UTC().Format(time.RFC3339), held)
}

// applyImpact previews every audience of p that apply would add or
// change, with its campaigns' impact, in plan order.
func applyImpact(ctx context.Context, a *app, conn *chdb.Conn, mc materialize.Config, trg trigger.Config, p *materialize.Plan) ([]*trigger.AudienceReport, error) {
	applied, err := materialize.ListApplied(ctx, conn)
	if err != nil {
		return nil, err
	}
	have := map[string]string{}
	for _, ap := range applied {
		if ap.Active {
			have[ap.ID] = ap.Version
		}
	}
	var campaigns []*trigger.Campaign
	loaded := false
	out := []*trigger.AudienceReport{}
	for _, c := range p.Audiences {
		if v, ok := have[c.Audience.ID]; ok && v == c.Version {
			continue
		}
		if !loaded {
			if campaigns, err = loadCampaigns(a, trg.CampaignsDir, "the impact on campaigns is not previewed"); err != nil {
				return nil, err
			}
			loaded = true
		}
		r, err := trigger.PreviewAudience(ctx, conn, mc, c.Audience, 5, campaigns, trg.WatermarkLanes, a.log)
		if errors.Is(err, materialize.ErrNoWatermark) {
			// Nothing is loaded: apply changes no membership yet.
			a.log.Info("no lane watermark yet: nothing to preview", "audience", c.Audience.ID)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("preview audience %s: %w", c.Audience.ID, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// printAudienceReport prints a preview for people; full adds the sample.
func printAudienceReport(w io.Writer, r *trigger.AudienceReport, full bool) {
	state := "new (not applied)"
	switch {
	case r.Applied && r.Changed:
		state = "changed (an older version is applied)"
	case r.Applied:
		state = "applied, unchanged"
	}
	name := ""
	if r.Name != "" {
		name = " (" + r.Name + ")"
	}
	at := func(ms uint64) string { return time.UnixMilli(int64(ms)).UTC().Format("2006-01-02 15:04:05Z") }
	fmt.Fprintf(w, "audience %s%s, version %s: %s\n", r.AudienceID, name, r.Version, state)
	held := ""
	if r.HeldBy != "" {
		held = ", held back by " + r.HeldBy
	}
	fmt.Fprintf(w, "  as of      %s (freshest lane watermark); complete to %s (lanes %s, %s%s)\n", at(r.AsOfMs), at(r.CompleteMs), strings.Join(r.Lanes, ", "), r.Direction, held)
	fmt.Fprintf(w, "  size       %d members after apply: %d enter, %d exit (%d customers evaluated)\n", r.Size, r.Entered, r.Exited, r.Evaluated)
	if len(r.FromEvents) > 0 {
		fmt.Fprintf(w, "  backfill   apply computes from events: %s\n", strings.Join(r.FromEvents, ", "))
	}
	if len(r.ByLane) > 0 {
		var parts []string
		for _, l := range sortedIDs(r.ByLane) {
			parts = append(parts, fmt.Sprintf("%s %d", l, r.ByLane[l]))
		}
		fmt.Fprintf(w, "  by lane    entries by the lane of the event that qualified them: %s\n", strings.Join(parts, ", "))
	}
	if full && len(r.Sample) > 0 {
		fmt.Fprintf(w, "\n  sample: %d of %d entering\n", len(r.Sample), r.Entered)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  CUSTOMER\tQUALIFIED AT\tLANE\tBY EVENT\tATTRIBUTES\tCOUNTS")
		for _, m := range r.Sample {
			var attrs, feats []string
			for _, k := range sortedIDs(m.Attributes) {
				attrs = append(attrs, k+"="+m.Attributes[k])
			}
			for _, k := range sortedIDs(m.Features) {
				feats = append(feats, k+": "+m.Features[k])
			}
			ev := m.Event
			if ev == "" {
				ev = "-"
			}
			if m.MessageID != "" {
				ev += " (" + m.MessageID + ")"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", m.CustomerID, at(m.EventTimeMs), orDash(m.Lane), ev, orDash(strings.Join(attrs, " ")), orDash(strings.Join(feats, "; ")))
		}
		_ = tw.Flush()
	}
	if len(r.Campaigns) == 0 {
		fmt.Fprintln(w, "  campaigns  none triggers on this audience")
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  CAMPAIGN\tTRIGGER\tQUALIFY\tSEND NOW\tOF THEM LATE\tDEFERRED\tSKIPPED\tWAITING\tALREADY DECIDED")
	for _, c := range r.Campaigns {
		var skips []string
		for _, k := range sortedIDs(c.Skipped) {
			skips = append(skips, fmt.Sprintf("%d %s", c.Skipped[k], k))
		}
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%d\t%d\t%s\t%d\t%d\n", c.CampaignID, c.Trigger, c.Qualifications, c.Sends, c.Late, c.Deferred, orDash(strings.Join(skips, ", ")), c.Waiting, c.AlreadyDecided)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "  apply would send %d campaign messages at once\n", r.Sends)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func printApply(rep *materialize.ApplyReport) {
	show := func(what string, xs []string) {
		if len(xs) > 0 {
			fmt.Printf("%-12s %s\n", what+":", strings.Join(xs, ", "))
		}
	}
	show("applied", rep.Applied)
	show("unchanged", rep.Unchanged)
	show("deactivated", rep.Deactivated)
	show("views created", rep.ViewsCreated)
	show("views dropped", rep.ViewsDropped)
	if len(rep.Applied)+len(rep.Deactivated) > 0 {
		fmt.Println("the evaluator picks the changes up on its next pass and re-evaluates every customer once")
	}
}

func printList(applied []materialize.AppliedAudience, sizes map[string]uint64, complete map[string]materialize.AudienceCompleteness, local map[string]string, localErr string) {
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tNAME\tSTATE\tMEMBERS\tCOMPLETE TO\tHELD BY\tLANES\tAPPLIED\tLOCAL DEFINITION")
	seen := map[string]bool{}
	for _, a := range applied {
		seen[a.ID] = true
		state, members := "inactive", "-"
		if a.Active {
			state, members = "active", fmt.Sprint(sizes[a.ID])
		}
		lv, ok := local[a.ID]
		status := "missing (apply deactivates it)"
		switch {
		case localErr != "":
			status = "?"
		case ok && lv == a.Version && a.Active:
			status = "same"
		case ok && !a.Active:
			status = "defined (apply re-activates it)"
		case ok:
			status = "changed (apply to use it)"
		case !a.Active:
			status = "-"
		}
		upTo, held, lanes := "-", "-", "-"
		if c, ok := complete[a.ID]; ok && a.Active {
			upTo = time.UnixMilli(int64(c.CompleteMs)).UTC().Format(time.DateTime)
			lanes = strings.Join(c.Lanes, ",") + " (" + c.Direction + ")"
			if c.HeldBy != "" {
				held = fmt.Sprintf("%s (%s behind)", c.HeldBy, (time.Duration(c.EagerMs-c.CompleteMs) * time.Millisecond).Round(time.Second))
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.Name, state, members, upTo, held, lanes, time.UnixMilli(int64(a.AppliedAtMs)).UTC().Format(time.DateTime), status)
	}
	var fresh []string
	for id := range local {
		if !seen[id] {
			fresh = append(fresh, id)
		}
	}
	sort.Strings(fresh)
	for _, id := range fresh {
		fmt.Fprintf(w, "%s\t\tnot applied\t-\t-\t-\t-\t-\tnew (apply to use it)\n", id)
	}
	_ = w.Flush()
	if localErr != "" {
		fmt.Fprintf(os.Stderr, "local definitions do not compile (tideline audiences validate):\n%s\n", localErr)
	}
}
