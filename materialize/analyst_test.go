package materialize

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
)

// analystConn connects to the test database as the read-only analyst user
// that scripts/clickhouse/users.xml defines.
func analystConn(t *testing.T, conn *chdb.Conn) *chdb.Conn {
	t.Helper()
	c := chdb.DefaultConfig()
	if a := os.Getenv(testenv.EnvClickHouse); a != "" {
		c.Addr = a
	}
	if conn.Cluster != "" {
		// The cluster's servers define the same users. No cluster
		// settings: a read-only user may not send any, and reads of the
		// Distributed tables need none.
		c.Addr = strings.Join(testenv.ClusterAddrs(t), ",")
	}
	c.User, c.Password, c.Database = "analyst", "analyst", conn.Database
	ac, err := chdb.Open(context.Background(), c, false)
	if err != nil {
		t.Fatalf("connect as analyst (the local server's users.xml defines it: scripts/clickhouse.sh start): %v", err)
	}
	t.Cleanup(func() { ac.Close() })
	return ac
}

// TestAnalystCannotWrite proves the analyst user reads everything but
// cannot insert, create, alter, drop, truncate or change its limits.
func TestAnalystCannotWrite(t *testing.T) {
	conn := testenv.ClickHouse(t)
	insertDirect(t, conn, "web", &ingest.Event{MessageID: "m1", Type: "track", UserID: "u1", Event: "x", Timestamp: time.Now()})
	an := analystConn(t, conn)
	// A context without a deadline: clickhouse-go turns a deadline into a
	// max_execution_time setting, which a read-only user may not send.
	ctx := context.Background()
	var n uint64
	if err := an.QueryRow(ctx, "SELECT count() FROM events").Scan(&n); err != nil || n != 1 {
		t.Fatalf("analyst cannot read events: %d, %v", n, err)
	}
	for _, stmt := range []string{
		"INSERT INTO events (message_id, type, customer_id) SELECT 'm2', 'track', 'u2'",
		"CREATE TABLE analyst_scratch (a UInt8) ENGINE = Memory",
		"CREATE VIEW analyst_view AS SELECT 1",
		"ALTER TABLE events ADD COLUMN analyst_col UInt8",
		"ALTER TABLE events DELETE WHERE 1",
		"DROP TABLE events",
		"DROP TABLE customer_profile",
		"TRUNCATE TABLE events",
		"RENAME TABLE events TO events_gone",
		"SET max_memory_usage = 100000000000",
	} {
		err := an.Exec(ctx, stmt)
		if err == nil {
			t.Errorf("analyst could run %q", stmt)
			continue
		}
		if !strings.Contains(strings.ToLower(err.Error()), "readonly") {
			t.Errorf("%q failed, but not for being read-only: %v", stmt, err)
		}
	}
	b, err := an.PrepareBatch(ctx, "INSERT INTO events (message_id, type, customer_id)")
	if err == nil {
		if err = b.Append("m3", "track", "u3"); err == nil {
			err = b.Send()
		}
	}
	if err == nil {
		t.Error("analyst could insert a batch")
	}
	if err := conn.QueryRow(ctx, "SELECT count() FROM events").Scan(&n); err != nil || n != 1 {
		t.Fatalf("events changed under the analyst: %d rows, %v", n, err)
	}
}

// exampleSeed is the data the analyst examples are run against.
type exampleSeed struct {
	yesterday, now time.Time
	loc            *time.Location
	events         []seedEvent
}

type seedEvent struct {
	lane string
	ev   *ingest.Event
}

func serverClock(t *testing.T, conn *chdb.Conn) (yesterday, now time.Time, loc *time.Location) {
	t.Helper()
	var y, n uint32
	var tz string
	if err := conn.QueryRow(context.Background(), "SELECT toUInt32(toDateTime(yesterday())), toUInt32(now()), timezone()").Scan(&y, &n, &tz); err != nil {
		t.Fatal(err)
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		t.Fatal(err)
	}
	return time.Unix(int64(y), 0), time.Unix(int64(n), 0), loc
}

