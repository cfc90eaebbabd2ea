package query

import (
	"strings"
	"testing"
	"time"
)

// FuzzParseAndBuild feeds arbitrary panel JSON through ParseModel and Build.
// Invariants: no panic; a built statement never carries a user value in its
// SQL text (every id travels as a bound argument).
func FuzzParseAndBuild(f *testing.F) {
	for _, s := range []string{
		`{"refId":"A","queryType":"transitions","audiences":["gold"],"lanes":["web"]}`,
		`{"queryType":"audience_size","audiences":["x') OR 1=1 --"]}`,
		`{"queryType":"campaign_outcomes","campaigns":["a","b"]}`,
		`{"queryType":"pipeline_lag","lanes":["web","server","backfill"]}`,
		`{"queryType":"live_qualifications","audiences":[]}`,
		`{"queryType":"nope"}`, `{"audiences":"gold"}`, `{`, `null`, `[]`,
	} {
		f.Add([]byte(s), "", int64(3600), int64(20))
	}
	f.Fuzz(func(t *testing.T, raw []byte, qt string, rangeSec, intervalSec int64) {
		m, err := ParseModel(raw, qt)
		if err != nil {
			return
		}
		to := time.Date(2025, 12, 14, 22, 0, 0, 0, time.UTC)
		r := Request{Model: m, From: to.Add(-time.Duration(rangeSec%(90*86400)) * time.Second), To: to,
			Interval: time.Duration(intervalSec%86400) * time.Second, MaxDataPoints: 1000}
		stmts, err := Build(r)
		if err != nil {
			return
		}
		for _, st := range stmts {
			for _, v := range append(append(append([]string{}, m.Audiences...), m.Campaigns...), m.Lanes...) {
				if len(v) >= 4 && strings.Contains(st.SQL, v) && !strings.Contains(st.SQL, "'"+v+"'") {
					t.Fatalf("user value %q appears in SQL %q", v, st.SQL)
				}
			}
		}
	})
}
