package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
)

// TestExportKeepsContext: events of every call type, with the context the
// SDKs send, exported from ClickHouse to Parquet and to Arrow, carry their
// group, alias and context columns; loaded back from the archive they give
// the same columns again.
func TestExportKeepsContext(t *testing.T) {
	ctx := context.Background()
	conn := testenv.ClickHouse(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	at := now.Add(-time.Minute).Format(time.RFC3339Nano)
	browser := `"context":{"campaign":{"source":"newsletter","medium":"email","name":"black_friday"},"page":{"path":"/pricing","url":"https://shop.example/pricing","referrer":"https://mail.example/","title":"Pricing"},` +
		`"userAgent":"Mozilla/5.0","locale":"de-DE","timezone":"Europe/Berlin","library":{"name":"analytics.js","version":"next-1.81.0"}}`
	msgs := []struct{ typ, lane, body string }{
		{"page", "web", `{"messageId":"x-page","anonymousId":"anon-1","name":"Pricing","timestamp":"` + at + `",` + browser + `}`},
		{"track", "web", `{"messageId":"x-track","anonymousId":"anon-1","event":"Order Completed","properties":{"total":80},"timestamp":"` + at + `",` + browser + `}`},
		{"group", "server", `{"messageId":"x-group","userId":"u-1","groupId":"acme","traits":{"plan":"enterprise"},"timestamp":"` + at + `","context":{"ip":"198.51.100.7","library":{"name":"@segment/analytics-node","version":"2.1.0"}}}`},
		{"alias", "server", `{"messageId":"x-alias","userId":"u-1","previousId":"anon-1","timestamp":"` + at + `"}`},
		{"screen", "server", `{"messageId":"x-screen","userId":"u-1","name":"Checkout","timestamp":"` + at + `","context":{"app":{"name":"shop","version":"3.2"},"locale":"fr-FR"}}`},
		{"identify", "server", `{"messageId":"x-identify","userId":"u-1","traits":{"email":"u@example.test"},"timestamp":"` + at + `"}`},
	}
	var rows ingest.EventRows
	for i, m := range msgs {
		ev, err := ingest.Parse([]byte(m.body), ingest.Message{Type: m.typ, ReceivedAt: now, Source: m.lane, IP: "203.0.113.9"})
		if err != nil {
			t.Fatalf("%s: %v", m.body, err)
		}
		rows.Add(ev, m.lane, "events."+m.lane, 0, int64(i))
	}
	if err := rows.Insert(ctx, conn, chdb.NowMs()); err != nil {
		t.Fatal(err)
	}
	before := contextColumns(t, conn)
	if got := before["x-page"]; !strings.Contains(got, " black_friday ") || !strings.Contains(got, "203.0.113.9") {
		t.Fatalf("the page's columns as loaded: %s", got)
	}
	for _, name := range []string{"events.parquet", "events.arrow"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), name)
			w, err := Create(path, now.Add(-time.Hour), now.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			n, err := Export(ctx, conn, w, now.Add(-time.Hour), now.Add(time.Hour), nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if n != int64(len(msgs)) {
				t.Fatalf("exported %d rows, want %d", n, len(msgs))
			}
			r, err := Open(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			got := map[string]Row{}
			var reload ingest.EventRows
			for _, row := range readAll(t, r) {
				got[row.MessageID] = row
				value, err := row.Value()
				if err != nil {
					t.Fatal(err)
				}
				ev, err := ingest.DecodeRecord(value)
				if err != nil {
					t.Fatalf("%s: the loader refuses the archived event: %v", row.MessageID, err)
				}
				reload.Add(ev, "backfill", row.Topic, row.Partition, row.Offset)
			}
			page, group, alias := got["x-page"], got["x-group"], got["x-alias"]
			if page.Ctx.CampaignName != "black_friday" || page.Ctx.PagePath != "/pricing" || page.Ctx.Locale != "de-DE" ||
				page.Ctx.IP != "203.0.113.9" || page.Ctx.LibraryName != "analytics.js" || !strings.Contains(page.Context, `"referrer":"https://mail.example/"`) {
				t.Errorf("the page's archived context: %+v", page)
			}
			if group.GroupID != "acme" || group.Ctx.IP != "198.51.100.7" || alias.PreviousID != "anon-1" {
				t.Errorf("group %+v\nalias %+v", group, alias)
			}
			// Loaded back (into an emptied table), the archive gives the
			// columns it was exported from.
			if err := conn.Exec(ctx, "TRUNCATE TABLE events"); err != nil {
				t.Fatal(err)
			}
			if err := reload.Insert(ctx, conn, chdb.NowMs()); err != nil {
				t.Fatal(err)
			}
			if after := contextColumns(t, conn); !reflect.DeepEqual(after, before) {
				t.Errorf("columns after loading the archive:\n%v\nwant\n%v", after, before)
			}
		})
	}
}

// contextColumns reads each message's group, alias and context columns,
// one string per message.
func contextColumns(t *testing.T, conn *chdb.Conn) map[string]string {
	t.Helper()
	names := make([]string, len(contextFields))
	for i, c := range contextFields {
		names[i] = c.name
	}
	rows, err := conn.Query(context.Background(), "SELECT message_id, arrayStringConcat(["+strings.Join(names, ", ")+"], ' ') FROM events FINAL")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, cols string
		if err := rows.Scan(&id, &cols); err != nil {
			t.Fatal(err)
		}
		out[id] = cols
	}
	if err := rows.Err(); err != nil {
		t.Fatal(fmt.Errorf("read context columns: %w", err))
	}
	return out
}

// readAll reads every row of an archive, in order.
func readAll(t *testing.T, r *Reader) []Row {
	t.Helper()
	var out []Row
	for {
		batch, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, batch...)
	}
}
