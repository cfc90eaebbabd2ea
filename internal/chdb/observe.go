package chdb

import (
	"context"
	"fmt"
	"reflect"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/ext"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Statement is one statement a connection sends.
type Statement struct {
	// Database is the connection's database, where unqualified names
	// resolve.
	Database string
	// SQL is the statement as given, with ? for each of Args.
	SQL  string
	Args []any
	// Read is set for a query that returns rows (Query, QueryRow, Select).
	Read bool
	// Rows are the rows a batch insert (SQL is its INSERT ... (columns))
	// appended, one value per column, whether given by row or by column.
	Rows [][]any
	// External are the external tables sent with the statement
	// (WithExternal).
	External []*ext.Table
}

type externalKey struct{}

// WithExternal returns ctx sending tables as external data with the
// statements run under it: tables the statement reads by name and that
// exist only for it, which keeps long lists of ids out of the SQL text.
// An Observer sees them in Statement.External.
func WithExternal(ctx context.Context, tables ...*ext.Table) context.Context {
	// clickhouse.Context adds to the tables ctx already sends.
	prior := externalOf(ctx)
	ctx = context.WithValue(ctx, externalKey{}, append(prior[:len(prior):len(prior)], tables...))
	return clickhouse.Context(ctx, clickhouse.WithExternalTable(tables...))
}

func externalOf(ctx context.Context) []*ext.Table {
	t, _ := ctx.Value(externalKey{}).([]*ext.Table)
	return t
}

// Observer is given every statement a connection sends, with run, which
// sends it: the observer calls run once and returns its error. Running the
// statement itself lets an observer order statements against others (tests
// that replay each statement on another server do). It runs on the
// caller's goroutine.
type Observer func(ctx context.Context, s Statement, run func() error) error

// observed is a connection that lets an Observer see what it sends.
type observed struct {
	driver.Conn
	database string
	fn       Observer
}

func (o *observed) statement(ctx context.Context, query string, args []any, read bool) Statement {
	return Statement{Database: o.database, SQL: query, Args: args, Read: read, External: externalOf(ctx)}
}

func (o *observed) Select(ctx context.Context, dest any, query string, args ...any) error {
	return o.fn(ctx, o.statement(ctx, query, args, true), func() error { return o.Conn.Select(ctx, dest, query, args...) })
}

func (o *observed) Query(ctx context.Context, query string, args ...any) (driver.Rows, error) {
	var rows driver.Rows
	err := o.fn(ctx, o.statement(ctx, query, args, true), func() error {
		var err error
		rows, err = o.Conn.Query(ctx, query, args...)
		return err
	})
	return rows, err
}

func (o *observed) QueryRow(ctx context.Context, query string, args ...any) driver.Row {
	var row driver.Row
	_ = o.fn(ctx, o.statement(ctx, query, args, true), func() error {
		row = o.Conn.QueryRow(ctx, query, args...)
		return row.Err()
	})
	return row
}

func (o *observed) Exec(ctx context.Context, query string, args ...any) error {
	return o.fn(ctx, o.statement(ctx, query, args, false), func() error { return o.Conn.Exec(ctx, query, args...) })
}

func (o *observed) PrepareBatch(ctx context.Context, query string, opts ...driver.PrepareBatchOption) (driver.Batch, error) {
	b, err := o.Conn.PrepareBatch(ctx, query, opts...)
	if err != nil {
		return nil, err
	}
	return &observedBatch{Batch: b, ctx: ctx, conn: o, sql: query}, nil
}

// observedBatch keeps a batch's rows until it is sent. The context is the
// one PrepareBatch was given, which the batch itself keeps too.
type observedBatch struct {
	driver.Batch
	ctx  context.Context
	conn *observed
	sql  string
	rows [][]any
	// cols are the values appended by column, transposed into rows on Send.
	cols [][]any
}

func (b *observedBatch) Append(v ...any) error {
	if err := b.Batch.Append(v...); err != nil {
		return err
	}
	b.rows = append(b.rows, append([]any(nil), v...))
	return nil
}

func (b *observedBatch) Column(i int) driver.BatchColumn {
	return &observedColumn{BatchColumn: b.Batch.Column(i), batch: b, i: i}
}

func (b *observedBatch) Send() error {
	rows := b.rows
	if len(b.cols) > 0 {
		for r := range b.cols[0] {
			row := make([]any, len(b.cols))
			for c := range b.cols {
				if r < len(b.cols[c]) {
					row[c] = b.cols[c][r]
				}
			}
			rows = append(rows, row)
		}
	}
	st := b.conn.statement(b.ctx, b.sql, nil, false)
	st.Rows = rows
	return b.conn.fn(b.ctx, st, b.Batch.Send)
}

// observedColumn keeps what is appended to one column of a batch.
type observedColumn struct {
	driver.BatchColumn
	batch *observedBatch
	i     int
}

func (c *observedColumn) Append(v any) error {
	if err := c.BatchColumn.Append(v); err != nil {
		return err
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Slice {
		c.add(v)
		return nil
	}
	for j := range rv.Len() {
		c.add(rv.Index(j).Interface())
	}
	return nil
}

func (c *observedColumn) AppendRow(v any) error {
	if err := c.BatchColumn.AppendRow(v); err != nil {
		return err
	}
	c.add(v)
	return nil
}

func (c *observedColumn) add(v any) {
	for len(c.batch.cols) <= c.i {
		c.batch.cols = append(c.batch.cols, nil)
	}
	c.batch.cols[c.i] = append(c.batch.cols[c.i], v)
}

// IDTable builds the external table name with one String column, id,
// holding ids: a set a query filters by with IN (SELECT id FROM name),
// which reaches every shard of a Distributed table with the query.
func IDTable(name string, ids []string) (*ext.Table, error) {
	t, err := ext.NewTable(name, ext.Column("id", "String"))
	if err != nil {
		return nil, fmt.Errorf("external table %s: %w", name, err)
	}
	for _, id := range ids {
		if err := t.Append(id); err != nil {
			return nil, fmt.Errorf("external table %s: %w", name, err)
		}
	}
	return t, nil
}
