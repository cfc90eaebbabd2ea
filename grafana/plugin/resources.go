package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/tideline-dev/tideline/grafana/query"
)

// NamedEntity is an item of the audiences and campaigns resources
// (NamedEntity in grafana/app/src/types.ts).
type NamedEntity struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// CallResource serves GET audiences and GET campaigns (the active
// entities, for the query editor's pickers) and POST audience-preview
// (what applying an audience definition would do now).
func (d *Datasource) CallResource(ctx context.Context, req *backend.CallResourceRequest, sender backend.CallResourceResponseSender) error {
	path := strings.Trim(req.Path, "/")
	if path == "audience-preview" {
		if req.Method != http.MethodPost {
			return sendJSON(sender, http.StatusMethodNotAllowed, map[string]string{"message": "audience-preview takes POST with the definition"})
		}
		return d.previewResource(ctx, req.Body, sender)
	}
	if req.Method != http.MethodGet {
		return sendJSON(sender, http.StatusMethodNotAllowed, map[string]string{"message": "only GET is served"})
	}
	var stmt query.Statement
	switch path {
	case query.ResourceAudiences:
		stmt = query.EntityList(false)
	case query.ResourceCampaigns:
		stmt = query.EntityList(true)
	default:
		err := fmt.Errorf("%w: resource %q (the plugin serves audiences, campaigns and audience-preview)", ErrNotFound, path)
		return sendJSON(sender, statusFor(err), map[string]string{"message": err.Error()})
	}
	out := []NamedEntity{}
	err := d.each(ctx, stmt, func(rows driver.Rows) error {
		var e NamedEntity
		if err := rows.Scan(&e.ID, &e.Name); err != nil {
			return err
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		if !backend.IsPluginError(err) {
			err = downstream(d.settings.Database, err)
		}
		d.log.Warn("resource failed", "path", path, "error", err)
		return sendJSON(sender, statusFor(err), map[string]string{"message": fmt.Sprintf("list %s: %v", path, err)})
	}
	return sendJSON(sender, http.StatusOK, out)
}

func sendJSON(sender backend.CallResourceResponseSender, status int, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode resource response: %w", err)
	}
	return sender.Send(&backend.CallResourceResponse{
		Status:  status,
		Headers: map[string][]string{"Content-Type": {"application/json"}},
		Body:    body,
	})
}
