package lint

import (
	"go/ast"
	"strconv"
	"strings"
	"testing"
)

// testOnly are the packages only tests may import: each registers test
// flags or fails a testing.TB.
var testOnly = map[string]bool{
	module + "/internal/testenv": true,
	module + "/internal/golden":  true,
	"testing":                    true,
	"net/http/httptest":          true,
}

// TestNoTestCodeInProduction: production code imports neither the test
// support packages nor a package named for tests (…test, …testing), so a
// binary never carries a fake and tests never exercise code production
// does not run. kfake is the exception that is not: it is the embedded
// broker `tideline dev` runs.
func TestNoTestCodeInProduction(t *testing.T) {
	for _, f := range moduleFiles(t) {
		if f.test || f.pkg == "internal/testenv" || f.pkg == "internal/golden" {
			continue
		}
		for _, im := range f.ast.Imports {
			path, _ := strconv.Unquote(im.Path.Value)
			last := path[strings.LastIndex(path, "/")+1:]
			if testOnly[path] || (strings.HasPrefix(path, module) && (strings.HasSuffix(last, "test") || strings.HasSuffix(last, "testing"))) {
				t.Errorf("%s imports %s: production code must not import test code", f.path, path)
			}
		}
	}
}

// TestSetenvOnlyInTests: configuration travels as values (a Config field,
// a lookup function), never through the process environment, which is
// shared by every goroutine and leaks between runs in one process.
func TestSetenvOnlyInTests(t *testing.T) {
	for _, f := range moduleFiles(t) {
		if f.test {
			continue
		}
		ast.Inspect(f.ast, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); ok && x.Name == "os" && (sel.Sel.Name == "Setenv" || sel.Sel.Name == "Unsetenv") {
				t.Errorf("%s calls os.%s: pass the value as configuration instead", f.path, sel.Sel.Name)
			}
			return true
		})
	}
}

// TestInternalIsGround: internal/ holds the ground every component stands
// on (configuration, the ClickHouse and Kafka clients, telemetry, test
// support, the demo workload) and imports no component. Assembling
// components is the job of package pipeline, above them.
func TestInternalIsGround(t *testing.T) {
	for _, f := range moduleFiles(t) {
		if !strings.HasPrefix(f.pkg, "internal/") || f.test {
			continue
		}
		for _, im := range f.ast.Imports {
			path, _ := strconv.Unquote(im.Path.Value)
			rel, ok := strings.CutPrefix(path, module+"/")
			if !ok || strings.HasPrefix(rel, "internal/") || rel == "sql" {
				continue
			}
			t.Errorf("%s imports %s: internal/ imports only internal/ and sql; move the code above the components (package pipeline)", f.path, path)
		}
	}
}
