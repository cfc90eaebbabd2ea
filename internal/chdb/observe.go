package chdb

import (
	"context"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Statement is one statement a connection sent and ClickHouse accepted.
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
	// appended, one value per column, when it was sent.
	Rows [][]any
}

// Observer is told of every statement a connection sent, after ClickHouse
// accepted it, in the order sent. It must not keep the connection busy:
// it runs on the caller's goroutine.
type Observer func(ctx context.Context, s Statement)

// observed is a connection that tells an Observer what it sent. Batches
// are told as the rows given to Append; rows appended by column are not.
type observed struct {
	driver.Conn
	database string
	fn       Observer
}

func (o *observed) Select(ctx context.Context, dest any, query string, args ...any) error {
	if err := o.Conn.Select(ctx, dest, query, args...); err != nil {
		return err
	}
	o.fn(ctx, Statement{Database: o.database, SQL: query, Args: args, Read: true})
	return nil
}

func (o *observed) Query(ctx context.Context, query string, args ...any) (driver.Rows, error) {
	rows, err := o.Conn.Query(ctx, query, args...)
	if err == nil {
		o.fn(ctx, Statement{Database: o.database, SQL: query, Args: args, Read: true})
	}
	return rows, err
}

func (o *observed) QueryRow(ctx context.Context, query string, args ...any) driver.Row {
	row := o.Conn.QueryRow(ctx, query, args...)
	if row.Err() == nil {
		o.fn(ctx, Statement{Database: o.database, SQL: query, Args: args, Read: true})
	}
	return row
}

func (o *observed) Exec(ctx context.Context, query string, args ...any) error {
	if err := o.Conn.Exec(ctx, query, args...); err != nil {
		return err
	}
	o.fn(ctx, Statement{Database: o.database, SQL: query, Args: args})
	return nil
}

func (o *observed) PrepareBatch(ctx context.Context, query string, opts ...driver.PrepareBatchOption) (driver.Batch, error) {
	b, err := o.Conn.PrepareBatch(ctx, query, opts...)
	if err != nil {
		return nil, err
	}
	return &observedBatch{Batch: b, ctx: ctx, conn: o, sql: query}, nil
}

// observedBatch keeps a batch's appended rows until it is sent. The context
// is the one PrepareBatch was given, which the batch itself keeps too.
type observedBatch struct {
	driver.Batch
	ctx  context.Context
	conn *observed
	sql  string
	rows [][]any
}

func (b *observedBatch) Append(v ...any) error {
	if err := b.Batch.Append(v...); err != nil {
		return err
	}
	b.rows = append(b.rows, append([]any(nil), v...))
	return nil
}

func (b *observedBatch) Send() error {
	if err := b.Batch.Send(); err != nil {
		return err
	}
	b.conn.fn(b.ctx, Statement{Database: b.conn.database, SQL: b.sql, Rows: b.rows})
	return nil
}
