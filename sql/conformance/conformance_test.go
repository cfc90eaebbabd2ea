package conformance_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tideline-dev/tideline/internal/testenv"
	tsql "github.com/tideline-dev/tideline/sql"
)

// The evaluation time of the audience queries ({T}, {T_prev}; {T_low} the
// earliest time of the times table) and the end of the window the data set
// covers: 2026-11-02 16:00 and 15:00 UTC.
const (
	evalT     = "1793635200000"
	evalTPrev = "1793631600000"
	windowLo  = "1793613600000"
)

// TestConformance applies every migration to a current ClickHouse (26.9,
// embedded through chdb) and to the 18.16 server, creates the audience
// views, loads one fixed data set through them into both, then runs every
// golden of generated SQL and reads every table and view on both: each
// statement must be accepted by both and return the same rows.
func TestConformance(t *testing.T) {
	// Versions are compared on one server, whatever the test mode.
	conn := testenv.ClickHouseWith(t, testenv.ServerConfig(t))
	old := newClient(t, conn.Database)
	// Both hold the data set in a database of the same name, so a statement
	// that names its database runs on either.
	cur := newChdb(t, conn.Database)
	t.Logf("ClickHouse %s (server) against %s (chdb)", old.version(t), cur.version(t))

	ms, err := tsql.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if _, err := cur.run(m.Statement); err != nil {
			t.Errorf("migration %s is refused by current ClickHouse: %v", m.Name, err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	setup := statements(t, read(t, "../../materialize/testdata/explain/views.sql"))
	setup = append(setup, statements(t, read(t, "testdata/data.sql"))...)
	for _, s := range setup {
		for _, e := range []engine{old, cur} {
			if _, err := e.run(s); err != nil {
				t.Fatalf("%s refuses a setup statement: %v\n%s", e.name(), err, s)
			}
		}
	}

	checks := tableChecks(t, old)
	checks = append(checks, materializeChecks(t)...)
	checks = append(checks, triggerChecks(t)...)
	checks = append(checks, grafanaChecks(t)...)

	nonEmpty := 0
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			want, errOld := old.run(c.sql)
			if errOld != nil {
				t.Fatalf("ClickHouse 18.16 refuses it: %v\n%s", errOld, c.sql)
			}
			got, errCur := cur.run(c.sql)
			if errCur != nil {
				t.Fatalf("current ClickHouse refuses it: %v\n%s", errCur, c.sql)
			}
			if a, b := sortedLines(want), sortedLines(got); !slices.Equal(a, b) {
				t.Fatalf("results differ (%d rows on 18.16, %d on current)\n%s\nonly on 18.16:\n%s\nonly on current:\n%s",
					len(a), len(b), c.sql, missing(a, b), missing(b, a))
			}
			if strings.TrimSpace(want) != "" {
				nonEmpty++
			}
		})
	}
	// A comparison of empty results proves only that both accept the SQL:
	// most statements must find rows in the data set.
	if nonEmpty*3 < len(checks)*2 {
		t.Errorf("only %d of %d statements returned rows: the data set does not exercise them", nonEmpty, len(checks))
	}
	t.Logf("%d statements compared, %d with rows", len(checks), nonEmpty)

	// Backfill's statements are built at run time from what it finds: they
	// are compared as backfill sends them, after the reads above.
	t.Run("backfill", func(t *testing.T) { backfillConformance(t, old, cur, conn.Database) })
}

type check struct{ name, sql string }

