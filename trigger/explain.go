package trigger

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/tideline-dev/tideline/internal/chdb"

	"github.com/tideline-dev/tideline/definition"
)

// ApplyCampaigns records the definitions in the campaigns table: a row for
// each new or changed campaign, and an inactive row for each active
// campaign that is no longer defined. Running it again changes nothing.
func ApplyCampaigns(ctx context.Context, conn *chdb.Conn, cs []*Campaign) error {
	type applied struct {
		version string
		active  bool
	}
	have := map[string]applied{}
	err := conn.Each(ctx, qCampaignVersions, nil, func(rows chdb.Rows) error {
		var (
			id, version string
			active      uint8
		)
		if err := rows.Scan(&id, &version, &active); err != nil {
			return err
		}
		have[id] = applied{version, active == 1}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read campaigns table: %w", err)
	}
	var rows []*Campaign
	defined := map[string]bool{}
	for _, c := range cs {
		defined[c.ID] = true
		if h, ok := have[c.ID]; ok && h.version == c.Version && h.active == c.Active {
			continue
		}
		rows = append(rows, c)
	}
	ids := make([]string, 0, len(have))
	for id := range have {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if h := have[id]; !defined[id] && h.active {
			rows = append(rows, &Campaign{ID: id, Name: id, Version: h.version})
		}
	}
	return InsertCampaigns(ctx, conn, rows, chdb.NowMs())
}

// InsertCampaigns records campaign definitions (id, name, definition,
// version and whether active) as applied at appliedAtMs. ApplyCampaigns
// records what changed through it; a demonstration dataset records its
// rows with it.
func InsertCampaigns(ctx context.Context, conn *chdb.Conn, cs []*Campaign, appliedAtMs uint64) error {
	if len(cs) == 0 {
		return nil
	}
	batch, err := conn.PrepareBatch(ctx, qInsertCampaigns)
	if err != nil {
		return fmt.Errorf("prepare campaigns insert: %w", err)
	}
	for _, c := range cs {
		var active uint8
		if c.Active {
			active = 1
		}
		if err := batch.Append(c.ID, c.Name, c.Definition, c.Version, active, appliedAtMs); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("append campaign %s: %w", c.ID, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("record %d campaign definitions: %w", len(cs), err)
	}
	return nil
}

// List writes one line per campaign.
func List(w io.Writer, cs []*Campaign) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTRIGGER\tSTALENESS\tRE-ELIGIBLE\tCAP\tDELIVER\tFILE")
	for _, c := range cs {
		id := c.ID
		if !c.Active {
			id += " (disabled)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", id, c.Trigger.short(), c.Staleness.String(), c.Reeligible.String(), c.capString(), c.deliverString(), c.File)
	}
	return tw.Flush()
}

func (t Trigger) short() string {
	var s string
	switch t.Kind {
	case TriggerEvent:
		s = "event " + t.Event.Name
		if len(t.Event.Where) > 0 {
			s += " (filtered)"
		}
	default:
		s = string(t.Kind) + " " + t.Audience
	}
	if t.Unless != nil {
		s += " unless " + t.Unless.Event.Name + " within " + definition.FormatDuration(t.Unless.Within)
	}
	return s
}

func (s Staleness) String() string {
	return definition.FormatDuration(s.Budget) + " then " + string(s.Late)
}

func (r Reeligibility) String() string {
	switch {
	case r.Never:
		return "never"
	case r.After == 0:
		return "always"
	}
	return "after " + definition.FormatDuration(r.After)
}

func (c *Campaign) capString() string {
	if c.Cap == nil {
		return "-"
	}
	return fmt.Sprintf("%d per %s", c.Cap.Max, definition.FormatDuration(c.Cap.Per))
}

func (c *Campaign) deliverString() string {
	var parts []string
	for _, d := range c.Destinations() {
		parts = append(parts, d.String())
	}
	return strings.Join(parts, " + ")
}

// Explain writes what the poller does with a campaign: what qualifies, the
// query it runs, the policy in order, where fires go and how they are keyed.
// topicPrefix is the configured Kafka topic prefix.
func Explain(w io.Writer, c *Campaign, cfg Config, topicPrefix string) error {
	b := &strings.Builder{}
	fmt.Fprintf(b, "campaign %s (%s)\n  file %s, version %s", c.ID, c.Name, c.File, c.Version)
	if !c.Active {
		b.WriteString(", disabled (enabled: false): validated but not run")
	}
	b.WriteString("\n\n")
	if c.Description != "" {
		fmt.Fprintf(b, "%s\n\n", c.Description)
	}
	b.WriteString("Qualifies\n")
	f := transitionFeed
	names := []string{c.Trigger.Audience}
	switch c.Trigger.Kind {
	case TriggerAudienceEntered:
		fmt.Fprintf(b, "  each time a customer enters audience %s; one qualification per entry (episode).\n", c.Trigger.Audience)
	case TriggerAudienceExited:
		fmt.Fprintf(b, "  each time a customer leaves audience %s; one qualification per exit (episode).\n", c.Trigger.Audience)
	case TriggerEvent:
		f, names = eventFeed, []string{c.Trigger.Event.Name}
		fmt.Fprintf(b, "  each %q event", c.Trigger.Event.Name)
		if len(c.Trigger.Event.Where) > 0 {
			b.WriteString(" where")
			for i, cond := range c.Trigger.Event.Where {
				if i > 0 {
					b.WriteString(" and")
				}
				b.WriteString(" " + cond.String())
			}
		}
		b.WriteString("; one qualification per message id.\n")
		if len(c.Trigger.Event.Where) > 0 {
			b.WriteString("  Property conditions are checked in Go on the rows read (no campaign value reaches SQL).\n")
		}
	}
	b.WriteString("\nReads (every poll, past the saved position; ? are bound parameters)\n")
	shard, _ := shardFilter(cfg.Shards, []int32{0})
	if cfg.Sharding == "none" {
		shard = ""
	}
	q := feedQuery(f, shard, false)
	fmt.Fprintf(b, "  %s\n", q)
	fmt.Fprintf(b, "  with %s IN (%s), batches of %d, an overlap window of %s re-checked each poll.\n",
		f.nameCol, quoteList(names), cfg.BatchSize, definition.FormatDuration(cfg.Overlap))
	b.WriteString("\nDecides, in this order\n")
	step := 1
	b.WriteString("  1. an existing ledger entry for (campaign, customer, episode) keeps its decision.\n")
	if u := c.Trigger.Unless; u != nil {
		step++
		fmt.Fprintf(b, "  %d. waits until the lane watermarks (%s) pass event time + %s, then skips it as \"converted\"\n     if the customer sent %q", step, strings.Join(cfg.WatermarkLanes, ", "), definition.FormatDuration(u.Within), u.Event.Name)
		for _, cond := range u.Event.Where {
			b.WriteString(" with " + cond.String())
		}
		b.WriteString(" within that window.\n")
	}
	if cn := c.Consent; cn != nil {
		step++
		if cn.Contains != "" {
			fmt.Fprintf(b, "  %d. consent: skips it as \"no_consent\" unless the customer's attribute %s lists subscription group %s.\n", step, cn.Attribute, cn.Contains)
		} else {
			fmt.Fprintf(b, "  %d. consent: skips it as \"no_consent\" unless the customer's attribute %s is %v.\n", step, cn.Attribute, cn.Equals)
		}
	}
	step++
	fmt.Fprintf(b, "  %d. suppression: skips it as \"suppressed\" if the customer is in the suppressions table\n     (loaded by an operator, or added by an \"unsubscribe\" event); checked again before each send.\n", step)
	step++
	switch {
	case c.Reeligible.Never:
		fmt.Fprintf(b, "  %d. skips it as \"not_reeligible\" if the customer was ever sent this campaign.\n", step)
	case c.Reeligible.After > 0:
		fmt.Fprintf(b, "  %d. skips it as \"not_reeligible\" if another send is within %s of its event time.\n", step, definition.FormatDuration(c.Reeligible.After))
	default:
		fmt.Fprintf(b, "  %d. every qualification is eligible (reeligible_after: 0).\n", step)
	}
	if c.Cap != nil {
		step++
		fmt.Fprintf(b, "  %d. skips it as \"capped\" if %d sends are already within %s of its event time.\n", step, c.Cap.Max, definition.FormatDuration(c.Cap.Per))
	}
	due := "its event time"
	if c.Trigger.Unless != nil {
		due = "the end of its unless window"
	}
	if c.Policy != nil {
		for _, g := range c.Policy.Caps {
			if !c.InGroup(g.Group) {
				continue
			}
			step++
			scope := "all campaigns"
			if g.Group != "" {
				scope = "the campaigns of group " + g.Group
			}
			fmt.Fprintf(b, "  %d. global cap (%s): skips it as \"capped_global\" if %s already sent the customer %d within %s of its event time.\n",
				step, c.Policy.File, scope, g.Max, definition.FormatDuration(g.Per))
		}
	}
	step++
	fmt.Fprintf(b, "  %d. fires (\"fresh\") if detected within %s of %s; beyond that ", step, definition.FormatDuration(c.Staleness.Budget), due)
	if c.Staleness.Late == LateFire {
		b.WriteString("fires late (\"late\": true and lag_ms in the payload).\n")
	} else {
		b.WriteString("skips it as \"stale\".\n")
	}
	if qh := c.quietHours(); qh != nil {
		step++
		tz := c.timeZone()
		from := "the campaign's"
		if c.Quiet == nil {
			from = c.Policy.File + "'s"
		}
		action := "defers it (ledger state \"deferred\" with its release time) to the end of the period"
		if qh.Policy == QuietSkip {
			action = "skips it as \"quiet_hours\""
		}
		fmt.Fprintf(b, "  %d. quiet hours (%s): %s to %s in the customer's time zone (attribute %s, else %s):\n     a fire decided then %s.\n",
			step, from, clock(qh.From), clock(qh.To), tz.Attribute, tz.Default, action)
	}
	b.WriteString("\nDelivers\n")
	if c.Template != nil {
		b.WriteString("  the body rendered from body_template when the fire is decided, stored with the ledger entry: retries send the same bytes.\n")
	}
	if wh := c.Deliver.Webhook; wh != nil {
		if th := wh.Throttle; th != nil {
			fmt.Fprintf(b, "  throttled to %g messages/s (burst %d) on top of %d in flight; fires beyond the in-memory queue (%d) wait in the ledger.\n",
				th.Rate, th.Burst, cfg.MaxInFlight, cfg.QueueSize)
		}
		fmt.Fprintf(b, "  POST %s, signed per Standard Webhooks with the secret in $%s", wh.URL, wh.SecretEnv)
		if wh.PreviousSecretEnv != "" {
			fmt.Fprintf(b, " (and $%s while a rotation lasts)", wh.PreviousSecretEnv)
		}
		fmt.Fprintf(b, ";\n  up to %d attempts, backoff from %s to %s with jitter, Retry-After honoured; 410 disables it.\n",
			cfg.MaxAttempts, definition.FormatDuration(cfg.BackoffBase), definition.FormatDuration(cfg.BackoffMax))
	}
	if c.Deliver.KafkaTopic != "" {
		fmt.Fprintf(b, "  produce to Kafka topic %s, keyed by the webhook id.\n", topicPrefix+c.Deliver.KafkaTopic)
	}
	b.WriteString("  webhook id = ledger key = \"msg_\" + 32 hex of SHA-256(campaign_id, customer_id, episode).\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = "'" + strings.ReplaceAll(s, "'", "\\'") + "'"
	}
	return strings.Join(q, ", ")
}

// Warnings lists what would stop a valid campaign from delivering on this
// machine: signing secrets missing from the environment.
func Warnings(cs []*Campaign, getenv func(string) string) []string {
	var out []string
	for _, c := range cs {
		if _, err := c.Secrets(getenv); err != nil {
			out = append(out, err.Error())
		}
	}
	return out
}
