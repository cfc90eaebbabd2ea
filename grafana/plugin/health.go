package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/tideline-dev/tideline/grafana/query"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/tlsconf"
	tsql "github.com/tideline-dev/tideline/sql"
)

// Health is the JSON detail of a health check.
type Health struct {
	Addr            string   `json:"addr"`
	Database        string   `json:"database"`
	ServerVersion   string   `json:"serverVersion,omitempty"`
	SchemaVersion   int      `json:"schemaVersion"`
	ExpectedSchema  int      `json:"expectedSchema"`
	MissingTables   []string `json:"missingTables,omitempty"`
	MissingOptional []string `json:"missingOptional,omitempty"`
}

// CheckHealth checks, in order, that ClickHouse answers, that the schema
// is at the version this plugin was built for, and that every table is
// there; the message says what to do when not.
func (d *Datasource) CheckHealth(ctx context.Context, _ *backend.CheckHealthRequest) (*backend.CheckHealthResult, error) {
	h := Health{Addr: d.settings.Addr(), Database: d.settings.Database, ExpectedSchema: tsql.Latest()}
	fail := func(msg string) (*backend.CheckHealthResult, error) {
		details, _ := json.Marshal(h)
		return &backend.CheckHealthResult{Status: backend.HealthStatusError, Message: msg, JSONDetails: details}, nil
	}
	sv, err := d.conn.ServerVersion()
	if chdb.Code(err) == chdb.CodeUnknownDatabase {
		return fail(fmt.Sprintf("ClickHouse at %s answers, but database %s does not exist: run `tideline migrate` against this server, or fix the database name.", h.Addr, h.Database))
	}
	if why := tlsconf.Refusal(ctx, d.tls, h.Addr, err, d.settings.DialTimeout); why != nil {
		return fail(fmt.Sprintf("cannot connect to ClickHouse at %s over TLS: %v. Check the TLS settings: the CA certificate, the client certificate and key, and the server name.", h.Addr, why))
	}
	if err != nil {
		return fail(fmt.Sprintf("cannot connect to ClickHouse at %s as %q: %v. Check host, port (the native protocol, usually 9000), user and password, and that the server is running.", h.Addr, d.settings.User, err))
	}
	h.ServerVersion = fmt.Sprintf("%d.%d.%d", sv.Version.Major, sv.Version.Minor, sv.Version.Patch)

	present := map[string]bool{}
	err = d.each(ctx, query.TablesIn(d.settings.Database), func(rows driver.Rows) error {
		var name string
		if err := rows.Scan(&name); err != nil {
			return err
		}
		present[name] = true
		return nil
	})
	if err != nil {
		return fail(fmt.Sprintf("ClickHouse %s answers, but listing the tables of database %s failed: %v", h.ServerVersion, h.Database, err))
	}
	if len(present) == 0 {
		return fail(fmt.Sprintf("database %s on %s has none of tideline's tables (or does not exist): run `tideline migrate` against this server, or fix the database name.", h.Database, h.Addr))
	}
	for _, t := range query.RequiredTables {
		if !present[t] {
			h.MissingTables = append(h.MissingTables, t)
		}
	}
	for _, t := range query.OptionalTables {
		if !present[t] {
			h.MissingOptional = append(h.MissingOptional, t)
		}
	}
	if present["schema_migrations"] {
		v, err := d.schemaVersion(ctx)
		if err != nil {
			return fail(fmt.Sprintf("reading the schema version from %s.schema_migrations failed: %v", h.Database, err))
		}
		h.SchemaVersion = v
	}
	if len(h.MissingTables) > 0 {
		sort.Strings(h.MissingTables)
		return fail(fmt.Sprintf("database %s is missing %s (schema version %d, this plugin expects %d): run `tideline migrate`.", h.Database, strings.Join(h.MissingTables, ", "), h.SchemaVersion, h.ExpectedSchema))
	}
	if h.SchemaVersion < h.ExpectedSchema {
		return fail(fmt.Sprintf("database %s is at schema version %d, this plugin expects %d: run `tideline migrate`.", h.Database, h.SchemaVersion, h.ExpectedSchema))
	}
	msg := fmt.Sprintf("ClickHouse %s at %s: database %s at schema version %d, all tideline tables present.", h.ServerVersion, h.Addr, h.Database, h.SchemaVersion)
	if h.SchemaVersion > h.ExpectedSchema {
		msg += fmt.Sprintf(" The schema is newer than this plugin (built for version %d): update the plugin.", h.ExpectedSchema)
	}
	if len(h.MissingOptional) > 0 {
		msg += fmt.Sprintf(" Not yet created: %s (its panels stay empty until the backfill's migration runs).", strings.Join(h.MissingOptional, ", "))
	}
	details, _ := json.Marshal(h)
	return &backend.CheckHealthResult{Status: backend.HealthStatusOk, Message: msg, JSONDetails: details}, nil
}

// schemaVersion reads the applied schema version without writing:
// sql.Version creates schema_migrations first, which a read-only user may
// not do, so the plugin reads the table the same way without that step.
func (d *Datasource) schemaVersion(ctx context.Context) (int, error) {
	var v uint32
	if err := d.conn.QueryRow(ctx, "SELECT max(version) FROM schema_migrations").Scan(&v); err != nil {
		return 0, downstream(d.settings.Database, err)
	}
	return int(v), nil
}
