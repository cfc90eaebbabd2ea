package archive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/tideline-dev/tideline/ingest"
)

func randomRows(n int, seed uint64) []Row {
	rng := rand.New(rand.NewPCG(seed, seed))
	base := time.Date(2025, 12, 14, 18, 0, 0, 0, time.UTC)
	types := []string{ingest.TypeTrack, ingest.TypeIdentify, ingest.TypePage, ingest.TypeScreen, ingest.TypeGroup, ingest.TypeAlias}
	out := make([]Row, n)
	for i := range out {
		t := base.Add(time.Duration(rng.IntN(4*3600_000)) * time.Millisecond)
		r := Row{
			MessageID:    fmt.Sprintf("m-%d", i),
			Type:         types[rng.IntN(len(types))],
			UserID:       fmt.Sprintf("user-%d", rng.IntN(100)),
			Properties:   fmt.Sprintf(`{"amount":%d.5,"note":"ünïcødé \"q\""}`, rng.IntN(500)),
			Traits:       "{}",
			Context:      "{}",
			EventTimeMs:  uint64(t.UnixMilli()),
			ReceivedAtMs: uint64(t.Add(time.Duration(rng.IntN(2000)) * time.Millisecond).UnixMilli()),
			IngestTimeMs: uint64(t.Add(3 * time.Hour).UnixMilli()),
			Source:       "server",
			Lane:         "server",
			Topic:        "events.server",
			Partition:    int32(rng.IntN(4)),
			Offset:       int64(i),
		}
		if rng.IntN(3) == 0 {
			r.AnonymousID = fmt.Sprintf("anon-%d", i)
		}
		if rng.IntN(2) == 0 {
			r.SentAtMs = r.ReceivedAtMs - 5
		}
		switch r.Type {
		case ingest.TypeIdentify:
			r.Traits = `{"plan":"gold"}`
		case ingest.TypeGroup:
			r.GroupID = fmt.Sprintf("org-%d", rng.IntN(10))
			r.Traits = `{"group_id":"` + r.GroupID + `","group_plan":"enterprise"}`
		case ingest.TypeAlias:
			r.PreviousID = fmt.Sprintf("anon-prev-%d", i)
		default:
			r.Event = "purchase"
		}
		switch rng.IntN(3) {
		case 0:
			// A browser's context: campaign, page, locale, library; the
			// collector saw the address.
			name := fmt.Sprintf("bf-%d", rng.IntN(9))
			r.Context = `{"campaign":{"source":"newsletter","medium":"email","name":"` + name + `","term":"shoes","content":"hero"},` +
				`"page":{"url":"https://shop.example/p?utm_source=newsletter","path":"/p","referrer":"https://mail.example/","title":"Pricing"},` +
				`"userAgent":"Mozilla/5.0 (X11; Linux x86_64)","locale":"de-DE","timezone":"Europe/Berlin","library":{"name":"analytics.js","version":"next-1.81.0"}}`
			r.Ctx = ingest.ContextColumns{CampaignSource: "newsletter", CampaignMedium: "email", CampaignName: name, CampaignTerm: "shoes", CampaignContent: "hero",
				PageURL: "https://shop.example/p?utm_source=newsletter", PagePath: "/p", PageReferrer: "https://mail.example/", PageTitle: "Pricing",
				IP: "203.0.113.9", UserAgent: "Mozilla/5.0 (X11; Linux x86_64)", Locale: "de-DE", Timezone: "Europe/Berlin",
				LibraryName: "analytics.js", LibraryVersion: "next-1.81.0"}
		case 1:
			// A server SDK's context with its own ip.
			r.Context = `{"ip":"198.51.100.7","library":{"name":"@segment/analytics-node","version":"2.1.0"},"traits":{"email":"x@example.test"}}`
			r.Ctx = ingest.ContextColumns{IP: "198.51.100.7", LibraryName: "@segment/analytics-node", LibraryVersion: "2.1.0"}
		}
		r.CustomerID = r.ToEvent().CustomerID()
		out[i] = r
	}
	return out
}

// TestRoundTrip writes rows in both formats, in several Write calls that
// cross batch boundaries, and reads back exactly the same rows.
func TestRoundTrip(t *testing.T) {
	rows := randomRows(rowsPerBatch+1234, 1)
	from, to := time.Date(2025, 12, 14, 18, 0, 0, 0, time.UTC), time.Date(2025, 12, 14, 22, 0, 0, 0, time.UTC)
	for _, name := range []string{"events.parquet", "events.arrow"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), name)
			w, err := Create(path, from, to)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Write(rows[:1000]); err != nil {
				t.Fatal(err)
			}
			if err := w.Write(rows[1000:]); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Fatalf("archive visible before Close: %v", err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			r, err := Open(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			gf, gt, err := r.Window()
			if err != nil || !gf.Equal(from) || !gt.Equal(to) {
				t.Fatalf("window %v %v %v", gf, gt, err)
			}
			got := readAll(t, r)
			if len(got) != len(rows) {
				t.Fatalf("read %d rows, wrote %d", len(got), len(rows))
			}
			for i := range rows {
				if !reflect.DeepEqual(got[i], rows[i]) {
					t.Fatalf("row %d:\n got %+v\nwant %+v", i, got[i], rows[i])
				}
			}
		})
	}
}