// tableChecks reads every table and view of the schema, aggregate states
// finalized. Columns stamped with the wall clock at insert are left out.
func tableChecks(t *testing.T, old *client) []check {
	engines, err := old.run("SELECT name, engine FROM system.tables WHERE database = currentDatabase()")
	if err != nil {
		t.Fatal(err)
	}
	final := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(engines), "\n") {
		name, engine, _ := strings.Cut(line, "\t")
		// What a merge collapses is read merged: current ClickHouse already
		// collapses rows of one insert (optimize_on_insert), 18.16 does not.
		final[name] = engine != "MergeTree" && strings.HasSuffix(engine, "MergeTree")
	}
	// schema_migrations is written by the Go runner, which only 18.16 ran.
	// Materialized views are read through the tables they write.
	out, err := old.run("SELECT table, name, type FROM system.columns WHERE database = currentDatabase() AND table NOT IN ('batch', 'times', 'schema_migrations') AND table NOT IN (SELECT name FROM system.tables WHERE database = currentDatabase() AND engine = 'MaterializedView')")
	if err != nil {
		t.Fatal(err)
	}
	skip := map[string]bool{"customer_touches.touched_at": true, "pipeline_lag.minute": true}
	cols := map[string][]string{}
	var tables []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, "\t")
		table, name, typ := f[0], f[1], f[2]
		if _, ok := cols[table]; !ok {
			tables = append(tables, table)
			cols[table] = nil
		}
		if skip[table+"."+name] {
			continue
		}
		expr := name
		if strings.HasPrefix(typ, "AggregateFunction") {
			expr = "finalizeAggregation(" + name + ")"
			if strings.Contains(typ, "groupUniqArray") {
				expr = "arraySort(" + expr + ")"
			}
		}
		cols[table] = append(cols[table], expr)
	}
	var checks []check
	for _, table := range tables {
		from := table
		if final[table] {
			from += " FINAL"
		}
		checks = append(checks, check{"table/" + table, "SELECT " + strings.Join(cols[table], ", ") + " FROM " + from})
	}
	return checks
}

// materializeChecks are the audience compiler's generated statements from
// its explain goldens, at a fixed evaluation time.
func materializeChecks(t *testing.T) []check {
	files, err := filepath.Glob("../../materialize/testdata/explain/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	var checks []check
	for _, f := range files {
		base := strings.TrimSuffix(filepath.Base(f), ".sql")
		if base == "views" {
			continue
		}
		for i, s := range statements(t, read(t, f)) {
			s = strings.NewReplacer("{T_prev}", evalTPrev, "{T_low}", evalTPrev, "{T}", evalT).Replace(s)
			// A preview computes states from events and merges them with
			// the stored ones inside the statement: its output is final
			// values already, and finalized states would not unite with
			// the stored ones.
			if base != "preview" {
				s = finalizeStates(s)
			}
			checks = append(checks, check{fmt.Sprintf("materialize/%s/%d", base, i+1), s})
		}
	}
	return checks
}

// triggerChecks are the poller's reads from the campaign explain goldens,
// their bound parameters given values that select the data set's rows.
func triggerChecks(t *testing.T) []check {
	files, err := filepath.Glob("../../trigger/testdata/explain/*.txt")
	if err != nil {
		t.Fatal(err)
	}
	shards := make([]string, 16)
	for i := range shards {
		shards[i] = strconv.Itoa(i)
	}
	all := literal("(" + strings.Join(shards, ", ") + ")")
	args := map[string][]any{
		"trigger_transition_feed": {uint64(1793613600000), uint64(1793635200000), uint64(1793613600000), "", "", 0, "",
			literal("('gold_repeat_buyers', 'gold')"), 16, all, 5000},
		"trigger_event_feed": {uint64(1793613600000), uint64(1793635200000), uint64(1793613600000), "", "", "",
			literal("('purchase', 'add_to_cart')"), 16, all, 5000},
	}
	from := regexp.MustCompile(`FROM (\w+)`)
	var checks []check
	for _, f := range files {
		base := strings.TrimSuffix(filepath.Base(f), ".txt")
		n := 0
		for _, line := range strings.Split(read(t, f), "\n") {
			s := strings.TrimSpace(line)
			if !strings.HasPrefix(s, "SELECT ") {
				continue
			}
			m := from.FindStringSubmatch(s)
			a, ok := args[m[1]]
			if m == nil || !ok {
				t.Fatalf("%s: no parameter values for a read of %v: add them to triggerChecks", f, m)
			}
			n++
			checks = append(checks, check{fmt.Sprintf("trigger/%s/%d", base, n), bind(t, s, a)})
		}
	}
	// The payload's profile read, for users with linked anonymous ids, an
	// anonymous id a user claimed, one nobody claimed and an unknown id.
	ids := "('u1', 'u3', 'u5', 'u8', 'u13', 'anon:a3', 'anon:a7', 'anon:a4', 'nobody')"
	raw := "(SELECT arrayJoin(" + strings.ReplaceAll(strings.ReplaceAll(ids, "(", "["), ")", "]") + ") UNION ALL SELECT anonymous_customer_id FROM identity_claims WHERE user_id IN " + ids + ")"
	for _, s := range statements(t, read(t, "../../trigger/testdata/profiles.sql")) {
		s = strings.ReplaceAll(s, "@ids", ids)
		checks = append(checks, check{"trigger/profiles", strings.ReplaceAll(s, "@raw", raw)})
	}
	return checks
}

// grafanaChecks are the plugin's statements from its query goldens, with
// the arguments the golden records.
func grafanaChecks(t *testing.T) []check {
	files, err := filepath.Glob("../../grafana/query/testdata/*.golden")
	if err != nil {
		t.Fatal(err)
	}
	argRe := regexp.MustCompile(`(\w+)\(("(?:[^"\\]|\\.)*")\)`)
	var checks []check
	for _, f := range files {
		base := strings.TrimSuffix(filepath.Base(f), ".golden")
		var stmt []string
		n := 0
		for _, line := range strings.Split(read(t, f), "\n") {
			switch {
			case strings.HasPrefix(line, "-- args: "):
				var args []any
				for _, m := range argRe.FindAllStringSubmatch(line, -1) {
					v, err := strconv.Unquote(m[2])
					if err != nil {
						t.Fatalf("%s: %s: %v", f, line, err)
					}
					if m[1] == "string" {
						args = append(args, v)
					} else {
						args = append(args, literal(v))
					}
				}
				n++
				s := strings.TrimSuffix(strings.TrimSpace(strings.Join(stmt, "\n")), ";")
				checks = append(checks, check{fmt.Sprintf("grafana/%s/%d", base, n), bind(t, s, args)})
				stmt = nil
			case strings.HasPrefix(line, "--"):
			default:
				stmt = append(stmt, line)
			}
		}
		if n == 0 {
			t.Fatalf("%s: no statement with its args", f)
		}
	}
	return checks
}

// finalizeStates wraps every -State aggregate of s in finalizeAggregation,
// so a statement that computes states returns comparable values: the binary
// states themselves are not meant to match across versions (a set's order).
func finalizeStates(s string) string {
	for i := 0; ; {
		j := stateCall.FindStringIndex(s[i:])
		if j == nil {
			return s
		}
		start, open := i+j[0], i+j[1]-1
		depth, end := 0, -1
		for k := open; k < len(s) && end < 0; k++ {
			switch s[k] {
			case '(':
				depth++
			case ')':
				depth--
				if depth == 0 {
					end = k + 1
				}
			}
		}
		wrapped := "finalizeAggregation(" + s[start:end] + ")"
		if strings.HasPrefix(s[start:], "groupUniqArrayState") {
			wrapped = "arraySort(" + wrapped + ")"
		}
		s = s[:start] + wrapped + s[end:]
		i = start + len(wrapped)
	}
}

var stateCall = regexp.MustCompile(`\b\w+State\(`)

// literal is SQL that bind inserts as it is.
type literal string

// bind replaces each ? outside string literals with the next argument,
// quoted as clickhouse-go quotes bound values.
func bind(t *testing.T, s string, args []any) string {
	t.Helper()
	var out string
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("%v", r)
			}
		}()
		out = bindText(s, args)
	}()
	return out
}

