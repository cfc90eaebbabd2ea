package lint

import (
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// tableRef finds a table named by a statement: after FROM, JOIN, INTO,
// TABLE, EXISTS or UPDATE, with an optional database prefix (a name, or a
// verb a database name is formatted into). It is matched
// whatever the case in text that starts like a statement (statement), and
// in upper case only elsewhere (clauseRef), so that "read from events" in
// an error message is prose and "    FROM events\n", a line of a statement
// built in pieces, is SQL.
var tableRef = regexp.MustCompile(`(?i)\b(?:FROM|JOIN|INTO|TABLE|EXISTS|UPDATE)\s+(?:(?:[A-Za-z_][A-Za-z0-9_]*|%[sv])\.)?([A-Za-z_][A-Za-z0-9_]*)`)

var clauseRef = regexp.MustCompile(`\b(?:FROM|JOIN|INTO|TABLE|EXISTS|UPDATE)\s+(?:(?:[A-Za-z_][A-Za-z0-9_]*|%[sv])\.)?([A-Za-z_][A-Za-z0-9_]*)`)

// createRef finds the tables and views the migrations create.
var createRef = regexp.MustCompile(`(?i)CREATE\s+(?:TABLE|MATERIALIZED\s+VIEW|VIEW)\s+(?:IF\s+NOT\s+EXISTS\s+)?(?:[A-Za-z_][A-Za-z0-9_]*\.)?([A-Za-z_][A-Za-z0-9_]*)`)

// statement is the start of a ClickHouse statement.
var statement = regexp.MustCompile(`(?i)^\s*(?:SELECT|INSERT|WITH|ALTER|CREATE|DROP|OPTIMIZE|TRUNCATE|EXISTS|SHOW|DESCRIBE|RENAME|DETACH|ATTACH|SYSTEM|KILL|DELETE|UPDATE)\b`)

// sqlWord is a keyword written the way this module writes SQL: text holding
// one is (part of) a statement.
var sqlWord = regexp.MustCompile(`\b(?:SELECT|INSERT|FROM|JOIN|WHERE|INTO|TABLE|ALTER|CREATE|DROP|OPTIMIZE|GROUP BY|ORDER BY)\b`)

func isSQL(s string) bool { return statement.MatchString(s) || sqlWord.MatchString(s) }

// statementTables lists the tables text names in a statement.
func statementTables(s string) []string {
	re := clauseRef
	if statement.MatchString(s) {
		re = tableRef
	}
	var out []string
	for _, m := range re.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

// tableRefs lists, by table, the production packages that name it in SQL:
// in a statement (a literal, or a concatenation of literals and values),
// or as a whole literal that reaches one. A whole literal reaches SQL when
// it is concatenated into a statement or formatted into one, or is given
// to a name that is: a variable or parameter of the function it is in, a
// constant, variable or field of its package, a parameter of a function or
// method of the module it is passed to. Calls are matched by name (a
// function of the package or of the package named; a method of the
// package or of a package it imports), which errs towards counting. A
// table name used as a command, flag, field or progress label reaches no
// statement and is not counted.
func tableRefs(t *testing.T, files []file, tables map[string]bool) map[string]map[string]bool {
	refs := map[string]map[string]bool{}
	add := func(table, pkg string) {
		if !tables[table] {
			return
		}
		if refs[table] == nil {
			refs[table] = map[string]bool{}
		}
		refs[table][pkg] = true
	}
	var prod []file
	for _, f := range files {
		if !f.test && f.pkg != "sql" && !strings.HasPrefix(f.pkg, "sql/") {
			prod = append(prod, f)
		}
	}
	fl := sqlFlow(prod)
	for _, f := range prod {
		fl.walk(f, func(sc scope, n ast.Node) {
			// whole adds every literal of e (a literal, a concatenation or
			// a composite literal of them) that is a table name.
			var whole func(e ast.Expr)
			whole = func(e ast.Expr) {
				switch e := ast.Unparen(e).(type) {
				case *ast.BasicLit:
					if s, ok := stringLit(e); ok {
						add(s, f.pkg)
					}
				case *ast.BinaryExpr:
					if e.Op == token.ADD {
						whole(e.X)
						whole(e.Y)
					}
				case *ast.CompositeLit:
					for _, el := range e.Elts {
						if kv, ok := el.(*ast.KeyValueExpr); ok {
							el = kv.Value
						}
						whole(el)
					}
				}
			}
			switch n := n.(type) {
			case *ast.BinaryExpr:
				if text, _, ok := concat(n); ok && isSQL(text) {
					for _, tb := range statementTables(text) {
						add(tb, f.pkg)
					}
				}
			case *ast.BasicLit:
				if s, ok := stringLit(n); ok {
					for _, tb := range statementTables(s) {
						add(tb, f.pkg)
					}
				}
			case *ast.CallExpr:
				for _, i := range fl.sqlArgs(sc, n) {
					whole(n.Args[i])
				}
			case *ast.AssignStmt:
				if len(n.Lhs) == len(n.Rhs) {
					for i, l := range n.Lhs {
						if fl.reaches(sc, l) {
							whole(n.Rhs[i])
						}
					}
				}
			case *ast.ValueSpec:
				for i, id := range n.Names {
					if i < len(n.Values) && fl.reaches(sc, id) {
						whole(n.Values[i])
					}
				}
			case *ast.RangeStmt:
				if fl.reaches(sc, n.Key) || fl.reaches(sc, n.Value) {
					whole(n.X)
				}
			case *ast.KeyValueExpr:
				if id, ok := n.Key.(*ast.Ident); ok && fl.pkg[f.pkg][id.Name] {
					whole(n.Value)
				}
			}
		})
	}
	return refs
}

// flow is which names reach SQL: by function, its variables and
// parameters; by package, its constants, variables and fields; and by
// function or method (package "." name, or package ".#" name for a
// method), the positions of the parameters that do.
type flow struct {
	local  map[*ast.FuncDecl]map[string]bool
	pkg    map[string]map[string]bool
	params map[string]map[int]bool
	// top are each package's constants and variables.
	top     map[string]map[string]bool
	changed bool
}

// scope is where a node stands: its file, the function it is in (nil at
// package level), and the module packages the file imports, by name.
type scope struct {
	f       file
	fn      *ast.FuncDecl
	imports map[string]string
}

// walk calls visit with every node of f and its scope.
func (fl *flow) walk(f file, visit func(scope, ast.Node)) {
	sc := scope{f: f, imports: map[string]string{}}
	for _, im := range f.ast.Imports {
		path, _ := strconv.Unquote(im.Path.Value)
		if !strings.HasPrefix(path, module+"/") {
			continue
		}
		dir := strings.TrimPrefix(path, module+"/")
		name := dir[strings.LastIndex(dir, "/")+1:]
		if im.Name != nil {
			name = im.Name.Name
		}
		sc.imports[name] = dir
	}
	for _, d := range f.ast.Decls {
		fsc := sc
		if fd, ok := d.(*ast.FuncDecl); ok {
			fsc.fn = fd
		}
		ast.Inspect(d, func(n ast.Node) bool {
			if n != nil {
				visit(fsc, n)
			}
			return true
		})
	}
}

// reaches reports whether the name e stands for reaches SQL.
func (fl *flow) reaches(sc scope, e ast.Expr) bool {
	switch e := e.(type) {
	case *ast.Ident:
		return (sc.fn != nil && fl.local[sc.fn][e.Name]) || fl.pkg[sc.f.pkg][e.Name]
	case *ast.SelectorExpr:
		if x, ok := e.X.(*ast.Ident); ok {
			if dir, ok := sc.imports[x.Name]; ok {
				return fl.pkg[dir][e.Sel.Name]
			}
		}
		return fl.pkg[sc.f.pkg][e.Sel.Name]
	case *ast.ParenExpr:
		return fl.reaches(sc, e.X)
	case *ast.StarExpr:
		return fl.reaches(sc, e.X)
	case *ast.IndexExpr:
		return fl.reaches(sc, e.X)
	}
	return false
}

// mark records that the name e stands for reaches SQL.
func (fl *flow) mark(sc scope, e ast.Expr) {
	set := func(m map[string]bool, name string) {
		if name != "_" && !m[name] {
			m[name], fl.changed = true, true
		}
	}
	pkgSet := func(pkg string) map[string]bool {
		if fl.pkg[pkg] == nil {
			fl.pkg[pkg] = map[string]bool{}
		}
		return fl.pkg[pkg]
	}
	switch e := e.(type) {
	case *ast.Ident:
		if sc.fn != nil && !fl.top[sc.f.pkg][e.Name] {
			if fl.local[sc.fn] == nil {
				fl.local[sc.fn] = map[string]bool{}
			}
			set(fl.local[sc.fn], e.Name)
			return
		}
		set(pkgSet(sc.f.pkg), e.Name)
	case *ast.SelectorExpr:
		if x, ok := e.X.(*ast.Ident); ok {
			if dir, ok := sc.imports[x.Name]; ok {
				set(pkgSet(dir), e.Sel.Name)
				return
			}
		}
		set(pkgSet(sc.f.pkg), e.Sel.Name)
	case *ast.ParenExpr:
		fl.mark(sc, e.X)
	case *ast.StarExpr:
		fl.mark(sc, e.X)
	case *ast.IndexExpr:
		fl.mark(sc, e.X)
	}
}

// callees are the keys of the functions or methods call may call.
func (fl *flow) callees(sc scope, call *ast.CallExpr) []string {
	switch fn := ast.Unparen(call.Fun).(type) {
	case *ast.Ident:
		return []string{sc.f.pkg + "." + fn.Name}
	case *ast.SelectorExpr:
		if x, ok := fn.X.(*ast.Ident); ok {
			if dir, ok := sc.imports[x.Name]; ok {
				return []string{dir + "." + fn.Sel.Name}
			}
		}
		keys := []string{sc.f.pkg + ".#" + fn.Sel.Name}
		for _, dir := range sc.imports {
			keys = append(keys, dir+".#"+fn.Sel.Name)
		}
		return keys
	}
	return nil
}

// sqlArgs lists the arguments of call that reach SQL: those a function of
// the module puts into a statement, and the values fmt formats into one.
func (fl *flow) sqlArgs(sc scope, call *ast.CallExpr) []int {
	var out []int
	if sel, ok := ast.Unparen(call.Fun).(*ast.SelectorExpr); ok {
		if x, ok := sel.X.(*ast.Ident); ok && x.Name == "fmt" {
			first := map[string]int{"Sprintf": 0, "Fprintf": 1, "Appendf": 1}
			if i, ok := first[sel.Sel.Name]; ok && len(call.Args) > i {
				if s, ok := stringLit(call.Args[i]); ok && isSQL(s) {
					for j := i + 1; j < len(call.Args); j++ {
						out = append(out, j)
					}
				}
			}
		}
	}
	for _, key := range fl.callees(sc, call) {
		for i := range call.Args {
			if fl.params[key][i] {
				out = append(out, i)
			}
		}
	}
	return out
}

// sqlFlow finds the names that reach SQL, to a fixed point: the values
// concatenated or formatted into a statement, and then whatever is given
// to those (assigned, ranged over, passed as an argument).
func sqlFlow(files []file) *flow {
	fl := &flow{local: map[*ast.FuncDecl]map[string]bool{}, pkg: map[string]map[string]bool{},
		params: map[string]map[int]bool{}, top: map[string]map[string]bool{}}
	for _, f := range files {
		if fl.top[f.pkg] == nil {
			fl.top[f.pkg] = map[string]bool{}
		}
		for _, d := range f.ast.Decls {
			if gd, ok := d.(*ast.GenDecl); ok && (gd.Tok == token.CONST || gd.Tok == token.VAR) {
				for _, sp := range gd.Specs {
					for _, id := range sp.(*ast.ValueSpec).Names {
						fl.top[f.pkg][id.Name] = true
					}
				}
			}
		}
	}
	for fl.changed = true; fl.changed; {
		fl.changed = false
		for _, f := range files {
			fl.walk(f, func(sc scope, n ast.Node) {
				switch n := n.(type) {
				case *ast.BinaryExpr:
					if text, values, ok := concat(n); ok && isSQL(text) {
						for _, v := range values {
							fl.mark(sc, v)
						}
					}
				case *ast.CallExpr:
					for _, i := range fl.sqlArgs(sc, n) {
						a := ast.Unparen(n.Args[i])
						if b, ok := a.(*ast.BinaryExpr); ok {
							if _, values, ok := concat(b); ok {
								for _, v := range values {
									fl.mark(sc, v)
								}
							}
							continue
						}
						fl.mark(sc, a)
					}
				case *ast.AssignStmt:
					if len(n.Lhs) == len(n.Rhs) {
						for i, l := range n.Lhs {
							if fl.reaches(sc, l) {
								fl.mark(sc, n.Rhs[i])
							}
						}
					}
				case *ast.ValueSpec:
					for i, id := range n.Names {
						if i < len(n.Values) && fl.reaches(sc, id) {
							fl.mark(sc, n.Values[i])
						}
					}
				case *ast.RangeStmt:
					if fl.reaches(sc, n.Key) || fl.reaches(sc, n.Value) {
						fl.mark(sc, n.X)
					}
				case *ast.FuncDecl:
					key := sc.f.pkg + "." + n.Name.Name
					if n.Recv != nil {
						key = sc.f.pkg + ".#" + n.Name.Name
					}
					i := 0
					for _, field := range n.Type.Params.List {
						for _, id := range field.Names {
							if fl.reaches(sc, id) {
								if fl.params[key] == nil {
									fl.params[key] = map[int]bool{}
								}
								if !fl.params[key][i] {
									fl.params[key][i], fl.changed = true, true
								}
							}
							i++
						}
						if len(field.Names) == 0 {
							i++
						}
					}
				}
			})
		}
	}
	return fl
}

// concat reads a chain of string concatenations: its text, with each
// value that is not a literal read as "_", and those values. ok is false
// when e is not a concatenation of strings.
func concat(e *ast.BinaryExpr) (text string, values []ast.Expr, ok bool) {
	if e.Op != token.ADD {
		return "", nil, false
	}
	var b strings.Builder
	lits := 0
	var walk func(x ast.Expr)
	walk = func(x ast.Expr) {
		x = ast.Unparen(x)
		if bin, isBin := x.(*ast.BinaryExpr); isBin && bin.Op == token.ADD {
			walk(bin.X)
			walk(bin.Y)
			return
		}
		if s, isLit := stringLit(x); isLit {
			b.WriteString(s)
			lits++
			return
		}
		b.WriteString("_")
		values = append(values, x)
	}
	walk(e)
	return b.String(), values, lits > 0
}

// stringLit is the value of a string literal.
func stringLit(e ast.Expr) (string, bool) {
	lit, ok := ast.Unparen(e).(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

// owners maps every table and view the migrations create to the one
// package that writes it and whose exported functions everyone else calls
// to read it. Views written by a materialized view belong with their
// target's owner. A table missing here fails the test: a new table gets an
// owner when it is created.
var owners = map[string]string{
	// The loader's tables: what was received, and how far it got.
	"events": "ingest", "events_unique": "ingest", "dead_letters": "ingest", "loader_progress": "ingest",
	"ingest_delay_minutes": "ingest", "ingest_delay_minutes_mv": "ingest", "input_lanes": "ingest", "mv_input_lanes": "ingest", "mv_input_lanes_calls": "ingest",
	"lane_watermarks": "ingest", "event_positions": "ingest", "event_positions_mv": "ingest", "pipeline_lag": "ingest",
	"late_event_minutes": "ingest", "late_event_minutes_mv": "ingest",

	// Audiences: the materialized customer state and the evaluator's output.
	"audiences": "materialize", "audience_membership": "materialize", "audience_transitions": "materialize",
	"audience_members": "materialize", "audience_size_history": "materialize", "audience_completeness": "materialize",
	"audience_entry_times": "materialize", "audience_entry_times_mv": "materialize", "audience_entry_times_first_mv": "materialize",
	"audience_transition_keys": "materialize", "audience_transition_keys_mv": "materialize", "audience_transition_keys_first_mv": "materialize",
	"membership_transitions": "materialize", "evaluator_state": "materialize", "evaluator_times": "materialize",
	"attribute_catalog": "materialize", "signal_catalog": "materialize",
	"customer_activity": "materialize", "customer_activity_seconds": "materialize", "customer_attribute_history": "materialize", "customer_attributes": "materialize",
	"customer_attributes_current": "materialize", "customer_context": "materialize", "customer_event_buckets": "materialize",
	"customer_identity": "materialize", "customer_profile": "materialize", "customer_signals": "materialize", "customer_touches": "materialize",
	"identity_claims": "materialize", "identity_links": "materialize",
	"mv_context_attribute_history": "materialize", "mv_context_attributes": "materialize", "mv_customer_activity": "materialize", "mv_customer_activity_seconds": "materialize",
	"mv_customer_event_buckets": "materialize", "mv_customer_touches": "materialize", "mv_customer_touches_alias": "materialize",
	"mv_customer_touches_partition": "materialize", "mv_customer_touches_alias_partition": "materialize",
	"mv_customer_trait_activity": "materialize", "mv_customer_trait_activity_seconds": "materialize", "mv_identity_claims": "materialize", "mv_identity_claims_alias": "materialize",
	"mv_identity_links": "materialize", "mv_identity_links_alias": "materialize",

	// Campaigns: the send ledger and the poller's positions and feeds.
	"campaigns": "trigger", "send_ledger": "trigger", "send_ledger_controls": "trigger", "ledger_sends": "trigger",
	"ledger_sends_mv": "trigger", "suppressions": "trigger", "suppressions_unsubscribe_mv": "trigger",
	"trigger_cursors": "trigger", "trigger_dead_letters": "trigger", "trigger_destinations": "trigger",
	"trigger_payloads": "trigger", "trigger_event_feed": "trigger", "trigger_event_feed_mv": "trigger", "trigger_event_feed_context_mv": "trigger",
	"trigger_transition_feed": "trigger", "trigger_transition_feed_mv": "trigger",

	// Backfill runs and their checkpoints.
	"backfill_runs": "backfill", "backfill_checkpoints": "backfill",
}

// readers may name any table: the Grafana data source's one SQL builder
// reads what dashboards show and writes nothing.
var readers = map[string]bool{"grafana/query": true}

// TestTableOwners: a table is named only by its owner package and sql/
// (production code; tests may query any table to check an outcome).
func TestTableOwners(t *testing.T) {
	tables := migrationTables(t)
	for tb := range tables {
		if owners[tb] == "" {
			t.Errorf("table %s has no owner: add it to owners in %s", tb, "internal/lint/tables_test.go")
		}
	}
	for tb := range owners {
		if !tables[tb] {
			t.Errorf("owners names %s, which no migration creates: remove it", tb)
		}
	}
	refs := tableRefs(t, moduleFiles(t), tables)
	for _, tb := range slices.Sorted(maps.Keys(tables)) {
		for _, pkg := range slices.Sorted(maps.Keys(refs[tb])) {
			if pkg == owners[tb] || readers[pkg] {
				continue
			}
			t.Errorf("package %s names table %s, owned by %s: call the owner's exported functions instead", pkg, tb, owners[tb])
		}
	}
}

// TestTableRefs: what the ownership test counts as naming a table. A
// statement, a table name given to a function that builds one, and a list
// of tables ranged over into statements count; a command, flag, field or
// progress label that happens to be a table's name does not.
func TestTableRefs(t *testing.T) {
	const src = `package x

const count = "SELECT count() FROM events WHERE lane = ?"

const lower = "select 1 from backfill_runs"

const other = "SELECT customer_id FROM %s.customer_attributes"

func wipe(ctx context.Context, conn *chdb.Conn, table string) error {
	return conn.Exec(ctx, "TRUNCATE TABLE "+table)
}

func size(ctx context.Context, conn *chdb.Conn) error {
	for _, tb := range []string{"dead_letters"} {
		if err := conn.Exec(ctx, fmt.Sprintf("OPTIMIZE TABLE %s FINAL", tb)); err != nil {
			return err
		}
	}
	q := "SELECT " + cols + "\n" +
		"FROM audience_transitions\n"
	return wipe(ctx, conn, "send_ledger"+suffix)
}

var cmd = &cobra.Command{Use: "audiences", Short: "apply audiences, read from events"}

func flags(f *pflag.FlagSet, p *progress) {
	f.String("campaigns", "", "folder of campaign definitions")
	p.Phase("load", "loader_progress", 0)
	_ = errors.New("read the rows from trigger_cursors")
}
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "x.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	tables := map[string]bool{}
	for _, tb := range []string{"events", "backfill_runs", "dead_letters", "audience_transitions", "send_ledger",
		"audiences", "campaigns", "loader_progress", "trigger_cursors", "customer_attributes"} {
		tables[tb] = true
	}
	refs := tableRefs(t, []file{{path: "cmd/x/x.go", pkg: "cmd/x", ast: f}}, tables)
	var got []string
	for tb, pkgs := range refs {
		if pkgs["cmd/x"] {
			got = append(got, tb)
		}
	}
	slices.Sort(got)
	want := []string{"audience_transitions", "backfill_runs", "customer_attributes", "dead_letters", "events", "send_ledger"}
	if !slices.Equal(got, want) {
		t.Errorf("tables named by cmd/x: got %v, want %v", got, want)
	}
}
