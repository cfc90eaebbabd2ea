package ingest_test

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/component"
	"github.com/tideline-dev/tideline/internal/testenv"
)

// eventRow is one row of the events table, every column.
type eventRow struct {
	MessageID, Type, CustomerID, UserID, AnonymousID, Event, Properties, Traits string
	EventTime                                                                   time.Time
	EventTimeMs, SentAtMs, ReceivedAtMs, IngestTimeMs                           uint64
	Source, Lane, Topic                                                         string
	Partition                                                                   int32
	Offset                                                                      int64
}

// deadRow is one row of the dead_letters table, every column.
type deadRow struct {
	Topic        string
	Partition    int32
	Offset       int64
	Lane, Reason string
	Field, Raw   string
	AtMs         uint64
	At           time.Time
}

// kcatMessage is one record kcat produces, and what the loader must make of it.
type kcatMessage struct {
	key, value string
	row        *eventRow // the row expected in events, or
	reason     string    // the dead letter's reason; a trailing "*" makes it a prefix
	field      string
	raw        string // the raw column, when it differs from value
}

func ms(s string) uint64 {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return uint64(t.UnixMilli())
}

// kcatMessages are written by hand, as an independent producer would write
// them, with the row or dead letter each must become. Topic, partition and
// offset are filled in when the messages are spread over partitions.
func kcatMessages() []kcatMessage {
	m := []kcatMessage{
		{key: "u-1", value: `{"messageId":"k-1","type":"track","userId":"u-1","anonymousId":"a-1","event":"purchase","properties":{"amount": 42.5, "sku":"A-1", "tags":["x","y"]},"traits":{"plan":"gold"},"timestamp":"2025-12-14T18:58:00.123Z","sentAt":"2025-12-14T18:58:01.5Z","receivedAt":"2025-12-14T18:58:02.25Z","source":"kcat"}`,
			row: &eventRow{MessageID: "k-1", Type: "track", CustomerID: "u-1", UserID: "u-1", AnonymousID: "a-1", Event: "purchase",
				Properties: `{"amount": 42.5, "sku":"A-1", "tags":["x","y"]}`, Traits: `{"plan":"gold"}`,
				EventTime: time.Date(2025, 12, 14, 18, 58, 0, 0, time.UTC), EventTimeMs: ms("2025-12-14T18:58:00.123Z"),
				SentAtMs: ms("2025-12-14T18:58:01.5Z"), ReceivedAtMs: ms("2025-12-14T18:58:02.25Z"), Source: "kcat"}},
		{key: "anon:a-2", value: `{"messageId":"k-2","type":"identify","anonymousId":"a-2","traits":{"email":"a2@example.com"},"timestamp":"2025-12-14T19:00:00Z","receivedAt":"2025-12-14T19:00:01Z"}`,
			row: &eventRow{MessageID: "k-2", Type: "identify", CustomerID: "anon:a-2", AnonymousID: "a-2", Properties: `{}`, Traits: `{"email":"a2@example.com"}`,
				EventTime: time.Date(2025, 12, 14, 19, 0, 0, 0, time.UTC), EventTimeMs: ms("2025-12-14T19:00:00Z"), ReceivedAtMs: ms("2025-12-14T19:00:01Z")}},
		{key: "u-3", value: `{"messageId":"k-3","type":"page","userId":"u-3","name":"Pricing","properties":{"path":"/pricing"},"timestamp":"2025-12-14T20:58:00.5+02:00","receivedAt":"2025-12-14T18:58:00.7Z","source":"web"}`,
			row: &eventRow{MessageID: "k-3", Type: "page", CustomerID: "u-3", UserID: "u-3", Event: "Pricing", Properties: `{"path":"/pricing"}`, Traits: `{}`,
				EventTime: time.Date(2025, 12, 14, 18, 58, 0, 0, time.UTC), EventTimeMs: ms("2025-12-14T18:58:00.5Z"), ReceivedAtMs: ms("2025-12-14T18:58:00.7Z"), Source: "web"}},
		// No receivedAt: the loader takes the event time.
		{key: "u-4", value: `{"messageId":"k-4","type":"track","userId":"u-4","event":"signup","timestamp":"2024-02-29T23:59:59.999Z"}`,
			row: &eventRow{MessageID: "k-4", Type: "track", CustomerID: "u-4", UserID: "u-4", Event: "signup", Properties: `{}`, Traits: `{}`,
				EventTime: time.Date(2024, 2, 29, 23, 59, 59, 0, time.UTC), EventTimeMs: ms("2024-02-29T23:59:59.999Z"), ReceivedAtMs: ms("2024-02-29T23:59:59.999Z")}},
		{key: "u-5", value: `{"messageId":"k-5","type":"track","userId":"u-5","event":"vue","properties":{"city":"Zürich","wave":"🌊","quote":"\"q\"","esc":"\u00e9"},"timestamp":"2025-01-01T00:00:00Z","receivedAt":"2025-01-01T00:00:00.001Z"}`,
			row: &eventRow{MessageID: "k-5", Type: "track", CustomerID: "u-5", UserID: "u-5", Event: "vue", Properties: `{"city":"Zürich","wave":"🌊","quote":"\"q\"","esc":"\u00e9"}`, Traits: `{}`,
				EventTime: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), EventTimeMs: ms("2025-01-01T00:00:00Z"), ReceivedAtMs: ms("2025-01-01T00:00:00.001Z")}},
		{key: "u-6", value: `{"messageId":"k-6","type":"page","userId":"u-6","timestamp":"2025-06-30T12:00:00Z","receivedAt":"2025-06-30T12:00:00Z"}`,
			row: &eventRow{MessageID: "k-6", Type: "page", CustomerID: "u-6", UserID: "u-6", Properties: `{}`, Traits: `{}`,
				EventTime: time.Date(2025, 6, 30, 12, 0, 0, 0, time.UTC), EventTimeMs: ms("2025-06-30T12:00:00Z"), ReceivedAtMs: ms("2025-06-30T12:00:00Z")}},

		{key: "bad", value: `{not json`, reason: "malformed_json: body is not a valid JSON object: *"},
		{key: "bad", value: ``, reason: "malformed_json: body is not a valid JSON object: *"},
		{key: "bad", value: `[1,2,3]`, reason: "malformed_json: body is not a valid JSON object: *"},
		{key: "bad", value: `{"type":"track","userId":"u","event":"e","timestamp":"2025-12-14T18:58:00Z"}`, reason: "missing_field: messageId is required", field: "messageId"},
		{key: "bad", value: `{"messageId":"x-1","userId":"u","event":"e","timestamp":"2025-12-14T18:58:00Z"}`, reason: "missing_field: type is required", field: "type"},
		{key: "bad", value: `{"messageId":"x-2","type":"merge","userId":"u","timestamp":"2025-12-14T18:58:00Z"}`, reason: `unknown_type: type "merge" is not supported`, field: "type"},
		{key: "bad", value: `{"messageId":"x-3","type":"track","event":"e","timestamp":"2025-12-14T18:58:00Z"}`, reason: "missing_field: userId or anonymousId is required", field: "userId"},
		{key: "bad", value: `{"messageId":"x-4","type":"track","userId":"u","timestamp":"2025-12-14T18:58:00Z"}`, reason: "missing_field: event is required for track", field: "event"},
		{key: "bad", value: `{"messageId":"x-5","type":"track","userId":"u","event":"e"}`, reason: "missing_field: timestamp is required", field: "timestamp"},
		{key: "bad", value: `{"messageId":"x-6","type":"track","userId":"u","event":"e","timestamp":"1999-12-31T23:59:59Z"}`, reason: "invalid_timestamp: timestamp 1999-12-31T23:59:59Z is before 2000-01-01", field: "timestamp"},
		{key: "bad", value: `{"messageId":"x-7","type":"track","userId":"u","event":"e","timestamp":"2025-12-14T18:58:00Z","properties":["a"]}`, reason: "invalid_field: properties must be a JSON object", field: "properties"},
		{key: "bad", value: `{"messageId":"x-8","type":"track","userId":5,"event":"e","timestamp":"2025-12-14T18:58:00Z"}`, reason: "invalid_field: userId must be a string, not a JSON number", field: "userId"},
		{key: "bad", value: `{"messageId":"x-9","type":"track","userId":"u","event":"e","timestamp":"2025-12-14T18:58:00Z","properties":` + strings.Repeat(`{"a":`, 40) + `1` + strings.Repeat(`}`, 40) + `}`, reason: "too_deep: JSON is nested deeper than 32 levels"},
		{key: "bad", value: "{\"messageId\":\"x-10\",\"type\":\"track\",\"userId\":\"u\xff\",\"event\":\"e\",\"timestamp\":\"2025-12-14T18:58:00Z\"}", reason: "invalid_utf8: record is not valid UTF-8",
			raw: "{\"messageId\":\"x-10\",\"type\":\"track\",\"userId\":\"u\uFFFD\",\"event\":\"e\",\"timestamp\":\"2025-12-14T18:58:00Z\"}"},
	}
	big := `{"messageId":"x-11","type":"track","userId":"u","event":"e","timestamp":"2025-12-14T18:58:00Z","properties":{"p":"` + strings.Repeat("z", 40<<10) + `"}}`
	m = append(m, kcatMessage{key: "bad", value: big, reason: fmt.Sprintf("too_large: record is %d bytes; events are limited to 32 KB", len(big))})

	// Many ordinary events, so the load spans batches and partitions.
	base := time.Date(2025, 11, 1, 8, 0, 0, 0, time.UTC)
	for i := range 600 {
		ts := base.Add(time.Duration(i) * 7777 * time.Millisecond)
		rcv := ts.Add(1500 * time.Millisecond)
		cust := fmt.Sprintf("cust-%d", i%37)
		m = append(m, kcatMessage{key: cust,
			value: fmt.Sprintf(`{"messageId":"g-%d","type":"track","userId":"%s","event":"view","properties":{"i":%d},"timestamp":"%s","receivedAt":"%s","source":"kcat"}`,
				i, cust, i, ts.Format("2006-01-02T15:04:05.000Z"), rcv.Format("2006-01-02T15:04:05.000Z")),
			row: &eventRow{MessageID: fmt.Sprintf("g-%d", i), Type: "track", CustomerID: cust, UserID: cust, Event: "view",
				Properties: fmt.Sprintf(`{"i":%d}`, i), Traits: `{}`, EventTime: ts.Truncate(time.Second),
				EventTimeMs: uint64(ts.UnixMilli()), ReceivedAtMs: uint64(rcv.UnixMilli()), Source: "kcat"}})
	}
	return m
}

