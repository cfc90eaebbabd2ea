package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/materialize"
	"github.com/tideline-dev/tideline/trigger"
)

// AudiencePreviewRequest is the body of POST audience-preview
// (AudiencePreviewRequest in grafana/app/src/types.ts).
type AudiencePreviewRequest struct {
	// Definition is one audience's YAML, as in materialize.audiences_dir.
	Definition string `json:"definition"`
	// Sample is how many entering customers to describe (default 10, at
	// most maxPreviewSample).
	Sample int `json:"sample"`
}

// AudiencePreviewResponse is what `tideline audiences preview --json`
// prints, with the applied campaigns whose recorded definitions could not
// be read (their impact is not in Campaigns).
type AudiencePreviewResponse struct {
	*trigger.AudienceReport
	CampaignsNotPreviewed []string `json:"campaigns_not_previewed,omitempty"`
}

const maxPreviewSample = 100

// previewResource previews a definition as `tideline audiences preview`
// does, with the settings and campaigns apply and the pollers recorded in
// ClickHouse (the data source has no definition files). It only reads.
func (d *Datasource) previewResource(ctx context.Context, body []byte, sender backend.CallResourceResponseSender) error {
	var req AudiencePreviewRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return sendJSON(sender, http.StatusBadRequest, map[string]string{"message": fmt.Sprintf("audience-preview: the body must be JSON {\"definition\": \"<yaml>\", \"sample\": 10}: %v", err)})
	}
	if req.Sample == 0 {
		req.Sample = 10
	}
	if req.Sample < 0 || req.Sample > maxPreviewSample {
		return sendJSON(sender, http.StatusBadRequest, map[string]string{"message": fmt.Sprintf("audience-preview: sample must be between 1 and %d, got %d", maxPreviewSample, req.Sample)})
	}
	aud, err := materialize.ParseAudience("definition", []byte(req.Definition))
	var des materialize.DefinitionErrors
	if errors.As(err, &des) {
		problems := make([]string, len(des))
		for i, e := range des {
			problems[i] = e.Error()
		}
		return sendJSON(sender, http.StatusBadRequest, map[string]any{"message": "the audience definition has problems", "problems": problems})
	}
	if err != nil {
		return sendJSON(sender, http.StatusBadRequest, map[string]string{"message": err.Error()})
	}
	resp, err := d.preview(ctx, aud, req.Sample)
	if errors.Is(err, materialize.ErrNoWatermark) {
		return sendJSON(sender, http.StatusConflict, map[string]string{"message": err.Error()})
	}
	if err != nil {
		err = downstream(d.settings.Database, err)
		d.log.Warn("audience preview failed", "error", err)
		return sendJSON(sender, statusFor(err), map[string]string{"message": fmt.Sprintf("preview audience %s: %v", aud.ID, err)})
	}
	return sendJSON(sender, http.StatusOK, resp)
}

func (d *Datasource) preview(ctx context.Context, aud *materialize.Audience, sample int) (*AudiencePreviewResponse, error) {
	conn := &chdb.Conn{Conn: d.conn, Database: d.settings.Database}
	mc, err := materialize.AppliedConfig(ctx, conn, materialize.DefaultConfig())
	if err != nil {
		return nil, err
	}
	cs, skipped, err := trigger.AppliedCampaigns(ctx, conn)
	if err != nil {
		return nil, err
	}
	// The preview's packages log with slog; the host reads hclog from
	// stderr, so their few lines go nowhere.
	quiet := slog.New(slog.DiscardHandler)
	r, err := trigger.PreviewAudience(ctx, conn, mc, aud, sample, cs, trigger.DefaultConfig().WatermarkLanes, quiet)
	if err != nil {
		return nil, err
	}
	return &AudiencePreviewResponse{AudienceReport: r, CampaignsNotPreviewed: skipped}, nil
}
