package trigger

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDecideReadsNoClock checks that Decide depends on time only through
// Input.NowMs: no function Decide can reach within this package calls the
// wall clock (time.Now, time.Since, time.Until, chdb.NowMs), randomness or
// I/O. Every caller (poller, backfill, explain) then gets the same decision
// for the same input, and tests can put the clock anywhere.
func TestDecideReadsNoClock(t *testing.T) {
	fset := token.NewFileSet()
	funcs := map[string]*ast.FuncDecl{}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok {
				funcs[fd.Name.Name] = fd
			}
		}
	}
	forbidden := map[string]bool{
		"time.Now": true, "time.Since": true, "time.Until": true, "time.After": true, "time.Sleep": true, "time.NewTimer": true,
		"chdb.NowMs": true, "rand.Int": true, "rand.Float64": true, "os.Getenv": true, "os.ReadFile": true, "http.Get": true,
	}
	seen := map[string]bool{}
	var visit func(name, path string)
	visit = func(name, path string) {
		fd := funcs[name]
		if fd == nil || seen[name] || fd.Body == nil {
			return
		}
		seen[name] = true
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.SelectorExpr:
				// A forbidden function, called or taken as a value.
				if id, ok := x.X.(*ast.Ident); ok {
					if q := id.Name + "." + x.Sel.Name; forbidden[q] {
						t.Errorf("%s uses %s (reached by %s): decisions must take time only from Input.NowMs", name, q, path)
					}
				}
			case *ast.CallExpr:
				// Functions and methods of this package, by name (a method
				// shares its name with any function of that name: the walk
				// may visit more than Decide reaches, never less).
				switch f := x.Fun.(type) {
				case *ast.Ident:
					visit(f.Name, path+" > "+f.Name)
				case *ast.SelectorExpr:
					visit(f.Sel.Name, path+" > "+f.Sel.Name)
				}
			}
			return true
		})
	}
	visit("Decide", "Decide")
	if !seen["quietUntil"] || !seen["customerLocation"] {
		t.Fatalf("the walk missed Decide's callees (saw %d functions)", len(seen))
	}
}
