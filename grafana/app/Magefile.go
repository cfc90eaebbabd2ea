//go:build mage

// Builds the plugin's backend with Grafana's plugin tooling (mage and grafana-plugin-sdk-go/build).
package main

import (
	"github.com/magefile/mage/mg"

	// mage:import
	"github.com/grafana/grafana-plugin-sdk-go/build"
)

// The backend's code lives in the root module; go.mod reaches it through a
// replace directive, so it builds with the root module's dependency versions.
const backendPackage = "github.com/tideline-dev/tideline/cmd/gpx_tideline"

func init() {
	_ = build.SetBeforeBuildCallback(func(cfg build.Config) (build.Config, error) {
		cfg.RootPackagePath = backendPackage
		// The manifest step calls back with an empty Config: only builds
		// have an environment to add to.
		if cfg.Env != nil {
			// Paths of the machine that built it have no business in a shipped binary.
			cfg.Env["GOFLAGS"] = "-trimpath"
		}
		return cfg, nil
	})
}

// Default is what `go tool mage` builds.
var Default = Backends

// Backends builds the backend for every platform the archive ships into dist/, named
// <plugin.json executable>_<os>_<arch>, and writes dist/go_plugin_build_manifest. One
// after the other: each build already uses every core.
func Backends() {
	b := build.Build{}
	mg.SerialDeps(b.Linux, b.LinuxARM64, b.DarwinARM64)
}
