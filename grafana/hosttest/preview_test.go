package hosttest

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/grafana/grafana-plugin-sdk-go/genproto/pluginv2"

	"github.com/tideline-dev/tideline/grafana/plugin"
	"github.com/tideline-dev/tideline/internal/golden"
	"github.com/tideline-dev/tideline/internal/testenv"
)

// previewDefinition is an audience the seeded database has not applied:
// its signal has no view yet, so the preview reads it from events.
const previewDefinition = `id: frequent_viewers
name: Three page views in an hour
when:
  performed: page_view
  at_least: 3
  within: 1h
`

// TestAudiencePreviewResource posts a definition to the audience-preview
// resource of the real plugin binary over gRPC, as the frontend's preview
// does, with the read-only user Grafana connects as: the answer is pinned
// in a golden (size, entries by lane, the sample, the campaign's sends and
// skips), the campaigns whose recorded definitions do not parse are named,
// and a definition with a mistake is refused with its problems.
func TestAudiencePreviewResource(t *testing.T) {
	h := start(t)
	cfg, _ := seeded(t)
	conn := testenv.ClickHouseWith(t, cfg)
	ctx := context.Background()
	b, err := conn.PrepareBatch(ctx, "INSERT INTO campaigns (campaign_id, name, definition, version, active, applied_at_ms)")
	if err != nil {
		t.Fatal(err)
	}
	def := `id: viewers_welcome
trigger: {audience_entered: frequent_viewers}
staleness: {budget: 30m, late: skip}
reeligible_after: 0
deliver:
  webhook: {url: "https://example.com/hook", secret_env: VIEWERS_SECRET}
`
	if err := b.Append("viewers_welcome", "Viewers welcome", def, "v1", uint8(1), uint64(1)); err != nil {
		t.Fatal(err)
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
	readOnly := cfg
	readOnly.User, readOnly.Password = "grafana", "grafana"
	call := func(body any) (int32, []byte) {
		t.Helper()
		j, _ := json.Marshal(body)
		s, err := h.resource.CallResource(ctx, &pluginv2.CallResourceRequest{PluginContext: pluginContext(t, 1, readOnly), Path: "audience-preview", Method: "POST", Url: "audience-preview", Body: j})
		if err != nil {
			t.Fatal(err)
		}
		res, err := s.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return res.Code, res.Body
	}

	req := plugin.AudiencePreviewRequest{Definition: previewDefinition, Sample: 3}
	code, body := call(req)
	if code != 200 {
		t.Fatalf("POST audience-preview: %d %s", code, body)
	}
	var got struct {
		Size      int `json:"size"`
		Entered   int `json:"entered"`
		Campaigns []struct {
			Qualifications, Sends int
			Skipped               map[string]int
		} `json:"campaigns"`
		NotPreviewed []string `json:"campaigns_not_previewed"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if got.Size == 0 || len(got.Campaigns) != 1 || got.Campaigns[0].Qualifications != got.Entered || got.Campaigns[0].Skipped["stale"] != got.Entered || len(got.NotPreviewed) != 2 {
		t.Errorf("preview of seeded data: %s", body)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, body, "", "  "); err != nil {
		t.Fatal(err)
	}
	reqJSON, _ := json.Marshal(req)
	golden.Check(t, "audience_preview.golden", []byte("-- request: POST audience-preview "+string(reqJSON)+"\n-- response: 200\n"+pretty.String()+"\n"))

	code, body = call(plugin.AudiencePreviewRequest{Definition: "id: bad\nwhen:\n  performed: page_view\n  at_least: many\n"})
	if code != 400 || !bytes.Contains(body, []byte("problems")) {
		t.Errorf("a definition with a mistake: %d %s", code, body)
	}
}
