package frames

import (
	"fmt"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"

	"github.com/tideline-dev/tideline/grafana/query"
)

// FieldLateness names the lateness classes of the late_events frame.
const FieldLateness = "lateness"

// latenessClasses are the names of the lateness classes, in class order:
// "under 10s", "10s-1m", ..., "24h+".
func latenessClasses() []string {
	bounds := query.LatenessBoundsMs
	out := make([]string, 0, len(bounds)+1)
	for i, b := range bounds {
		if i == 0 {
			out = append(out, "under "+short(b))
			continue
		}
		out = append(out, short(bounds[i-1])+"-"+short(b))
	}
	return append(out, short(bounds[len(bounds)-1])+"+")
}

func short(ms uint64) string {
	d := time.Duration(ms) * time.Millisecond
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

// LateEvents is the lateness distribution: one row per lateness class,
// one count field per lane (every lane asked for, or every lane with data
// or known), zero where a lane has no event of the class.
func LateEvents(r query.Request, rows []LateCount) data.Frames {
	classes := latenessClasses()
	byLane := map[string][]int64{}
	withData := map[string]bool{}
	for _, c := range rows {
		if byLane[c.Lane] == nil {
			byLane[c.Lane] = make([]int64, len(classes))
		}
		byLane[c.Lane][min(int(c.Lateness), len(classes)-1)] += int64(c.N)
		withData[c.Lane] = true
	}
	f := data.NewFrame("late_events", data.NewField(FieldLateness, nil, classes))
	for _, lane := range subjects(r.Lanes, withData, Lanes) {
		counts := byLane[lane]
		if counts == nil {
			counts = make([]int64, len(classes))
		}
		f.Fields = append(f.Fields, data.NewField(lane, labels(FieldLane, lane), counts))
	}
	f.Meta = &data.FrameMeta{PreferredVisualization: data.VisTypeTable}
	return data.Frames{f}
}