// TestKcatToClickHouse produces records with kcat, a client independent of
// franz-go and of tideline's encoder, and checks every column of every row
// the loader writes, every dead letter and its reason, and that accepted +
// dead-lettered = consumed.
func TestKcatToClickHouse(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatalf("kcat is required (scripts/kafka.sh start installs it): %v", err)
	}
	for _, br := range testenv.Brokers(t) {
		t.Run(br.Name, func(t *testing.T) {
			conn := testenv.ClickHouse(t)
			topic := br.Config.MustTopic("web")
			msgs := kcatMessages()
			// Each message goes to an explicit partition, in order, so its
			// offset is known without reading it back.
			parts := br.Config.Partitions
			input := make([]bytes.Buffer, parts)
			next := make([]int64, parts)
			for i := range msgs {
				p := int32(i) % parts
				msgs[i].value = strings.ReplaceAll(msgs[i].value, "\n", " ")
				fmt.Fprintf(&input[p], "%s|%s\n", msgs[i].key, msgs[i].value)
				if r := msgs[i].row; r != nil {
					r.Lane, r.Topic, r.Partition, r.Offset = "web", topic, p, next[p]
				} else {
					msgs[i].key = fmt.Sprintf("%d/%d", p, next[p])
				}
				next[p]++
			}
			start := chdb.NowMs()
			t0 := time.Now()
			for p := range parts {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				cmd := exec.CommandContext(ctx, kcat, "-P", "-b", strings.Join(br.Seeds, ","), "-t", topic, "-p", fmt.Sprint(p), "-K", "|",
					"-X", "enable.idempotence=true", "-X", "message.max.bytes=1000000")
				cmd.Stdin = &input[p]
				out, err := cmd.CombinedOutput()
				cancel()
				if err != nil {
					t.Fatalf("kcat to partition %d: %v\n%s", p, err, out)
				}
			}

			t.Logf("kcat produced %d records in %s", len(msgs), time.Since(t0))
			cfg := fastLoader()
			cfg.Lanes = []string{"web"}
			cfg.Group = "kcat-" + testenv.Name(t)
			cfg.BatchSize = 97
			cfg.MetricsAddr = ""
			l, err := ingest.NewLoader(cfg, component.Env{Conn: conn, Kafka: br.Config, Seeds: br.Seeds, Log: testenv.Logger(t)})
			if err != nil {
				t.Fatal(err)
			}
			defer runLoader(t, l)()

			var wantRows []eventRow
			var wantDead []kcatMessage
			for _, m := range msgs {
				if m.row != nil {
					wantRows = append(wantRows, *m.row)
				} else {
					wantDead = append(wantDead, m)
				}
			}
			testenv.Eventually(t, 90*time.Second, "every record loaded or dead-lettered", func() (bool, string) {
				st := l.Stats()["web"]
				return st.Consumed == int64(len(msgs)) && st.Inserted+st.DeadLettered == st.Consumed,
					fmt.Sprintf("consumed=%d inserted=%d dead=%d of %d", st.Consumed, st.Inserted, st.DeadLettered, len(msgs))
			})
			t.Logf("loaded in %s", time.Since(t0))
			st := l.Stats()["web"]
			if st.Inserted != int64(len(wantRows)) || st.DeadLettered != int64(len(wantDead)) {
				t.Errorf("inserted %d dead-lettered %d, want %d and %d", st.Inserted, st.DeadLettered, len(wantRows), len(wantDead))
			}
			end := chdb.NowMs()

			rows, err := conn.Query(context.Background(), "SELECT message_id, type, customer_id, user_id, anonymous_id, event, properties, traits, "+
				"event_time, event_time_ms, sent_at_ms, received_at_ms, ingest_time_ms, source, lane, kafka_topic, kafka_partition, kafka_offset "+
				"FROM events FINAL ORDER BY kafka_partition, kafka_offset")
			if err != nil {
				t.Fatal(err)
			}
			var got []eventRow
			for rows.Next() {
				var r eventRow
				if err := rows.Scan(&r.MessageID, &r.Type, &r.CustomerID, &r.UserID, &r.AnonymousID, &r.Event, &r.Properties, &r.Traits,
					&r.EventTime, &r.EventTimeMs, &r.SentAtMs, &r.ReceivedAtMs, &r.IngestTimeMs, &r.Source, &r.Lane, &r.Topic, &r.Partition, &r.Offset); err != nil {
					t.Fatal(err)
				}
				got = append(got, r)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			rows.Close()
			want := map[string]eventRow{}
			for _, r := range wantRows {
				want[r.MessageID] = r
			}
			if len(got) != len(want) {
				t.Errorf("%d rows in events, want %d", len(got), len(want))
			}
			for _, g := range got {
				w, ok := want[g.MessageID]
				if !ok {
					t.Errorf("unexpected row %+v", g)
					continue
				}
				if g.IngestTimeMs < start || g.IngestTimeMs > end {
					t.Errorf("%s: ingest_time_ms %d outside the load (%d..%d)", g.MessageID, g.IngestTimeMs, start, end)
				}
				if !g.EventTime.Equal(w.EventTime) {
					t.Errorf("%s: event_time %s, want %s", g.MessageID, g.EventTime, w.EventTime)
				}
				g.IngestTimeMs, g.EventTime, w.EventTime = 0, time.Time{}, time.Time{}
				if g != w {
					t.Errorf("row differs:\n got %+v\nwant %+v", g, w)
				}
			}

			drows, err := conn.Query(context.Background(), "SELECT kafka_topic, kafka_partition, kafka_offset, lane, reason, field, raw, received_at_ms, received_at FROM dead_letters FINAL ORDER BY kafka_partition, kafka_offset")
			if err != nil {
				t.Fatal(err)
			}
			dead := map[string]deadRow{}
			for drows.Next() {
				var d deadRow
				if err := drows.Scan(&d.Topic, &d.Partition, &d.Offset, &d.Lane, &d.Reason, &d.Field, &d.Raw, &d.AtMs, &d.At); err != nil {
					t.Fatal(err)
				}
				dead[fmt.Sprintf("%d/%d", d.Partition, d.Offset)] = d
			}
			drows.Close()
			if len(dead) != len(wantDead) {
				t.Errorf("%d dead letters, want %d", len(dead), len(wantDead))
			}
			for _, w := range wantDead {
				d, ok := dead[w.key]
				if !ok {
					t.Errorf("no dead letter at %s for %.80q", w.key, w.value)
					continue
				}
				raw := w.value
				if w.raw != "" {
					raw = w.raw
				}
				if p, ok := strings.CutSuffix(w.reason, "*"); ok && !strings.HasPrefix(d.Reason, p) || !ok && d.Reason != w.reason {
					t.Errorf("%s: reason %q, want %q", w.key, d.Reason, w.reason)
				}
				if d.Topic != topic || d.Lane != "web" || d.Field != w.field || d.Raw != raw || d.AtMs < start || d.AtMs > end || d.At.Unix() != int64(d.AtMs/1000) {
					t.Errorf("%s: dead letter %+v (raw %d bytes), want field %q and the raw record (%d bytes)", w.key, d, len(d.Raw), w.field, len(raw))
				}
			}
			if n := queryUint(t, conn, "SELECT uniqExact(message_id) FROM events") + queryUint(t, conn, "SELECT count() FROM dead_letters FINAL"); n != uint64(len(msgs)) {
				t.Errorf("accepted + dead-lettered = %d, produced %d", n, len(msgs))
			}
		})
	}
}
