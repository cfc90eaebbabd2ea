package chdb

import (
	"context"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Rows is a query's result as Each hands it to its scan function.
type Rows = driver.Rows

// Each runs query with args and calls scan once per row, in order; it
// stops at the first error scan returns and returns it unwrapped, so the
// caller wraps every failure, the query's, a row's and the stream's, with
// one context. Rows that fit a struct read more simply with Select.
func (c *Conn) Each(ctx context.Context, query string, args []any, scan func(Rows) error) error {
	rows, err := c.Query(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Set binds a list of strings for IN: clickhouse-go renders it as
// (a, b, c), which ClickHouse 18.16 accepts after IN. The list must not be
// empty ("IN ()" is not SQL).
func Set(ss []string) clickhouse.GroupSet {
	v := make([]any, len(ss))
	for i, s := range ss {
		v[i] = s
	}
	return clickhouse.GroupSet{Value: v}
}
