package materialize

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/internal/golden"
)

// testSettings are the attribute settings the golden files were made with.
var testSettings = AttributeSettings{Declared: []string{"email"}, SetOnce: []string{"first_source"}}

func loadTestPlan(t *testing.T) *Plan {
	t.Helper()
	var auds []*Audience
	for _, dir := range []string{"audiences", "testdata/compile"} {
		a, err := LoadDefinitions(dir)
		if err != nil {
			t.Fatalf("load %s: %v", dir, err)
		}
		auds = append(auds, a...)
	}
	plan, err := Compile(auds, testSettings)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return plan
}

// TestExplainGolden pins the SQL every audience compiles to: the condition,
// the views and the evaluation query.
func TestExplainGolden(t *testing.T) {
	plan := loadTestPlan(t)
	if len(plan.Audiences) != 8 {
		t.Fatalf("compiled %d audiences, want 8", len(plan.Audiences))
	}
	for _, c := range plan.Audiences {
		t.Run(c.Audience.ID, func(t *testing.T) {
			got, err := plan.Explain(c.Audience.ID)
			if err != nil {
				t.Fatal(err)
			}
			golden.String(t, filepath.Join("explain", c.Audience.ID+".sql"), got)
		})
	}
	t.Run("views", func(t *testing.T) {
		golden.String(t, filepath.Join("explain", "views.sql"), plan.ViewsSQL())
	})
	t.Run("evaluation_query", func(t *testing.T) {
		golden.String(t, filepath.Join("explain", "all_audiences.sql"), plan.evalQuery(symbolicLow)+"\n")
	})
	// A preview before apply reads every input from events too.
	t.Run("preview_queries", func(t *testing.T) {
		p := *plan
		p.unkept = &unkept{signals: plan.Signals}
		for _, a := range plan.queryAttributes() {
			p.unkept.attributes = append(p.unkept.attributes, a.Name)
		}
		golden.String(t, filepath.Join("explain", "preview.sql"), p.evalQuery(symbolicLow)+";\n\n"+p.valuesQuery(symbolicLow)+"\n")
	})
}

func TestExplainUnknown(t *testing.T) {
	plan := loadTestPlan(t)
	if _, err := plan.Explain("nope"); !errors.Is(err, ErrUnknownAudience) {
		t.Fatalf("Explain(nope) = %v, want ErrUnknownAudience", err)
	}
}