// TestEventRoundTrip checks that an archived row re-ingested as an event
// loads as the same columns (but the ingest time and the lane).
func TestEventRoundTrip(t *testing.T) {
	for i, r := range randomRows(2000, 2) {
		value, err := r.Value()
		if err != nil {
			t.Fatal(err)
		}
		ev, err := ingest.DecodeRecord(value)
		if err != nil {
			t.Fatalf("row %d: loader rejects the rebuilt event: %v", i, err)
		}
		var b ingest.EventRows
		b.Add(ev, "backfill", r.Topic, r.Partition, r.Offset)
		got := Row{
			MessageID: b.MessageID[0], Type: b.Type[0], CustomerID: b.CustomerID[0], UserID: b.UserID[0], AnonymousID: b.AnonymousID[0],
			Event: b.Event[0], Properties: b.Properties[0], Traits: b.Traits[0],
			EventTimeMs: b.EventTimeMs[0], SentAtMs: b.SentAtMs[0], ReceivedAtMs: b.ReceivedAtMs[0], IngestTimeMs: r.IngestTimeMs,
			Source: b.Source[0], Lane: r.Lane, Topic: b.Topic[0], Partition: b.Partition[0], Offset: b.Offset[0],
			PreviousID: b.Ctx[0][0], GroupID: b.Ctx[1][0], Context: b.Ctx[2][0],
		}
		c := b.Ctx[3:]
		got.Ctx = ingest.ContextColumns{CampaignSource: c[0][0], CampaignMedium: c[1][0], CampaignName: c[2][0], CampaignTerm: c[3][0], CampaignContent: c[4][0],
			PageURL: c[5][0], PagePath: c[6][0], PageReferrer: c[7][0], PageTitle: c[8][0],
			IP: c[9][0], UserAgent: c[10][0], Locale: c[11][0], Timezone: c[12][0], LibraryName: c[13][0], LibraryVersion: c[14][0]}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("row %d:\n got %+v\nwant %+v", i, got, r)
		}
		if !b.EventTime[0].Equal(time.UnixMilli(int64(r.EventTimeMs)).Truncate(time.Second)) {
			t.Fatalf("row %d: event_time %v", i, b.EventTime[0])
		}
		var probe map[string]any
		if err := json.Unmarshal(value, &probe); err != nil || probe["messageId"] != r.MessageID {
			t.Fatalf("row %d: value %s", i, value)
		}
	}
}

func TestOpenRejects(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.parquet")
	os.WriteFile(junk, []byte("this is not parquet at all"), 0o644)
	if _, err := Open(context.Background(), junk); !errors.Is(err, ErrFormat) {
		t.Fatalf("junk: %v", err)
	}
	if _, err := KindOf("x.csv"); err == nil {
		t.Fatal("csv accepted")
	}
}

// TestOpenWithoutContextColumns: an archive exported before the group,
// alias and context columns is still a source; they read ”.
func TestOpenWithoutContextColumns(t *testing.T) {
	from, to := time.Date(2025, 12, 14, 18, 0, 0, 0, time.UTC), time.Date(2025, 12, 14, 22, 0, 0, 0, time.UTC)
	old := Schema(from, to)
	md := old.Metadata()
	old = arrow.NewSchema(old.Fields()[:baseFields], &md)
	rows := randomRows(50, 3)
	for _, name := range []string{"old.parquet", "old.arrow"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), name)
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			b := array.NewRecordBuilder(memory.DefaultAllocator, old)
			defer b.Release()
			full := array.NewRecordBuilder(memory.DefaultAllocator, Schema(from, to))
			defer full.Release()
			(&Writer{b: full}).append(rows)
			rec := full.NewRecordBatch()
			defer rec.Release()
			cut := array.NewRecordBatch(old, rec.Columns()[:baseFields], rec.NumRows())
			defer cut.Release()
			if name == "old.parquet" {
				w, err := pqarrow.NewFileWriter(old, f, nil, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
				if err != nil {
					t.Fatal(err)
				}
				if err := w.Write(cut); err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
			} else {
				w, err := ipc.NewFileWriter(f, ipc.WithSchema(old))
				if err != nil {
					t.Fatal(err)
				}
				if err := w.Write(cut); err != nil {
					t.Fatal(err)
				}
				if err := errors.Join(w.Close(), f.Close()); err != nil {
					t.Fatal(err)
				}
			}
			r, err := Open(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			got, err := r.Next()
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(rows) {
				t.Fatalf("read %d rows, wrote %d", len(got), len(rows))
			}
			for i := range rows {
				want := rows[i]
				want.PreviousID, want.GroupID, want.Context, want.Ctx = "", "", "", ingest.ContextColumns{}
				if !reflect.DeepEqual(got[i], want) {
					t.Fatalf("row %d:\n got %+v\nwant %+v", i, got[i], want)
				}
			}
		})
	}
}
