package trigger

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/internal/component"
	"github.com/tideline-dev/tideline/internal/testenv"
)

// TestPollerStopsOnMissingTable: a table the poller reads each cycle is
// gone (a database migrated by an older tideline); Run ends with what to
// fix instead of backing off and retrying forever. The context's minute
// only bounds a regression: the old Run returned nil when it ended.
func TestPollerStopsOnMissingTable(t *testing.T) {
	conn := testenv.ClickHouse(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := conn.Exec(ctx, "DROP TABLE trigger_cursors"); err != nil {
		t.Fatal(err)
	}
	h := newHook(t)
	cfg := testConfig()
	cfg.SecretOverride = h.Secret.String()
	c := campaign(t, `
id: welcome
trigger: {audience_entered: gold}
staleness: {budget: 15m, late: skip}
reeligible_after: 30d
deliver:
  webhook: {url: `+h.URL+`/welcome, secret_env: UNSET_IN_THIS_TEST}`)
	p, err := NewPoller(cfg, []*Campaign{c}, component.Env{Conn: conn, Log: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	err = p.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "tideline migrate") {
		t.Fatalf("Run ended with %v, want a permanent error naming `tideline migrate`", err)
	}
}
