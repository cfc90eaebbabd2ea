package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
)

// TestAudiencesPreviewAndConfirm runs the built binary: `audiences
// preview` shows a definition's size and campaign impact (as text and
// JSON) before it is applied, and `audiences apply` refuses off a terminal
// when the campaigns would send more than materialize.confirm_above, then
// applies with --yes.
func TestAudiencesPreviewAndConfirm(t *testing.T) {
	ctx := context.Background()
	chCfg := testenv.ClickHouseConfig(t)
	conn := testenv.ClickHouseWith(t, chCfg)
	bin := filepath.Join(t.TempDir(), "tideline")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	now := time.Now()
	var rows ingest.EventRows
	for i := range 8 {
		at := now.Add(-time.Duration(i+1) * time.Minute)
		if i >= 5 {
			at = now.Add(-time.Duration(i) * time.Hour)
		}
		ev := &ingest.Event{MessageID: fmt.Sprintf("id-%d", i), Type: ingest.TypeIdentify, UserID: fmt.Sprintf("u%d", i),
			Traits: json.RawMessage(`{"plan":"gold"}`), Timestamp: at.UTC(), ReceivedAt: at.UTC()}
		rows.Add(ev, "server", "events.server", 0, int64(i))
	}
	if err := rows.Insert(ctx, conn, chdb.NowMs()); err != nil {
		t.Fatal(err)
	}
	if err := ingest.InsertProgress(ctx, conn, []ingest.Progress{
		{Lane: "web", Topic: "events.web", WatermarkMs: chdb.NowMs()},
		{Lane: "server", Topic: "events.server", WatermarkMs: chdb.NowMs()},
	}, chdb.NowMs()); err != nil {
		t.Fatal(err)
	}
	dir, campaigns := t.TempDir(), t.TempDir()
	file := filepath.Join(dir, "gold_now.yaml")
	write := func(path, text string) {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(file, "id: gold_now\nname: Gold plan\nwhen:\n  attribute: plan\n  equals: gold\n")
	write(filepath.Join(campaigns, "welcome.yaml"), `id: welcome
trigger: {audience_entered: gold_now}
staleness: {budget: 30m, late: skip}
reeligible_after: 0
deliver:
  webhook: {url: "http://127.0.0.1:1/hook", secret_env: WELCOME_SECRET}
`)
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		cmd := exec.Command(bin, append(args, "--log-json=false", "--log-level=warn")...)
		cmd.Env = append(os.Environ(), "TIDELINE_CLICKHOUSE_ADDR="+chCfg.Addr, "TIDELINE_CLICKHOUSE_DATABASE="+chCfg.Database,
			"TIDELINE_MATERIALIZE_APPLY_SETTLE=0s")
		cmd.Stdout, cmd.Stderr, cmd.Stdin = &out, &out, strings.NewReader("")
		err := cmd.Run()
		return out.String(), err
	}

	out, err := run("audiences", "preview", file, "--campaigns", campaigns)
	if err != nil {
		t.Fatalf("preview: %v\n%s", err, out)
	}
	t.Logf("audiences preview:\n%s", out)
	for _, want := range []string{"gold_now (Gold plan)", "new (not applied)", "8 members after apply: 8 enter, 0 exit", "server 8", "plan=gold", "identify (id-0)", "apply would send 5 campaign messages at once", "3 stale"} {
		if !strings.Contains(out, want) {
			t.Errorf("preview output lacks %q", want)
		}
	}
	out, err = run("audiences", "preview", file, "--campaigns", campaigns, "--json", "--sample", "2")
	if err != nil {
		t.Fatalf("preview --json: %v\n%s", err, out)
	}
	var rep struct {
		Size      int            `json:"size"`
		ByLane    map[string]int `json:"by_lane"`
		Sample    []any          `json:"sample"`
		Sends     int            `json:"sends"`
		Campaigns []struct {
			Skipped map[string]int `json:"skipped"`
		} `json:"campaigns"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("preview --json: %v\n%s", err, out)
	}
	if rep.Size != 8 || rep.ByLane["server"] != 8 || len(rep.Sample) != 2 || rep.Sends != 5 || len(rep.Campaigns) != 1 || rep.Campaigns[0].Skipped["stale"] != 3 {
		t.Errorf("preview --json: %+v", rep)
	}

	out, err = run("audiences", "apply", "--dir", dir, "--campaigns", campaigns, "--confirm-above", "4")
	if err == nil || !strings.Contains(out, "would send about 5 campaign messages, more than materialize.confirm_above (4)") {
		t.Fatalf("apply above the threshold off a terminal: %v\n%s", err, out)
	}
	if n := count(t, conn, "SELECT count() FROM audiences"); n != 0 {
		t.Fatalf("a refused apply recorded %d audiences", n)
	}
	out, err = run("audiences", "apply", "--dir", dir, "--campaigns", campaigns, "--confirm-above", "4", "--yes")
	if err != nil || !strings.Contains(out, "applied:     gold_now") {
		t.Fatalf("apply --yes: %v\n%s", err, out)
	}
	if n := count(t, conn, "SELECT count() FROM audiences WHERE active = 1"); n != 1 {
		t.Fatalf("apply --yes recorded %d active audiences", n)
	}
}

func count(t *testing.T, conn *chdb.Conn, q string) uint64 {
	t.Helper()
	var n uint64
	if err := conn.QueryRow(context.Background(), q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
