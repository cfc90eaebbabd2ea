// Package links builds URLs into the dashboards tideline provisions. It
// depends on nothing, so the CLI can print a dashboard link without linking
// the dashboard builders.
package links

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// IncidentUID is the incident dashboard's uid, stable across provisioning.
const IncidentUID = "tideline-incident"

// IncidentURL is the incident dashboard of the Grafana at base (e.g.
// http://localhost:3000) over [from, to): what a backfill plan's window
// links to, so that the people applying it see what the window looked like.
func IncidentURL(base string, from, to time.Time) string {
	v := url.Values{}
	v.Set("from", fmt.Sprint(from.UnixMilli()))
	v.Set("to", fmt.Sprint(to.UnixMilli()))
	return strings.TrimRight(base, "/") + "/d/" + IncidentUID + "/incident?" + v.Encode()
}
