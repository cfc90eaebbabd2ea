package chdb_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
)

func TestRetryable(t *testing.T) {
	ex := func(code int32) error {
		return fmt.Errorf("insert events: %w", &clickhouse.Exception{Code: code, Name: "X", Message: "m"})
	}
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"cancelled statement", fmt.Errorf("query: %w", context.Canceled), true},
		{"statement timeout", fmt.Errorf("query: %w", context.DeadlineExceeded), true},
		{"no such column", ex(16), false},
		{"unknown table", ex(chdb.CodeUnknownTable), false},
		{"unknown database", ex(chdb.CodeUnknownDatabase), false},
		{"syntax", ex(62), false},
		{"type mismatch", ex(53), false},
		{"authentication", ex(516), false},
		{"too many parts", ex(252), true},
		{"memory limit", ex(241), true},
		{"timeout", ex(159), true},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{"reset", fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{"eof", fmt.Errorf("read: %w", io.EOF), true},
		{"pool exhausted", clickhouse.ErrAcquireConnTimeout, true},
		{"batch invalid", clickhouse.ErrBatchInvalid, false},
		{"unclassified", errors.New("something odd"), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := chdb.Retryable(c.err); got != c.want {
				t.Fatalf("Retryable(%v) = %v, want %v", c.err, got, c.want)
			}
		})
	}
}

// TestRetryableServer checks the classification against what the real
// server returns, so a driver upgrade that changes the error's shape fails
// here rather than turning a missing column back into an endless retry.
func TestRetryableServer(t *testing.T) {
	conn := testenv.ClickHouse(t)
	ctx := context.Background()
	if err := conn.Exec(ctx, "CREATE TABLE retry_probe (a UInt8) ENGINE = Memory"); err != nil {
		t.Fatal(err)
	}
	_, err := conn.PrepareBatch(ctx, "INSERT INTO retry_probe (a, missing)")
	if err == nil {
		t.Fatal("insert into a missing column was accepted")
	}
	if chdb.Retryable(err) {
		t.Fatalf("missing column judged retryable: %v", err)
	}
	if msg := chdb.Permanent(err).Error(); !strings.Contains(msg, "tideline migrate") {
		t.Fatalf("permanent error does not say what to fix: %s", msg)
	}
	err = conn.Exec(ctx, "SELECT * FROM no_such_table")
	if chdb.Code(err) != chdb.CodeUnknownTable || chdb.Retryable(err) {
		t.Fatalf("unknown table: code %d, retryable %v: %v", chdb.Code(err), chdb.Retryable(err), err)
	}
	err = conn.Exec(ctx, "SELEC 1")
	if chdb.Retryable(err) {
		t.Fatalf("syntax error judged retryable: %v", err)
	}
}
