package materialize

import (
	"context"
	"fmt"

	"github.com/tideline-dev/tideline/internal/chdb"
)

// CatalogTables are the tables that record what Apply applied: the
// audiences, and the attributes and signals their views maintain. A
// database emptied to replay into keeps them, so its views stay known.
var CatalogTables = []string{"audiences", "attribute_catalog", "signal_catalog"}

// AppliedAttributes are the attribute settings conn's database maintains:
// every active attribute of its catalog, the set-once ones among them. Its
// settings may declare attributes no audience reads, so a replay applies
// these rather than only what its audiences need.
func AppliedAttributes(ctx context.Context, conn *chdb.Conn) (AttributeSettings, error) {
	var settings AttributeSettings
	err := conn.Each(ctx, "SELECT attribute, argMax(set_once, applied_at_ms), argMax(active, applied_at_ms) FROM attribute_catalog GROUP BY attribute", nil, func(rows chdb.Rows) error {
		var name string
		var setOnce, active uint8
		if err := rows.Scan(&name, &setOnce, &active); err != nil {
			return err
		}
		if active == 1 {
			settings.Declared = append(settings.Declared, name)
			if setOnce == 1 {
				settings.SetOnce = append(settings.SetOnce, name)
			}
		}
		return nil
	})
	if err != nil {
		return AttributeSettings{}, fmt.Errorf("read the attribute catalog: %w", err)
	}
	return settings, nil
}
