package trigger

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/materialize"
)

// AttributeSource returns customers' current attributes for the payload
// snapshot, by customer id.
type AttributeSource interface {
	Attributes(ctx context.Context, customerIDs []string) (map[string]map[string]any, error)
}

// profileAttributes reads the customer_profile view when the schema has it
// (the materialize component maintains it), and otherwise merges the
// customer's latest identify traits from events. The choice is made again
// every few minutes, so a poller started before the view was installed
// picks it up.
type profileAttributes struct {
	conn *chdb.Conn
	log  *slog.Logger

	mu        sync.Mutex
	checked   time.Time
	hasView   bool
	viewError bool
}

// NewAttributeSource returns the attribute snapshot source the poller uses.
func NewAttributeSource(conn *chdb.Conn, log *slog.Logger) AttributeSource {
	return &profileAttributes{conn: conn, log: log}
}

const profileRecheck = 5 * time.Minute

func (p *profileAttributes) useView(ctx context.Context) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.checked) < profileRecheck {
		return p.hasView && !p.viewError
	}
	has, err := materialize.HasProfile(ctx, p.conn)
	if err != nil {
		return false
	}
	p.checked, p.hasView, p.viewError = time.Now(), has, false
	return p.hasView
}

func (p *profileAttributes) Attributes(ctx context.Context, ids []string) (map[string]map[string]any, error) {
	if len(ids) == 0 {
		return map[string]map[string]any{}, nil
	}
	if p.useView(ctx) {
		out, err := p.fromProfile(ctx, ids)
		if err == nil {
			return out, nil
		}
		// A view whose shape this code does not expect must not stop
		// campaigns: fall back to traits until the next check.
		p.log.Warn("customer_profile unusable for payload attributes; using identify traits", "err", err)
		p.mu.Lock()
		p.viewError = true
		p.mu.Unlock()
	}
	return p.fromTraits(ctx, ids)
}

// fromProfile reads customer_profile's rows for ids: the snapshot is a
// profile's attributes (parallel arrays attribute_names, attribute_values),
// each value decoded as JSON when it is JSON. A slow read must not hold up
// campaigns: the query is bounded, and the caller falls back to traits when
// it fails.
func (p *profileAttributes) fromProfile(ctx context.Context, ids []string) (map[string]map[string]any, error) {
	ctx = chdb.Settings(ctx, clickhouse.Settings{"max_execution_time": 2})
	args, err := materialize.ProfileArgs(ctx, p.conn, ids)
	if err != nil {
		return nil, fmt.Errorf("read customer_profile: %w", err)
	}
	rows, err := p.conn.Query(ctx, qProfiles, args...)
	if err != nil {
		return nil, fmt.Errorf("read customer_profile: %w", err)
	}
	defer rows.Close()
	cols := rows.Columns()
	types := rows.ColumnTypes()
	idCol, namesCol, valuesCol := -1, -1, -1
	for i, c := range cols {
		switch c {
		case "customer_id":
			idCol = i
		case "attribute_names":
			namesCol = i
		case "attribute_values":
			valuesCol = i
		}
	}
	if idCol < 0 || namesCol < 0 || valuesCol < 0 {
		return nil, fmt.Errorf("customer_profile read has no customer_id, attribute_names or attribute_values column")
	}
	out := map[string]map[string]any{}
	for rows.Next() {
		dest := make([]any, len(cols))
		for i, t := range types {
			dest[i] = reflect.New(t.ScanType()).Interface()
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("scan customer_profile: %w", err)
		}
		vals := make([]any, len(cols))
		for i := range cols {
			vals[i] = reflect.ValueOf(dest[i]).Elem().Interface()
		}
		names, okN := vals[namesCol].([]string)
		values, okV := vals[valuesCol].([]string)
		if !okN || !okV || len(names) != len(values) {
			return nil, fmt.Errorf("customer_profile attributes are %T and %T, not parallel string arrays", vals[namesCol], vals[valuesCol])
		}
		attrs := make(map[string]any, len(names))
		for i, n := range names {
			attrs[n] = decoded(values[i])
		}
		out[fmt.Sprint(vals[idCol])] = attrs
	}
	return out, rows.Err()
}

// decoded reads an attribute value stored as text: JSON when it parses
// (numbers, booleans, quoted strings, objects), the text itself otherwise.
func decoded(v string) any {
	var x any
	if err := json.Unmarshal([]byte(v), &x); err == nil {
		return x
	}
	return v
}

// fromTraits merges the traits of each customer's latest events carrying
// traits, newest value winning per trait (by event time).
func (p *profileAttributes) fromTraits(ctx context.Context, ids []string) (map[string]map[string]any, error) {
	out := map[string]map[string]any{}
	err := ingest.EachLatestTraits(ctx, p.conn, ids, func(id, traits string) error {
		attrs := out[id]
		if attrs == nil {
			attrs = map[string]any{}
			out[id] = attrs
		}
		var m map[string]any
		if json.Unmarshal([]byte(traits), &m) != nil {
			return nil
		}
		// Rows come newest first: a trait already set by a newer event is kept.
		for k, v := range m {
			if _, set := attrs[k]; !set {
				attrs[k] = v
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read latest traits: %w", err)
	}
	return out, nil
}
