package trigger

import (
	"context"
	"fmt"
	"log/slog"
	"sort"

	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/materialize"
)

// CampaignImpact is what the poller would do with one campaign's
// qualifications if they appeared now.
type CampaignImpact struct {
	CampaignID string `json:"campaign_id"`
	// Trigger is the campaign's trigger kind (audience_entered, audience_exited).
	Trigger string `json:"trigger"`
	// Qualifications counts the transitions that qualify for it.
	Qualifications int `json:"qualifications"`
	// Sends are the fires sent at once (Late of them as the late variant);
	// Deferred the fires held until the customer's quiet hours end.
	Sends    int `json:"sends"`
	Late     int `json:"late"`
	Deferred int `json:"deferred"`
	// Skipped counts the skips by reason (stale, capped, suppressed,
	// quiet_hours, ...); Waiting the qualifications held until the
	// watermark passes their unless window; AlreadyDecided those with a
	// ledger entry, whose decision stands.
	Skipped        map[string]int `json:"skipped"`
	Waiting        int            `json:"waiting"`
	AlreadyDecided int            `json:"already_decided"`
}

// PreviewImpact decides, through the poller's Recorder and its facts
// (ledger, attributes, suppressions, caps) and without recording anything,
// the qualifications the transitions of an audience preview would give the
// active campaigns among cs. watermarkLanes are the poller's
// (trigger.watermark_lanes). One impact is returned per campaign that
// triggers on the audience, whether or not anything qualifies.
func PreviewImpact(ctx context.Context, conn *chdb.Conn, cs []*Campaign, p *materialize.AudiencePreview, watermarkLanes []string, log *slog.Logger) ([]CampaignImpact, error) {
	var active []*Campaign
	byID := map[string]*Campaign{}
	out := []CampaignImpact{}
	index := map[string]int{}
	for _, c := range cs {
		if !c.Active || c.Trigger.Audience != p.AudienceID || (c.Trigger.Kind != TriggerAudienceEntered && c.Trigger.Kind != TriggerAudienceExited) {
			continue
		}
		active = append(active, c)
		byID[c.ID] = c
		index[c.ID] = len(out)
		out = append(out, CampaignImpact{CampaignID: c.ID, Trigger: string(c.Trigger.Kind), Skipped: map[string]int{}})
	}
	if len(active) == 0 {
		return out, nil
	}
	// The transitions become visible to the poller when the evaluator
	// writes them: now, as far as the preview can tell.
	now := chdb.NowMs()
	var qs []Qualification
	unless := false
	for _, ch := range p.Changes {
		o := Occurrence{AudienceID: p.AudienceID, Kind: ch.Kind, Episode: ch.Episode, CustomerID: ch.CustomerID, MessageID: ch.MessageID,
			Lane: ch.Lane, EventTimeMs: ch.EventTimeMs, IngestTimeMs: ch.IngestTimeMs, DerivedAtMs: now}
		for _, q := range Match(active, o) {
			qs = append(qs, q)
			out[index[q.CampaignID]].Qualifications++
			unless = unless || byID[q.CampaignID].Trigger.Unless != nil
		}
	}
	var wm uint64
	if unless {
		var err error
		if wm, _, err = materialize.Watermark(ctx, conn, watermarkLanes); err != nil {
			return nil, err
		}
	}
	rec := &Recorder{Ledger: NewLedger(conn), Conn: conn, Attributes: NewAttributeSource(conn, log), Origin: OriginPoller}
	res, err := rec.Preview(ctx, byID, qs, wm)
	if err != nil {
		return nil, err
	}
	for _, n := range res.New {
		im := &out[index[n.Q.CampaignID]]
		switch {
		case !n.Decision.Action.Fires():
			im.Skipped[n.Decision.Reason]++
		case n.Entry.DeliveryState == StateDeferred:
			im.Deferred++
		default:
			im.Sends++
			if n.Decision.Action == FireLate {
				im.Late++
			}
		}
	}
	for _, n := range res.Reused {
		out[index[n.Q.CampaignID]].AlreadyDecided++
	}
	for _, q := range res.Waiting {
		out[index[q.CampaignID]].Waiting++
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].CampaignID < out[j].CampaignID })
	return out, nil
}

// Sends totals the immediate sends of impacts.
func Sends(impacts []CampaignImpact) int {
	n := 0
	for _, im := range impacts {
		n += im.Sends
	}
	return n
}

// AudienceReport is an audience preview with the impact of its
// transitions on every campaign that triggers on it.
type AudienceReport struct {
	*materialize.AudiencePreview
	Campaigns []CampaignImpact `json:"campaigns"`
	// Sends totals the campaigns' immediate sends.
	Sends int `json:"sends"`
}

// PreviewAudience previews audience a (materialize.Preview, sample members
// described) and the impact of its transitions on the campaigns cs.
func PreviewAudience(ctx context.Context, conn *chdb.Conn, mc materialize.Config, a *materialize.Audience, sample int, cs []*Campaign, watermarkLanes []string, log *slog.Logger) (*AudienceReport, error) {
	p, err := materialize.Preview(ctx, conn, mc, a, sample, log)
	if err != nil {
		return nil, err
	}
	im, err := PreviewImpact(ctx, conn, cs, p, watermarkLanes, log)
	if err != nil {
		return nil, err
	}
	return &AudienceReport{AudiencePreview: p, Campaigns: im, Sends: Sends(im)}, nil
}

// AppliedCampaigns parses the definitions of the active campaigns recorded
// in the campaigns table (ApplyCampaigns): the campaigns the pollers run,
// for a reader without the definition files. A recorded definition that no
// longer parses is left out and described in skipped.
func AppliedCampaigns(ctx context.Context, conn *chdb.Conn) (cs []*Campaign, skipped []string, err error) {
	err = conn.Each(ctx, qAppliedCampaigns, nil, func(rows chdb.Rows) error {
		var id, def string
		if err := rows.Scan(&id, &def); err != nil {
			return err
		}
		c, err := ParseCampaign("campaigns table: "+id, []byte(def))
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("%s: %v", id, err))
			return nil
		}
		cs = append(cs, c)
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read campaigns table: %w", err)
	}
	return cs, skipped, nil
}