// TestQuotingKeepsValuesLiteral checks that hostile values end up inside
// string literals, whatever they contain.
func TestQuotingKeepsValuesLiteral(t *testing.T) {
	plan := loadTestPlan(t)
	c := plan.Audience("quoting")
	if c == nil {
		t.Fatal("quoting audience missing")
	}
	want := `attr_nickname = 'O\'Brien \\ \'); DROP TABLE events; --'`
	if !strings.Contains(c.Condition, want) {
		t.Errorf("condition %q lacks the escaped literal %q", c.Condition, want)
	}
	for _, s := range c.Signals() {
		f := s.FilterSQL()
		if !strings.Contains(f, `event = 'Order Completed (v2)'`) || !strings.Contains(f, `= '50% off \'today\''`) {
			t.Errorf("signal filter does not quote the values: %s", f)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{``, `''`},
		{`plain`, `'plain'`},
		{`it's`, `'it\'s'`},
		{`back\slash`, `'back\\slash'`},
		{`\'`, `'\\\''`},
		{"ünïcode ✓", "'ünïcode ✓'"},
	} {
		if got := quote(tc.in); got != tc.want {
			t.Errorf("quote(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestSignalsAreShared(t *testing.T) {
	plan := loadTestPlan(t)
	// gold_repeat_buyers (7d) and cart_abandoners (1d) count the same
	// purchase signal; big_spenders sums it, which is another signal.
	var purchase []*Signal
	for _, s := range plan.Signals {
		if s.Event == "purchase" && len(s.Where) == 0 {
			purchase = append(purchase, s)
		}
	}
	if len(purchase) != 2 {
		t.Fatalf("got %d unfiltered purchase signals, want 2 (count and sum of amount)", len(purchase))
	}
	cols := map[string]bool{}
	for _, f := range plan.Features {
		if cols[f.Column] {
			t.Errorf("feature column %s is used twice", f.Column)
		}
		cols[f.Column] = true
	}
	for _, want := range []string{"count_purchase_7d", "count_purchase_1d", "sum_purchase_amount_30d", "count_add_to_cart_1d", "count_page_view_1d"} {
		if !cols[want] {
			t.Errorf("feature %s missing; have %v", want, cols)
		}
	}
}

func TestVersionChangesWithMeaning(t *testing.T) {
	src := "id: a\nwhen:\n  attribute: plan\n  equals: gold\n"
	a1, err := ParseAudience("a.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	a2, err := ParseAudience("a.yaml", []byte("# a comment\nid: a\nwhen: {attribute: plan, equals: gold}\n"))
	if err != nil {
		t.Fatal(err)
	}
	p1, _ := Compile([]*Audience{a1}, AttributeSettings{})
	p2, _ := Compile([]*Audience{a2}, AttributeSettings{})
	p3, _ := Compile([]*Audience{a1}, AttributeSettings{SetOnce: []string{"plan"}})
	if p1.Audiences[0].Version != p2.Audiences[0].Version {
		t.Errorf("formatting changed the version: %s vs %s", p1.Audiences[0].Version, p2.Audiences[0].Version)
	}
	if p1.Audiences[0].Version == p3.Audiences[0].Version {
		t.Error("making plan set_once did not change the version")
	}
}

func TestDuplicateIDs(t *testing.T) {
	a, _ := ParseAudience("one.yaml", []byte("id: x\nwhen: {attribute: plan, exists: true}\n"))
	b, _ := ParseAudience("two.yaml", []byte("id: x\nwhen: {attribute: plan, exists: false}\n"))
	_, err := Compile([]*Audience{a, b}, AttributeSettings{})
	if err == nil || err.Error() != `two.yaml: id: audience "x" is also defined in one.yaml: ids must be unique` {
		t.Fatalf("got %v", err)
	}
}

// TestDefinitionErrors checks that a bad definition is reported with its
// file, line, column and field, and a message that says what to do.
func TestDefinitionErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      []string
	}{
		{"unknown top-level field", "id: a\nwhen: {attribute: plan, exists: true}\ncolour: red\n",
			[]string{"f.yaml:3:1: colour: unknown field: an audience has id, name, description, when, lanes and completeness"}},
		{"missing id", "name: A\nwhen: {attribute: plan, exists: true}\n",
			[]string{"f.yaml:1:1: id: missing: give the audience an id of lower-case letters, digits and underscores, e.g. gold_repeat_buyers"}},
		{"bad id", "id: Gold-Buyers\nwhen: {attribute: plan, exists: true}\n",
			[]string{`f.yaml:1:5: id: "Gold-Buyers" is not a valid id: use lower-case letters, digits and underscores, starting with a letter (at most 63)`}},
		{"missing when", "id: a\n",
			[]string{"f.yaml:1:1: when: missing: give the membership condition, e.g. when: {attribute: plan, equals: gold}"}},
		{"two kinds", "id: a\nwhen:\n  attribute: plan\n  equals: gold\n  performed: purchase\n",
			[]string{"f.yaml:3:3: when: a condition has exactly one of all, any, not, attribute, performed or not_performed; found attribute and performed (wrap them in all: [...] or any: [...])"}},
		{"no kind", "id: a\nwhen:\n  equals: gold\n",
			[]string{"f.yaml:3:3: when: a condition needs one of all, any, not, attribute, performed or not_performed"}},
		{"bad window", "id: a\nwhen:\n  all:\n    - performed: purchase\n      within: 7days\n",
			[]string{`f.yaml:5:15: when.all[0].within: "7days" is not a duration: unknown unit "days"; write numbers each followed by a unit ms, s, m, h, d (24h) or w (7d), e.g. 15m, 7d or 1d12h`}},
		{"window unit missing", "id: a\nwhen: {performed: purchase, within: 30}\n",
			[]string{`f.yaml:2:37: when.within: "30" is not a duration: 30 has no unit; write numbers each followed by a unit ms, s, m, h, d (24h) or w (7d), e.g. 15m, 7d or 1d12h`}},
		{"count on not_performed", "id: a\nwhen:\n  not_performed: purchase\n  at_least: 2\n",
			[]string{"f.yaml:4:3: when.at_least: not_performed takes no at_least: it means zero times (use performed with at_most instead)"}},
		{"sum without bound", "id: a\nwhen:\n  performed: purchase\n  sum: amount\n",
			[]string{"f.yaml:4:8: when.sum: sum needs at_least or at_most, e.g. at_least: 500"}},
		{"lt with text", "id: a\nwhen:\n  attribute: age\n  lt: young\n",
			[]string{`f.yaml:4:7: when.lt: lt compares numbers; "young" is not a number`}},
		{"attribute without operator", "id: a\nwhen:\n  any:\n    - attribute: plan\n",
			[]string{`f.yaml:4:7: when.any[0]: attribute "plan" needs an operator: one of equals, not_equals, in, not_in, lt, lte, gt, gte, exists`}},
		{"two operators", "id: a\nwhen: {attribute: plan, equals: a, in: [b]}\n",
			[]string{"f.yaml:2:36: when.in: an attribute condition has one operator; equals is already given"}},
		{"empty all", "id: a\nwhen:\n  all: []\n",
			[]string{"f.yaml:3:8: when.all: expected a non-empty list of conditions, found a list"}},
		{"duplicate key", "id: a\nid: b\nwhen: {attribute: plan, exists: true}\n",
			[]string{`f.yaml:2:1: not valid YAML: mapping key "id" already defined at [1:1]`}},
		{"yaml syntax", "id: a\nwhen: [unclosed\n",
			nil},
		{"empty in", "id: a\nwhen: {attribute: plan, in: []}\n",
			[]string{"f.yaml:2:29: when.in: expected a non-empty list of values, e.g. [gold, silver], found a list"}},
		{"quote in event name", "id: a\nwhen: {performed: 'say \"hi\"'}\n",
			[]string{`f.yaml:2:19: when.performed: the event name "say \"hi\"" contains a quote, backslash, tab or newline, which JSON escapes: it cannot be matched`}},
		{"value ending with a backslash", "id: a\nwhen: {attribute: plan, equals: 'gold\\'}\n",
			[]string{`f.yaml:2:33: when.equals: the value "gold\\" ends with a backslash, which ClickHouse's JSON extraction does not return: it cannot be matched`}},
		{"newline in a property value", "id: a\nwhen:\n  performed: purchase\n  where:\n    - {property: sku, equals: \"a\\nb\"}\n",
			[]string{`f.yaml:5:31: when.where[0].equals: the value "a\nb" contains a tab, newline or other control character, which ClickHouse's JSON extraction does not return exactly: it cannot be matched`}},
		{"unknown performed field", "id: a\nwhen:\n  performed: purchase\n  inside: 7d\n",
			[]string{"f.yaml:4:3: when.inside: unknown field: performed takes type, where, within, at_least, at_most and sum"}},
		{"fractional count", "id: a\nwhen:\n  performed: purchase\n  at_least: 1.5\n",
			[]string{"f.yaml:4:13: when: a count bound must be a whole number, found 1.5"}},
		{"impossible bounds", "id: a\nwhen:\n  performed: purchase\n  at_least: 5\n  at_most: 2\n",
			[]string{"f.yaml:5:12: when: at_least 5 is more than at_most 2: no customer can match"}},
		{"bad type", "id: a\nwhen: {performed: x, type: identify}\n",
			[]string{`f.yaml:2:28: when.type: "identify": type is track (the default), page, screen or group`}},
		{"context field without a column", "id: a\nwhen:\n  performed: purchase\n  where:\n    - {property: context.device.type, equals: ios}\n",
			[]string{`f.yaml:5:18: when.where[0].property: "context.device.type" is not a context field audiences filter on: use one of context.campaign.content, context.campaign.medium, context.campaign.name, context.campaign.source, context.campaign.term, context.ip, context.library.name, context.library.version, context.locale, context.page.path, context.page.referrer, context.page.title, context.page.url, context.timezone, context.userAgent`}},
		{"misspelt context field", "id: a\nwhen:\n  performed: purchase\n  where:\n    - {property: context.user_agent, exists: true}\n",
			[]string{`f.yaml:5:18: when.where[0].property: "context.user_agent": the SDKs send context.userAgent`}},
		{"where not a list", "id: a\nwhen:\n  performed: purchase\n  where: {property: currency, equals: USD}\n",
			[]string{"f.yaml:4:11: when.where: expected a non-empty list of property filters, e.g. - {property: currency, equals: USD}, found a mapping"}},
		{"where without property", "id: a\nwhen:\n  performed: purchase\n  where:\n    - equals: USD\n",
			[]string{"f.yaml:5:7: when.where[0]: missing property: name the event property to filter on"}},
		{"bad attribute name", "id: a\nwhen: {attribute: first name, exists: true}\n",
			[]string{`f.yaml:2:19: when.attribute: "first name" is not a valid attribute name: use letters, digits and underscores (at most 63)`}},
		{"several errors at once", "id: a\nwhen:\n  all:\n    - performed: purchase\n      within: soon\n    - attribute: plan\n      gte: gold\n",
			[]string{
				`f.yaml:5:15: when.all[0].within: "soon" is not a duration: expected a number at "soon"; write numbers each followed by a unit ms, s, m, h, d (24h) or w (7d), e.g. 15m, 7d or 1d12h`,
				`f.yaml:7:12: when.all[1].gte: gte compares numbers; "gold" is not a number`,
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseAudience("f.yaml", []byte(tc.src))
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrInvalidDefinition) {
				t.Errorf("error %v does not wrap ErrInvalidDefinition", err)
			}
			var des DefinitionErrors
			if !errors.As(err, &des) {
				t.Fatalf("error %T is not DefinitionErrors", err)
			}
			if tc.want == nil {
				if len(des) != 1 || des[0].Line == 0 || !strings.HasPrefix(des[0].Msg, "not valid YAML: ") {
					t.Fatalf("want one YAML syntax error with a position, got %v", err)
				}
				return
			}
			var got []string
			for _, e := range des {
				got = append(got, e.Error())
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestLoadDefinitionsReportsEveryFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yaml", "id: a\nwhen: {attribute: plan, exists: maybe}\n")
	write("b.yml", "id: b\nwhen: {performed: x, within: 0s}\n")
	write("c.yaml", "id: c\nwhen: {attribute: plan, equals: gold}\n")
	write("notes.txt", "not an audience")
	_, err := LoadDefinitions(dir)
	var des DefinitionErrors
	if !errors.As(err, &des) || len(des) != 2 {
		t.Fatalf("want 2 definition errors, got %v", err)
	}
	if !strings.HasSuffix(des[0].File, "a.yaml") || des[0].Field != "when.exists" ||
		!strings.HasSuffix(des[1].File, "b.yml") || des[1].Field != "when.within" {
		t.Errorf("errors name the wrong files or fields: %v", err)
	}
	if _, err := LoadDefinitions(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "materialize.audiences_dir") {
		t.Errorf("missing folder: %v", err)
	}
}

func TestParseWindow(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"7d", 7 * 24 * time.Hour, false},
		{"1w", 7 * 24 * time.Hour, false},
		{"1d12h", 36 * time.Hour, false},
		{"90m", 90 * time.Minute, false},
		{"45s", 45 * time.Second, false},
		{"", 0, true},
		{"0s", 0, true},
		{"7", 0, true},
		{"d", 0, true},
		{"1.5d", 36 * time.Hour, false},
		{"1.5s", 0, true},
		{"500ms", 0, true},
		{"7y", 0, true},
		{"3651d", 0, true},
	} {
		got, err := parseWindow(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("parseWindow(%q) = %v, %v", tc.in, got, err)
		}
	}
	for d, want := range map[time.Duration]string{0: "ever", 36 * time.Hour: "36h", 48 * time.Hour: "2d", 90 * time.Minute: "90m", 61 * time.Second: "61s"} {
		if got := FormatWindow(d); got != want {
			t.Errorf("FormatWindow(%v) = %s, want %s", d, got, want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	c := DefaultConfig()
	c.Attributes = []string{"ok", "not ok"}
	c.Lanes = []string{"web", "mobile"}
	c.Interval = 0
	c.TouchOverlap = 100 * time.Millisecond
	err := c.Validate()
	for _, want := range []string{`"not ok" is not a valid attribute name`, `"mobile" is not a lane`, "materialize.interval must be positive", "touch_overlap must be at least 1s"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
}
