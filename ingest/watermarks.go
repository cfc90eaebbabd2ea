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

// Input is one kind of input an audience can depend on, as input_lanes
// records it: an input type (a call type, traits or context) and the event
// name ("" where there is none).
type Input struct {
	Type, Event string
}

// InputLanes reads which lanes have carried which inputs, so that an
// audience waits only for the watermarks of the lanes that can feed it.
func InputLanes(ctx context.Context, conn *chdb.Conn) (map[Input][]string, error) {
	out := map[Input][]string{}
	err := conn.Each(ctx, "SELECT input_type, input_event, lane FROM input_lanes GROUP BY input_type, input_event, lane", nil, func(rows chdb.Rows) error {
		var in Input
		var lane string
		if err := rows.Scan(&in.Type, &in.Event, &lane); err != nil {
			return err
		}
		out[in] = append(out[in], lane)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read input_lanes (is the schema migrated? tideline migrate): %w", err)
	}
	return out, nil
}