// bindText is bind; it panics when the arguments do not match the ?s.
func bindText(s string, args []any) string {
	var b strings.Builder
	inString := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inString && c == '\\' && i+1 < len(s):
			b.WriteByte(c)
			i++
			c = s[i]
		case c == '\'':
			inString = !inString
		case c == '?' && !inString:
			if len(args) == 0 {
				panic(fmt.Sprintf("more ? than arguments in %s", s))
			}
			switch v := args[0].(type) {
			case string:
				b.WriteString("'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'")
			case literal:
				b.WriteString(string(v))
			default:
				fmt.Fprint(&b, v)
			}
			args = args[1:]
			continue
		}
		b.WriteByte(c)
	}
	if len(args) != 0 {
		panic(fmt.Sprintf("%d arguments left over for %s", len(args), s))
	}
	return b.String()
}

var startsStatement = regexp.MustCompile(`^(SELECT|CREATE|INSERT|WITH)\b`)

// statements splits a file of SQL into its statements: comment lines are
// dropped, a statement starts with a keyword at the start of a line and ends
// with ';' at the end of one.
func statements(t *testing.T, text string) []string {
	t.Helper()
	var out, cur []string
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "--") {
			continue
		}
		// prose between statements (an explain's condition) is not SQL
		if len(cur) == 0 && !startsStatement.MatchString(trimmed) {
			continue
		}
		cur = append(cur, line)
		if strings.HasSuffix(strings.TrimSpace(line), ";") {
			out = append(out, strings.TrimSuffix(strings.TrimSpace(strings.Join(cur, "\n")), ";"))
			cur = nil
		}
	}
	if rest := strings.TrimSpace(strings.Join(cur, "\n")); rest != "" {
		out = append(out, rest)
	}
	return out
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// missing lists the first lines of a that b lacks.
func missing(a, b []string) string {
	var out []string
	for _, l := range a {
		if _, found := slices.BinarySearch(b, l); !found {
			out = append(out, l)
		}
	}
	if len(out) > 8 {
		out = append(out[:8], fmt.Sprintf("... %d more", len(out)-8))
	}
	return strings.Join(out, "\n")
}

