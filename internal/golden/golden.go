// Package golden compares test output with files under the test package's
// testdata directory, and rewrites them when the tests run with -update:
//
//	go test ./materialize -run TestExplainGolden -update
//
// Reviewing the rewritten files' diff is the review of the change. Only
// tests import this package: it registers the -update flag.
package golden

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// Update reports whether the tests run with -update, for a test that keeps
// a golden text somewhere other than testdata (the README's settings table).
func Update() bool { return *update }

// Check compares got with testdata/name, or writes it there with -update.
func Check(t testing.TB, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", filepath.FromSlash(name))
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run '%s' -update in the package to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run go test -run '%s' -update in the package if the change is intended, and review the diff)\n--- got\n%s\n--- want\n%s", path, t.Name(), got, want)
	}
}

// String is Check for text.
func String(t testing.TB, name, got string) {
	t.Helper()
	Check(t, name, []byte(got))
}
