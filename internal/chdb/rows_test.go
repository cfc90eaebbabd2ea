package chdb_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
)

// TestEach reads every row in order, stops at the first error a row's scan
// returns and returns it as is, and returns the query's own error.
func TestEach(t *testing.T) {
	ctx := context.Background()
	conn := testenv.ClickHouse(t)
	const q = "SELECT number FROM system.numbers WHERE number >= ? LIMIT 5"

	var got []uint64
	err := conn.Each(ctx, q, []any{uint64(10)}, func(r chdb.Rows) error {
		var n uint64
		if err := r.Scan(&n); err != nil {
			return err
		}
		got = append(got, n)
		return nil
	})
	if err != nil || !slices.Equal(got, []uint64{10, 11, 12, 13, 14}) {
		t.Fatalf("Each = %v, %v; want 10..14", got, err)
	}

	stop := errors.New("enough")
	calls := 0
	err = conn.Each(ctx, q, []any{uint64(0)}, func(chdb.Rows) error {
		calls++
		if calls == 2 {
			return stop
		}
		return nil
	})
	if err != stop || calls != 2 {
		t.Fatalf("Each stopped with %v after %d rows; want the scan's error after 2", err, calls)
	}

	err = conn.Each(ctx, "SELECT x FROM no_such_table", nil, func(chdb.Rows) error { return nil })
	if chdb.Code(err) != chdb.CodeUnknownTable {
		t.Fatalf("Each on a missing table = %v; want the server's unknown-table error", err)
	}
}
