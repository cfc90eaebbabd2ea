// Command gpx_tideline is the backend of tideline's Grafana data source
// (plugin id tideline-audience-datasource). Grafana starts it as a plugin
// process and talks to it over gRPC; it is not meant to be run by hand.
//
// The plugin's executables are built by grafana/app/Magefile.go with
// grafana-plugin-sdk-go/build, next to the frontend's plugin.json and named
// for the platform (gpx_tideline_linux_amd64, ...):
//
//	cd grafana/app && go tool mage -v
package main

import (
	"os"

	"github.com/grafana/grafana-plugin-sdk-go/backend/datasource"
	"github.com/grafana/grafana-plugin-sdk-go/backend/log"

	"github.com/tideline-dev/tideline/grafana/plugin"
)

func main() {
	if err := datasource.Manage(plugin.PluginID, plugin.NewDatasource, datasource.ManageOpts{}); err != nil {
		log.DefaultLogger.Error("serve plugin", "error", err)
		os.Exit(1)
	}
}
