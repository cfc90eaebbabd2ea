package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The archive's executables are built by grafana/app/Magefile.go from the
// grafana/app module, which reaches this package through a replace of the root
// module. Go picks each dependency's highest version over both modules, so a
// dependency raised in grafana/app/go.mod alone would ship in the plugin but
// never be tested here; a root dependency missing from grafana/app/go.sum
// would break the plugin build.
func TestPluginModuleBuildsWithRootVersions(t *testing.T) {
	const pkg = "github.com/tideline-dev/tideline/cmd/gpx_tideline"
	root := moduleVersions(t, "../..", pkg)
	app := moduleVersions(t, "../../grafana/app", pkg)
	for path, v := range root {
		if app[path] != v {
			t.Errorf("%s: %s in the root module, %q when grafana/app builds the plugin", path, v, app[path])
		}
	}
	for path, v := range app {
		if _, ok := root[path]; !ok {
			t.Errorf("%s %s: in the plugin built from grafana/app only", path, v)
		}
	}
	if len(root) == 0 {
		t.Fatal("no dependency modules listed")
	}
}

// moduleVersions lists the modules pkg is compiled from when built in dir,
// with their versions and replacements, other than tideline's own.
func moduleVersions(t *testing.T, dir, pkg string) map[string]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-f", "{{with .Module}}{{.Path}} {{.Version}}{{with .Replace}} => {{.Path}} {{.Version}}{{end}}{{end}}", pkg)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list in %s: %v\n%s (after changing the root module's dependencies, run go mod tidy in grafana/app)", dir, err, out)
	}
	versions := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if path, v, ok := strings.Cut(line, " "); ok && path != "github.com/tideline-dev/tideline" {
			versions[path] = v
		}
	}
	return versions
}