func sortedLines(s string) []string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	slices.Sort(lines)
	return lines
}

type engine interface {
	name() string
	run(sql string) (string, error)
}

// client runs statements on the 18.16 server through clickhouse-client,
// whose TabSeparated output is the same text chdb prints.
type client struct{ host, port, database string }

func newClient(t *testing.T, database string) *client {
	addr := os.Getenv(testenv.EnvClickHouse)
	if addr == "" {
		addr = "127.0.0.1:19000"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("clickhouse-client"); err != nil {
		t.Fatal("clickhouse-client is required (scripts/clickhouse.sh start installs it)")
	}
	return &client{host, port, database}
}

func (c *client) name() string { return "ClickHouse 18.16" }

func (c *client) run(sql string) (string, error) { return c.runIn(c.database, nil, sql) }

// runIn runs sql in database after the setup statements, in one session
// (so temporary tables the setup makes are the statement's).
func (c *client) runIn(database string, setup []string, sql string) (string, error) {
	args := []string{"--host", c.host, "--port", c.port, "--database", database, "--format", "TabSeparated"}
	if len(setup) > 0 {
		args = append(args, "--multiquery")
		sql = strings.Join(append(slices.Clone(setup), sql), ";\n")
	}
	cmd := exec.Command("clickhouse-client", append(args, "--query", sql)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

func (c *client) version(t *testing.T) string {
	v, err := c.run("SELECT version()")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(v)
}

// chdbSession runs statements in chdb through sql/conformance/chdb_runner.py,
// in the virtual environment scripts/chdb.sh makes.
type chdbSession struct {
	in  io.WriteCloser
	out *bufio.Reader
}

func newChdb(t *testing.T, database string) *chdbSession {
	install := exec.Command("../../scripts/chdb.sh", "python")
	install.Stderr = os.Stderr
	py, err := install.Output()
	if err != nil {
		t.Fatalf("current ClickHouse (chdb) is required and could not be installed: scripts/chdb.sh python: %v", err)
	}
	cmd := exec.Command(strings.TrimSpace(string(py)), "chdb_runner.py", t.TempDir(), database)
	// The local server formats times in UTC (scripts/clickhouse/config.xml).
	cmd.Env = append(os.Environ(), "TZ=UTC")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chdb: %v", err)
	}
	t.Cleanup(func() {
		in.Close()
		_ = cmd.Wait()
	})
	return &chdbSession{in: in, out: bufio.NewReaderSize(out, 1<<20)}
}

func (c *chdbSession) name() string { return "current ClickHouse (chdb)" }

func (c *chdbSession) call(req map[string]any) (string, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return "", err
	}
	if _, err := c.in.Write(append(b, '\n')); err != nil {
		return "", fmt.Errorf("write to chdb: %w", err)
	}
	line, err := c.out.ReadBytes('\n')
	if err != nil {
		return "", fmt.Errorf("read from chdb: %w", err)
	}
	var ans struct {
		OK    bool   `json:"ok"`
		Out   string `json:"out"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(line, &ans); err != nil {
		return "", fmt.Errorf("chdb answer %q: %w", line, err)
	}
	if !ans.OK {
		return "", fmt.Errorf("%s", ans.Error)
	}
	return ans.Out, nil
}

func (c *chdbSession) run(sql string) (string, error) { return c.call(map[string]any{"sql": sql}) }

// runIn runs sql in database after the setup statements and before the
// cleanup ones.
func (c *chdbSession) runIn(database string, setup, cleanup []string, sql string) (string, error) {
	return c.call(map[string]any{"sql": sql, "database": database, "setup": setup, "cleanup": cleanup})
}

func (c *chdbSession) version(t *testing.T) string {
	v, err := c.call(map[string]any{"version": true})
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(v)
}
