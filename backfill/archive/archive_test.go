package archive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/ingest"
)

func randomRows(n int, seed uint64) []Row {
	rng := rand.New(rand.NewPCG(seed, seed))
	base := time.Date(2025, 12, 14, 18, 0, 0, 0, time.UTC)
	types := []string{ingest.TypeTrack, ingest.TypeIdentify, ingest.TypePage}
	out := make([]Row, n)
	for i := range out {
		t := base.Add(time.Duration(rng.IntN(4*3600_000)) * time.Millisecond)
		r := Row{
			MessageID:    fmt.Sprintf("m-%d", i),
			Type:         types[rng.IntN(3)],
			UserID:       fmt.Sprintf("user-%d", rng.IntN(100)),
			Properties:   fmt.Sprintf(`{"amount":%d.5,"note":"ünïcødé \"q\""}`, rng.IntN(500)),
			Traits:       "{}",
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
		default:
			r.Event = "purchase"
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
			var got []Row
			for {
				batch, err := r.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, batch...)
			}
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
		}
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
