package conformance_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/ext"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tideline-dev/tideline/backfill"
	"github.com/tideline-dev/tideline/backfill/archive"
	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/component"
	"github.com/tideline-dev/tideline/internal/testenv"
	"github.com/tideline-dev/tideline/materialize"
	"github.com/tideline-dev/tideline/trigger"
)

// The data set's window of received times: 2026-11-02 10:00 to 16:00 UTC.
var (
	windowFrom = time.UnixMilli(1793613600000).UTC()
	windowTo   = time.UnixMilli(1793635200000).UTC()
)

// backfillConformance runs backfill over the data set on the 18.16 server
// through a connection that records what it sends: a plan from an archive
// of the data set's events with a few events ClickHouse lacks (positions,
// lateness, missing events, qualifications), a dry run of its apply, and the
// apply of a plan with nothing missing (its ledger entries and run records).
// Each statement is sent to current ClickHouse as it happens: a read must
// return the rows it returned on 18.16, a write must be accepted, so both
// hold the same data for the reads that follow.
func backfillConformance(t *testing.T, old *client, cur *chdbSession, database string) {
	var (
		// Some of backfill's reads run in parallel; the sessions run one
		// statement at a time.
		mu                      sync.Mutex
		reads, withRows, writes int
		// other counts statements on the replay's database, system the
		// reads of system tables, compared for acceptance only.
		other, system int
		// external counts statements sent with external tables.
		external int
	)
	// A statement runs on 18.16 and then on current ClickHouse before any
	// other does (the loader runs beside backfill), so a read finds the
	// same data on both.
	observe := func(_ context.Context, s chdb.Statement, run func() error) error {
		mu.Lock()
		defer mu.Unlock()
		if err := run(); err != nil {
			return err
		}
		// The data set's database, the replay's scratch database beside
		// it, and the server's default one where that is created.
		if s.Database != database && s.Database != "default" && !strings.Contains(s.Database, "_replay_") {
			t.Errorf("a statement on database %s, not the data set's or its replay's: %s", s.Database, s.SQL)
			return nil
		}
		sql, err := render(s)
		if err != nil {
			t.Errorf("%v\n%s", err, s.SQL)
			return nil
		}
		setup, cleanup, err := externalTables(s.External)
		if err != nil {
			t.Errorf("%v\n%s", err, s.SQL)
			return nil
		}
		if len(s.External) > 0 {
			external++
		}
		db := s.Database
		if db != database {
			other++
		}
		if strings.HasPrefix(sql, "DROP DATABASE") {
			// Not from inside the database it drops.
			db = database
		}
		if !s.Read {
			writes++
			if _, err := cur.runIn(db, setup, cleanup, sql); err != nil {
				t.Errorf("current ClickHouse refuses a write of backfill: %v\n%s", err, clip(sql))
			}
			return nil
		}
		reads++
		want, err := old.runIn(s.Database, setup, sql)
		if err != nil {
			t.Errorf("ClickHouse 18.16 refuses a read of backfill through clickhouse-client: %v\n%s", err, sql)
			return nil
		}
		got, err := cur.runIn(s.Database, setup, cleanup, sql)
		if err != nil {
			t.Errorf("current ClickHouse refuses a read of backfill: %v\n%s", err, sql)
			return nil
		}
		if strings.Contains(sql, "system.") || strings.Contains(sql, "FROM customer_touches") || strings.Contains(sql, "now()") {
			// The servers' own tables (parts, merges) differ between any
			// two servers, customer_touches stamps each row with the
			// server's clock as it is inserted, and now() is each server's
			// clock as the read runs: accepted is what there is to prove.
			system++
			return nil
		}
		if a, b := sortedLines(unordered(want)), sortedLines(unordered(got)); !slices.Equal(a, b) {
			t.Errorf("backfill read %d: results differ (%d rows on 18.16, %d on current)\n%s\nonly on 18.16:\n%s\nonly on current:\n%s",
				reads, len(a), len(b), sql, missing(a, b), missing(b, a))
		}
		if strings.TrimSpace(want) != "" {
			withRows++
		}
		return nil
	}
	// The data set's audiences gain the definitions of the shipped ones
	// they are named after, so the plan's replay compiles and evaluates
	// them as the live evaluator would.
	for _, id := range []string{"gold_repeat_buyers", "cart_abandoners"} {
		def, err := os.ReadFile(filepath.Join("../../materialize/audiences", id+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		text, _ := sqlLiteral(string(def))
		stmt := "INSERT INTO audiences (audience_id, name, definition, condition_sql, version, active, applied_at_ms) VALUES ('" +
			id + "', '" + id + "', " + text + ", '', 'v2', 1, 1793613000001)"
		for _, e := range []engine{old, cur} {
			if _, err := e.run(stmt); err != nil {
				t.Fatalf("%s: %v", e.name(), err)
			}
		}
	}
	cfg := chdb.DefaultConfig()
	if a := os.Getenv(testenv.EnvClickHouse); a != "" {
		cfg.Addr = a
	}
	cfg.Database, cfg.Observe = database, observe
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	conn, err := chdb.Open(ctx, cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	// The archive holds what the data set loaded, once per position, and
	// three events of the web lane that ClickHouse never saw.
	rows := archiveRows(t, old)
	extra := rows[0]
	for i := range 3 {
		r := extra
		r.MessageID, r.Offset = fmt.Sprintf("never-loaded-%d", i), 1000+int64(i)
		r.Topic, r.Partition, r.Lane = "events.web", 0, "web"
		r.ReceivedAtMs = uint64(windowFrom.UnixMilli()) + 3_600_000 + uint64(i)
		rows = append(rows, r)
	}
	full := writeArchive(t, rows)

	campaigns, err := trigger.LoadCampaigns("../../trigger/campaigns")
	if err != nil {
		t.Fatal(err)
	}
	bc := backfill.DefaultConfig()
	// No loader consumes the live lanes of the test's broker: what they
	// have not committed is re-ingested too.
	bc.IncludeBacklog = true
	now := func() time.Time { return windowTo.Add(5 * time.Minute) }
	br := testenv.Embedded(t)
	br.Config.TopicPrefix = ""
	loaderCommitted(ctx, t, br, bc)
	qual := &backfill.CampaignQualifier{Conn: conn, Campaigns: campaigns, Log: testenv.Logger(t)}
	// The replay evaluates the window's customers in a scratch database
	// with the evaluator's own statements, their external tables included.
	replay := &backfill.Replay{Conn: conn, CH: cfg, Materialize: materialize.DefaultConfig(), Log: testenv.Logger(t)}
	defer replay.Close()
	planner := func(path string) *backfill.Planner {
		return &backfill.Planner{Cfg: bc, Conn: conn, Kafka: br.Config, Source: &backfill.ArchiveSource{Path: path},
			State: replay, Qualifier: qual, Log: testenv.Logger(t), Now: now}
	}
	req := backfill.PlanRequest{Window: backfill.Window{From: windowFrom, To: windowTo}, Command: "conformance"}
	plan, err := planner(full).Plan(ctx, req)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	if _, _, missingN, _, _, _ := plan.Totals(); missingN != 3 {
		t.Errorf("the plan finds %d missing events, want the 3 the archive adds", missingN)
	}
	applier := func(path string, dry bool) *backfill.Applier {
		return &backfill.Applier{Cfg: bc, Conn: conn, Kafka: br.Config, Seeds: br.Seeds, Source: &backfill.ArchiveSource{Path: path},
			State: replay, Qualifier: qual, Log: testenv.Logger(t), Yes: true, DryRun: dry, Out: &strings.Builder{}, Command: "conformance", Now: now}
	}
	if _, err := applier(full, true).Apply(ctx, plan); err != nil {
		t.Fatalf("dry run of apply: %v", err)
	}

	// The apply re-ingests through the backfill lane, which a loader on the
	// same observed connection loads: its inserts reach both servers.
	ld := ingest.DefaultLoaderConfig()
	ld.Lanes, ld.Group, ld.MetricsAddr = []string{"backfill"}, bc.LoaderGroup, ""
	loader, err := ingest.NewLoader(ld, component.Env{Conn: conn, Kafka: br.Config, Seeds: br.Seeds, Registry: prometheus.NewRegistry(), Log: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	lctx, stopLoader := context.WithCancel(ctx)
	loaded := make(chan error, 1)
	go func() { loaded <- loader.Run(lctx) }()
	res, err := applier(full, false).Apply(ctx, plan)
	stopLoader()
	if lerr := <-loaded; lerr != nil {
		t.Errorf("loader: %v", lerr)
	}
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	if res.Rederived == 0 {
		t.Errorf("apply re-derived no customer: the re-derive's statements were not compared")
	}
	if res.Reingested != 3 {
		t.Errorf("apply re-ingested %d events, want the 3 missing", res.Reingested)
	}
	if d := plan.Stale.Derived; d == nil || d.Checked == 0 || external == 0 {
		t.Errorf("the plan's replay evaluated no customer (%d statements with external tables): its statements were not compared", external)
	}
	t.Logf("backfill: %d reads compared (%d with rows, %d of system tables or server clocks for acceptance only), %d writes replayed, %d statements on the replay's database, %d with external tables; apply %s, %d re-ingested, %d re-derived",
		reads, withRows, system, writes, other, external, res.Run.State, res.Reingested, res.Rederived)
	if reads < 10 || withRows*2 < reads || writes == 0 {
		t.Errorf("backfill sent %d reads (%d with rows) and %d writes: the data set does not exercise it", reads, withRows, writes)
	}
}

// loaderCommitted creates the lanes' topics and commits the start of each
// for the loader's groups, as a loader that loaded nothing yet would have:
// apply reads the groups' positions, and no loader runs here.
func loaderCommitted(ctx context.Context, t *testing.T, br testenv.Broker, bc backfill.Config) {
	if err := broker.EnsureTopics(ctx, br.Seeds, br.Config); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(broker.ClientOpts(br.Seeds, nil)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for _, lane := range []string{"web", "server", "backfill"} {
		offs := kadm.Offsets{}
		for p := range br.Config.Partitions {
			offs.Add(kadm.Offset{Topic: br.Config.MustTopic(lane), Partition: p, At: 0})
		}
		if err := adm.CommitAllOffsets(ctx, br.Config.TopicPrefix+bc.LoaderGroup+"."+lane, offs); err != nil {
			t.Fatalf("commit the loader's start on lane %s: %v", lane, err)
		}
	}
}

// archiveRows are the data set's events, one per Kafka position, as an
// archive holds them.
func archiveRows(t *testing.T, old *client) []archive.Row {
	out, err := old.run(`SELECT message_id, type, customer_id, user_id, anonymous_id, event, properties, traits,
		event_time_ms, sent_at_ms, received_at_ms, ingest_time_ms, source, lane, kafka_topic, kafka_partition, kafka_offset
		FROM events ORDER BY kafka_topic, kafka_partition, kafka_offset, message_id LIMIT 1 BY kafka_topic, kafka_partition, kafka_offset`)
	if err != nil {
		t.Fatal(err)
	}
	var rows []archive.Row
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, "\t")
		u := func(i int) uint64 { v, _ := strconv.ParseUint(f[i], 10, 64); return v }
		p, _ := strconv.ParseInt(f[15], 10, 32)
		o, _ := strconv.ParseInt(f[16], 10, 64)
		rows = append(rows, archive.Row{MessageID: f[0], Type: f[1], CustomerID: f[2], UserID: f[3], AnonymousID: f[4], Event: f[5],
			Properties: unescape(f[6]), Traits: unescape(f[7]), EventTimeMs: u(8), SentAtMs: u(9), ReceivedAtMs: u(10), IngestTimeMs: u(11),
			Source: f[12], Lane: f[13], Topic: f[14], Partition: int32(p), Offset: o})
	}
	if len(rows) == 0 {
		t.Fatal("the data set has no events")
	}
	return rows
}

// unescape reads a TabSeparated string field.
func unescape(s string) string {
	return strings.NewReplacer(`\\`, `\`, `\'`, `'`, `\t`, "\t", `\n`, "\n").Replace(s)
}

func writeArchive(t *testing.T, rows []archive.Row) string {
	path := filepath.Join(t.TempDir(), "events.arrow")
	w, err := archive.Create(path, windowFrom, windowTo)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// render is s as one SQL text: its arguments bound as clickhouse-go binds
// them, a batch insert's rows as VALUES.
func render(s chdb.Statement) (string, error) {
	if s.Rows == nil {
		return bindValues(s.SQL, s.Args)
	}
	var b strings.Builder
	b.WriteString(s.SQL)
	b.WriteString(" VALUES ")
	for i, r := range s.Rows {
		if i > 0 {
			b.WriteString(", ")
		}
		vals := make([]string, len(r))
		for j, v := range r {
			lit, err := sqlLiteral(v)
			if err != nil {
				return "", err
			}
			vals[j] = lit
		}
		b.WriteString("(" + strings.Join(vals, ", ") + ")")
	}
	return b.String(), nil
}

// bindNamed replaces each @name with the literal of the argument of that
// name, longer names first so that no name's replacement cuts another's.
func bindNamed(s string, args []any) (string, error) {
	named := make([]driver.NamedValue, len(args))
	for i, a := range args {
		n, ok := a.(driver.NamedValue)
		if !ok {
			return "", fmt.Errorf("named and positional arguments mixed: %T", a)
		}
		named[i] = n
	}
	slices.SortFunc(named, func(a, b driver.NamedValue) int { return len(b.Name) - len(a.Name) })
	for _, n := range named {
		l, err := sqlLiteral(n.Value)
		if err != nil {
			return "", err
		}
		s = strings.ReplaceAll(s, "@"+n.Name, l)
	}
	return s, nil
}

// bindValues replaces each ? outside string literals with the literal of
// the next argument.
func bindValues(s string, args []any) (string, error) {
	if len(args) > 0 {
		if _, named := args[0].(driver.NamedValue); named {
			return bindNamed(s, args)
		}
	}
	lits := make([]any, len(args))
	for i, a := range args {
		l, err := sqlLiteral(a)
		if err != nil {
			return "", err
		}
		lits[i] = literal(l)
	}
	var err error
	out := func() string {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("bind: %v", r)
			}
		}()
		return bindText(s, lits)
	}()
	return out, err
}

// sqlLiteral is v as clickhouse-go writes a bound value: strings quoted,
// times as toDateTime in UTC, bools as 1 and 0, slices as arrays.
func sqlLiteral(v any) (string, error) {
	switch v := v.(type) {
	case nil:
		return "NULL", nil
	case string:
		return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'", nil
	case []byte:
		return sqlLiteral(string(v))
	case bool:
		if v {
			return "1", nil
		}
		return "0", nil
	case time.Time:
		return v.UTC().Format("toDateTime('2006-01-02 15:04:05', 'UTC')"), nil
	case time.Duration:
		return strconv.FormatInt(int64(v), 10), nil
	case float32, float64:
		return fmt.Sprintf("%v", v), nil
	case clickhouse.GroupSet:
		vals := make([]string, len(v.Value))
		for i, e := range v.Value {
			l, err := sqlLiteral(e)
			if err != nil {
				return "", err
			}
			vals[i] = l
		}
		return "(" + strings.Join(vals, ", ") + ")", nil
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(rv.Int(), 10), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(rv.Uint(), 10), nil
	case reflect.String:
		return sqlLiteral(rv.String())
	case reflect.Slice, reflect.Array:
		vals := make([]string, rv.Len())
		for i := range vals {
			l, err := sqlLiteral(rv.Index(i).Interface())
			if err != nil {
				return "", err
			}
			vals[i] = l
		}
		return "[" + strings.Join(vals, ", ") + "]", nil
	}
	return "", fmt.Errorf("no SQL literal for a %T", v)
}

// externalTables are the statements that make a statement's external
// tables as temporary tables of its session (they shadow the database's
// tables of the same name, as external data does), and those that drop
// them. Rows go in through INSERT ... SELECT: clickhouse-client 18.16
// reads what follows INSERT ... VALUES as data, the statements after it
// included.
func externalTables(tables []*ext.Table) (setup, cleanup []string, err error) {
	for _, tb := range tables {
		setup = append(setup, "CREATE TEMPORARY TABLE "+tb.Name()+" ("+tb.Structure()+")")
		cleanup = append(cleanup, "DROP TEMPORARY TABLE IF EXISTS "+tb.Name())
		b := tb.Block()
		if b.Rows() == 0 {
			continue
		}
		rows := make([]string, b.Rows())
		for i := range rows {
			vals := make([]string, len(b.Columns))
			for j, c := range b.Columns {
				lit, err := sqlLiteral(c.Row(i, false))
				if err != nil {
					return nil, nil, fmt.Errorf("external table %s: %w", tb.Name(), err)
				}
				// One type per column, so the rows form one array.
				vals[j] = "CAST(" + lit + " AS " + string(c.Type()) + ")"
			}
			rows[i] = "tuple(" + strings.Join(vals, ", ") + ")"
		}
		cols := make([]string, len(b.Columns))
		for j := range cols {
			cols[j] = fmt.Sprintf("tupleElement(r, %d)", j+1)
		}
		setup = append(setup, "INSERT INTO "+tb.Name()+" SELECT "+strings.Join(cols, ", ")+
			" FROM (SELECT arrayJoin(["+strings.Join(rows, ", ")+"]) AS r)")
	}
	return setup, cleanup, nil
}

// unordered sorts the elements of each array field of a TabSeparated
// result: groupArray and groupUniqArray collect in whatever order the
// server's threads and parts give, which backfill and the evaluator do not
// depend on (they sort what they read).
func unordered(out string) string {
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		fields := strings.Split(l, "\t")
		for j, f := range fields {
			if len(f) > 2 && f[0] == '[' && f[len(f)-1] == ']' {
				elems := splitTop(f[1 : len(f)-1])
				slices.Sort(elems)
				fields[j] = "[" + strings.Join(elems, ",") + "]"
			}
		}
		lines[i] = strings.Join(fields, "\t")
	}
	return strings.Join(lines, "\n")
}

// splitTop splits s at the commas outside brackets, parentheses and
// quotes.
func splitTop(s string) []string {
	var out []string
	depth, quoted, start := 0, false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case quoted && c == '\\':
			i++
		case c == '\'':
			quoted = !quoted
		case quoted:
		case c == '[' || c == '(':
			depth++
		case c == ']' || c == ')':
			depth--
		case c == ',' && depth == 0:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// clip shortens a long statement (a batch's VALUES) for a message.
func clip(s string) string {
	if len(s) > 2000 {
		return s[:2000] + " ..."
	}
	return s
}
