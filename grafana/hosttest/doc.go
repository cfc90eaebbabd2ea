// Package hosttest runs the plugin the way Grafana does: it builds the
// gpx_tideline binary, starts it with hashicorp/go-plugin's client and the
// SDK's grpcplugin handshake, and talks to it over gRPC only: CheckHealth,
// QueryData for every query type and every panel of the generated
// dashboards (Arrow frames decoded and checked against the seeded data),
// the resources, and the live stream. It holds only tests.
package hosttest