// seedExamples loads two days of a few customers: alice browses
// anonymously yesterday, logs in and buys twice (entering
// gold_repeat_buyers yesterday), and spends more today; carol qualifies
// yesterday too; bob and the anonymous dave leave carts today; erin from
// Germany browses today. Yesterday is evaluated as of late yesterday, today
// as of now, as a running evaluator would have.
func seedExamples(t *testing.T, conn *chdb.Conn) *exampleSeed {
	t.Helper()
	applyDirs(t, conn, DefaultConfig().attributeSettings(), "audiences")
	s := &exampleSeed{}
	s.yesterday, s.now, s.loc = serverClock(t, conn)
	y, now := s.yesterday, s.now
	props := func(kv ...any) []byte {
		m := map[string]any{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return obj(t, m)
	}
	track := func(lane, id, user, anon, event string, at time.Time, p []byte) seedEvent {
		return seedEvent{lane, &ingest.Event{MessageID: id, Type: "track", UserID: user, AnonymousID: anon, Event: event, Timestamp: at, Properties: p}}
	}
	identify := func(id, user, anon string, at time.Time, traits []byte) seedEvent {
		return seedEvent{"server", &ingest.Event{MessageID: id, Type: "identify", UserID: user, AnonymousID: anon, Timestamp: at, Traits: traits}}
	}
	day1 := []seedEvent{
		track("web", "p_a0", "", "anon-alice", "page_view", y.Add(9*time.Hour), props("path", "/")),
		identify("i_a1", "alice", "anon-alice", y.Add(10*time.Hour), props("plan", "gold", "country", "DE", "email", "alice@example.test", "age", 34)),
		track("server", "o_a1", "alice", "", "purchase", y.Add(11*time.Hour), props("amount", 120, "currency", "USD", "sku", "A-1")),
		track("server", "o_a2", "alice", "", "purchase", y.Add(12*time.Hour), props("amount", 80, "currency", "USD", "sku", "B-2")),
		identify("i_c1", "carol", "", y.Add(8*time.Hour), props("plan", "gold", "country", "FR", "age", 41, "email", "carol@example.test")),
		track("server", "o_c1", "carol", "", "purchase", y.Add(13*time.Hour), props("amount", 50, "currency", "USD")),
		track("server", "o_c2", "carol", "", "purchase", y.Add(14*time.Hour), props("amount", "60", "currency", "USD")),
	}
	day2 := []seedEvent{
		track("web", "p_a3", "alice", "", "page_view", now.Add(-30*time.Minute), props("path", "/pricing")),
		track("web", "c_a1", "alice", "", "add_to_cart", now.Add(-20*time.Minute), props("sku", "C-9", "price", 400)),
		track("server", "o_a3", "alice", "", "purchase", now.Add(-10*time.Minute), props("amount", 400, "currency", "USD", "sku", "C-9")),
		identify("i_b1", "bob", "", now.Add(-2*time.Hour), props("plan", "silver", "country", "US", "age", 25)),
		track("web", "c_b1", "bob", "", "add_to_cart", now.Add(-time.Hour), props("sku", "A-1", "price", 30)),
		track("web", "p_b1", "bob", "", "page_view", now.Add(-50*time.Minute), props("path", "/cart")),
		track("web", "p_d1", "", "anon-dave", "page_view", now.Add(-40*time.Minute), props("path", "/")),
		track("web", "c_d1", "", "anon-dave", "add_to_cart", now.Add(-35*time.Minute), props("sku", "B-2", "price", 15)),
		identify("i_e1", "erin", "", now.Add(-3*time.Hour), props("plan", "free", "country", "DE")),
		track("server", "s_e1", "erin", "", "signup", now.Add(-3*time.Hour+time.Second), nil),
		track("web", "p_e1", "erin", "", "page_view", now.Add(-15*time.Minute), props("path", "/")),
	}
	ev := testEvaluator(t, conn)
	for i, day := range [][]seedEvent{day1, day2} {
		byLane := map[string][]*ingest.Event{}
		for _, e := range day {
			byLane[e.lane] = append(byLane[e.lane], e.ev)
			s.events = append(s.events, e)
		}
		for _, lane := range slices.Sorted(maps.Keys(byLane)) {
			insertDirect(t, conn, lane, byLane[lane]...)
		}
		wm := ms(now)
		if i == 0 {
			wm = ms(y.Add(23 * time.Hour))
		}
		setWatermark(t, conn, wm)
		evaluate(t, ev)
	}
	return s
}

// queryRows runs q and renders each row as text: times as Unix seconds,
// dates as YYYY-MM-DD, the rest as fmt prints them.
func queryRows(t *testing.T, conn *chdb.Conn, q string) [][]string {
	t.Helper()
	rows, err := conn.Query(context.Background(), q)
	if err != nil {
		t.Fatalf("%v\n%s", err, q)
	}
	defer rows.Close()
	types := rows.ColumnTypes()
	var out [][]string
	for rows.Next() {
		dest := make([]any, len(types))
		for i, ct := range types {
			dest[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(dest...); err != nil {
			t.Fatal(err)
		}
		row := make([]string, len(types))
		for i, d := range dest {
			v := reflect.ValueOf(d).Elem().Interface()
			switch x := v.(type) {
			case time.Time:
				if types[i].DatabaseTypeName() == "Date" {
					row[i] = x.Format("2006-01-02")
				} else {
					row[i] = strconv.FormatInt(x.Unix(), 10)
				}
			default:
				row[i] = fmt.Sprint(x)
			}
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func unix(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

func positive(t *testing.T, what, s string) {
	t.Helper()
	if f, err := strconv.ParseFloat(s, 64); err != nil || f <= 0 {
		t.Errorf("%s = %s, want a positive number", what, s)
	}
}

// TestExamples runs every sql/examples/*.sql as the analyst user against
// seeded data and checks each answer.
func TestExamples(t *testing.T) {
	conn := testenv.ClickHouse(t)
	s := seedExamples(t, conn)
	an := analystConn(t, conn)
	files, err := filepath.Glob("../sql/examples/*.sql")
	if err != nil || len(files) != 10 {
		t.Fatalf("want 10 example files in sql/examples, found %d (%v)", len(files), err)
	}
	y, now := s.yesterday, s.now
	checks := map[string]func(t *testing.T, rows [][]string){
		"01_entered_yesterday.sql": func(t *testing.T, rows [][]string) {
			want := [][]string{
				{"alice", unix(y.Add(12 * time.Hour)), unix(y.Add(9 * time.Hour)), "10800"},
				{"carol", unix(y.Add(14 * time.Hour)), unix(y.Add(8 * time.Hour)), "21600"},
			}
			if len(rows) != len(want) {
				t.Fatalf("got %v, want %v", rows, want)
			}
			for i, r := range rows {
				if !reflect.DeepEqual(r[:4], want[i]) {
					t.Errorf("row %d = %v, want %v", i, r[:4], want[i])
				}
				positive(t, "qualification_latency_ms", r[4])
			}
		},
		"02_qualification_latency.sql": func(t *testing.T, rows [][]string) {
			entries := map[string]int{}
			for _, r := range rows {
				n, _ := strconv.Atoi(r[2])
				entries[r[0]] += n
				positive(t, "p95_latency_ms", r[3])
			}
			// server: alice and carol into gold_repeat_buyers (purchases),
			// alice into german_visitors (her identify) and big_spenders;
			// web: erin into german_visitors, bob and dave into cart_abandoners.
			if want := map[string]int{"server": 4, "web": 3}; !reflect.DeepEqual(entries, want) {
				t.Errorf("entries per lane = %v, want %v", entries, want)
			}
		},
		"03_audience_sizes.sql": func(t *testing.T, rows [][]string) {
			want := [][]string{
				{"big_spenders", "Big spenders (500+ in 30 days)", "1"},
				{"cart_abandoners", "Cart abandoners (last 24 hours)", "2"},
				{"german_visitors", "German visitors (active today)", "2"},
				{"gold_repeat_buyers", "Gold plan, 2+ purchases in 7 days", "2"},
			}
			if !reflect.DeepEqual(rows, want) {
				t.Errorf("got %v, want %v", rows, want)
			}
		},
		"04_top_spenders.sql": func(t *testing.T, rows [][]string) {
			want := [][]string{{"alice", "600", "3", "gold"}, {"carol", "110", "2", "gold"}}
			if !reflect.DeepEqual(rows, want) {
				t.Errorf("got %v, want %v", rows, want)
			}
		},
		"05_customer_attributes.sql": func(t *testing.T, rows [][]string) {
			at := unix(y.Add(10 * time.Hour))
			want := [][]string{{"age", "34", at}, {"country", "DE", at}, {"email", "alice@example.test", at}, {"plan", "gold", at}}
			if len(rows) != len(want) {
				t.Fatalf("got %v, want %v", rows, want)
			}
			for i, r := range rows {
				if !reflect.DeepEqual(r[:3], want[i]) || r[4] != "i_a1" || r[5] != "0" {
					t.Errorf("row %d = %v, want %v set by i_a1", i, r, want[i])
				}
				positive(t, "ingest_time_ms", r[3])
			}
		},
		"06_cart_abandoners_skus.sql": func(t *testing.T, rows [][]string) {
			want := [][]string{
				{"anon:anon-dave", unix(now.Add(-35 * time.Minute)), "B-2"},
				{"bob", unix(now.Add(-time.Hour)), "A-1"},
			}
			if !reflect.DeepEqual(rows, want) {
				t.Errorf("got %v, want %v", rows, want)
			}
		},
		"07_churn_per_day.sql": func(t *testing.T, rows [][]string) {
			got := map[string][3]int{}
			for _, r := range rows {
				e, _ := strconv.Atoi(r[2])
				x, _ := strconv.Atoi(r[3])
				ex, _ := strconv.Atoi(r[4])
				v := got[r[0]]
				got[r[0]] = [3]int{v[0] + e, v[1] + x, v[2] + ex}
			}
			want := map[string][3]int{"big_spenders": {1, 0, 0}, "cart_abandoners": {2, 0, 0}, "german_visitors": {2, 0, 0}, "gold_repeat_buyers": {2, 0, 0}}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("entered, exited, expired per audience = %v, want %v", got, want)
			}
		},
		"08_pipeline_lag.sql": func(t *testing.T, rows [][]string) {
			var keys []string
			for _, r := range rows {
				keys = append(keys, r[0]+"/"+r[1])
				positive(t, r[0]+" rows", r[2])
				if r[0] != "derive" {
					positive(t, r[0]+" p95", r[3])
				}
			}
			want := []string{"derive/server", "derive/web", "ingest/server", "ingest/web", "qualify/server", "qualify/web"}
			if !reflect.DeepEqual(keys, want) {
				t.Errorf("stages/lanes = %v, want %v", keys, want)
			}
		},
		"09_daily_active.sql": func(t *testing.T, rows [][]string) {
			resolve := map[string]string{"anon:anon-alice": "alice"}
			customers := map[[2]string]map[string]bool{}
			events := map[[2]string]int{}
			for _, e := range s.events {
				k := [2]string{e.ev.Timestamp.In(s.loc).Format("2006-01-02"), e.lane}
				c := e.ev.CustomerID()
				if r, ok := resolve[c]; ok {
					c = r
				}
				if customers[k] == nil {
					customers[k] = map[string]bool{}
				}
				customers[k][c] = true
				events[k]++
			}
			var want [][]string
			for k, cs := range customers {
				want = append(want, []string{k[0], k[1], strconv.Itoa(len(cs)), strconv.Itoa(events[k])})
			}
			sort.Slice(want, func(i, j int) bool { return want[i][0]+want[i][1] < want[j][0]+want[j][1] })
			if !reflect.DeepEqual(rows, want) {
				t.Errorf("got %v, want %v", rows, want)
			}
		},
		"10_identified_visitors.sql": func(t *testing.T, rows [][]string) {
			want := [][]string{{"anon:anon-alice", "alice", unix(y.Add(10 * time.Hour)), "3600"}}
			if !reflect.DeepEqual(rows, want) {
				t.Errorf("got %v, want %v", rows, want)
			}
		},
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var question []string
			for _, line := range strings.Split(string(src), "\n") {
				if !strings.HasPrefix(line, "--") {
					break
				}
				question = append(question, line)
			}
			if !strings.Contains(strings.Join(question, " "), "?") {
				t.Errorf("%s must open with a comment stating its question", name)
			}
			check, ok := checks[name]
			if !ok {
				t.Fatalf("no check for %s: add one to TestExamples", name)
			}
			rows := queryRows(t, an, string(src))
			if len(rows) == 0 {
				t.Fatalf("%s returned nothing", name)
			}
			check(t, rows)
		})
	}
}
