// Command gen writes tideline's Grafana dashboards as JSON into
// grafana/dashboards (or the folder given as its argument):
//
//	go run ./grafana/dashboards/gen
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/tideline-dev/tideline/grafana/dashboards"
)

func main() {
	dir := filepath.Join("grafana", "dashboards")
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	if err := write(dir); err != nil {
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
