package materialize

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/internal/testenv"
)

// TestEvaluatorStopsOnMissingTable: a table the evaluator reads is gone
// (a database migrated by an older tideline); Run ends with what to fix
// instead of backing off and retrying forever. The context's minute only
// bounds a regression: the old Run returned nil when it ended.
func TestEvaluatorStopsOnMissingTable(t *testing.T) {
	conn := testenv.ClickHouse(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := conn.Exec(ctx, "DROP TABLE audiences"); err != nil {
		t.Fatal(err)
	}
	err := testEvaluator(t, conn).Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "tideline migrate") {
		t.Fatalf("Run ended with %v, want a permanent error naming `tideline migrate`", err)
	}
}
