// Command gen writes tideline's Grafana dashboards as JSON into
// grafana/dashboards and its alert rules into grafana/provisioning/alerting
// (or the folders given as its arguments):
//
//	go run ./grafana/dashboards/gen [dashboards-dir [alerting-dir]]
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/tideline-dev/tideline/grafana/alerts"
	"github.com/tideline-dev/tideline/grafana/dashboards"
)

func main() {
	dir := filepath.Join("grafana", "dashboards")
	alerting := filepath.Join("grafana", "provisioning", "alerting")
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	if len(os.Args) > 2 {
		alerting = os.Args[2]
	}
	if err := write(dir); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	if err := writeAlerts(alerting); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func write(dir string) error {
	files, err := dashboards.Files()
	if err != nil {
		return err
	}
	for name, d := range files {
		b, err := dashboards.JSON(d)
		if err != nil {
			return err
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		fmt.Println("wrote", path)
	}
	return nil
}

func writeAlerts(dir string) error {
	f, err := alerts.Rules()
	if err != nil {
		return err
	}
	b, err := alerts.JSON(f)
	if err != nil {
		return err
	}
	path := filepath.Join(dir, alerts.FileName)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	fmt.Println("wrote", path)
	return nil
}
