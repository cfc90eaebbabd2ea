package ingest

import (
	"context"
	"fmt"

	"github.com/tideline-dev/tideline/internal/chdb"
)

// LaneWatermarks reads every lane's watermark, as the loader publishes it:
// everything the lane received before it is in ClickHouse, epoch ms.
func LaneWatermarks(ctx context.Context, conn *chdb.Conn) (map[string]uint64, error) {
	got := map[string]uint64{}
	err := conn.Each(ctx, "SELECT lane, watermark_ms FROM lane_watermarks", nil, func(rows chdb.Rows) error {
		var lane string
		var wm uint64
		if err := rows.Scan(&lane, &wm); err != nil {
			return err
		}
		got[lane] = wm
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read lane_watermarks: %w", err)
	}
	return got, nil
}
