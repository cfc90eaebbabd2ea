package ingest_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/workload"
)

// benchRecords returns n Kafka record values as the collector writes them,
// from the demo workload's mix.
func benchRecords(b *testing.B, n int) ([][]byte, []*ingest.Event) {
	b.Helper()
	gen := workload.New(workload.Config{Customers: 10000, Seed: 1, Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Step: time.Millisecond})
	recs := make([][]byte, 0, n)
	evs := make([]*ingest.Event, 0, n)
	for len(recs) < n {
		m := gen.Next()
		body, err := json.Marshal(m.Body)
		if err != nil {
			b.Fatal(err)
		}
		ev, err := ingest.ParseMessage(body, "", time.Time{}, time.Date(2026, 1, 1, 1, 0, 0, 0, time.UTC), m.Lane)
		if err != nil {
			continue // the mix's deliberately malformed events
		}
		v, err := json.Marshal(ev)
		if err != nil {
			b.Fatal(err)
		}
		recs = append(recs, v)
		evs = append(evs, ev)
	}
	return recs, evs
}

// BenchmarkDecodeRecord is the loader's per-record decode and validation.
func BenchmarkDecodeRecord(b *testing.B) {
	recs, _ := benchRecords(b, 4096)
	var size int
	for _, r := range recs {
		size += len(r)
	}
	b.SetBytes(int64(size / len(recs)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := ingest.DecodeRecord(recs[i%len(recs)]); err != nil {
			b.Fatal(err)
		}
	}
}

// benchAdd appends evs round robin, b.N rows, resetting the batch at the
// loader's default batch size as a flush would.
func benchAdd(b *testing.B, evs []*ingest.Event) {
	batch := ingest.DefaultLoaderConfig().BatchSize
	var rows ingest.EventRows
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if rows.Len() == batch {
			rows.Reset()
		}
		rows.Add(evs[i%len(evs)], "web", "events.web", 0, int64(i))
	}
}

// BenchmarkEventRowsAdd is the loader's per-record columnar append, with
// the batch reset at the default batch size as a flush would.
func BenchmarkEventRowsAdd(b *testing.B) {
	_, evs := benchRecords(b, 4096)
	benchAdd(b, evs)
}

// BenchmarkEventRowsAddWithContext is BenchmarkEventRowsAdd for events
// carrying the context a browser SDK sends (library, page, campaign, user
// agent, locale, timezone): the typed context columns are extracted here.
func BenchmarkEventRowsAddWithContext(b *testing.B) {
	_, evs := benchRecords(b, 4096)
	ctx := json.RawMessage(`{"library":{"name":"analytics.js","version":"npm:next-1.84.3"},` +
		`"page":{"path":"/shop","referrer":"https://search.example.test/","search":"?utm_source=newsletter","title":"Shop","url":"http://localhost:8080/shop?utm_source=newsletter"},` +
		`"userAgent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36",` +
		`"locale":"en-US","timezone":"Europe/Berlin","campaign":{"source":"newsletter","medium":"email","name":"black_friday"}}`)
	for _, ev := range evs {
		ev.Context = ctx
	}
	benchAdd(b, evs)
}
