package main

import (
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/goccy/go-yaml"
	"github.com/spf13/cobra"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/config"
)

func init() { subcommands = append(subcommands, newConfigCmd) }

// sectionDefaults returns every config section with its defaults; each
// component's section is registered here so `tideline config` and the README
// list every setting.
func sectionDefaults(a *app) config.Sections {
	col := ingest.DefaultCollectorConfig()
	ld := ingest.DefaultLoaderConfig()
	s := config.Sections{"clickhouse": &a.ch, "kafka": &a.kafka, "collector": &col, "loader": &ld}
	for name, mk := range extraSections {
		s[name] = mk()
	}
	return s
}

// extraSections are the sections of downstream components.
var extraSections = map[string]func() any{}

func newConfigCmd(a *app) *cobra.Command {
	var env, asJSON bool
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Print the effective configuration (or every setting with --env)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			sections := sectionDefaults(a)
			if env {
				return printSettings(sections)
			}
			if err := a.load(cmd, sections); err != nil {
				return err
			}
			for _, v := range sections {
				redact(reflect.ValueOf(v).Elem())
			}
			keyed, err := config.Keyed(sections)
			if err != nil {
				return err
			}
			out, err := yaml.MarshalWithOptions(keyed, yaml.UseLiteralStyleIfMultiline(true))
			if err != nil {
				return err
			}
			if asJSON {
				// Through YAML, so the keys are the ones the file and --env use.
				var m map[string]any
				if err := yaml.Unmarshal(out, &m); err != nil {
					return err
				}
				return writeJSON(m)
			}
			fmt.Print(string(out))
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the effective configuration as JSON")
	cmd.Flags().BoolVar(&env, "env", false, "list every setting as key, environment variable and default (markdown)")
	return cmd
}

// redact blanks every field tagged secret:"true" that is set, so printing
// the configuration never shows a password.
func redact(v reflect.Value) {
	if v.Kind() != reflect.Struct {
		return
	}
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		switch {
		case v.Type().Field(i).Tag.Get("secret") == "true" && f.Kind() == reflect.String && f.String() != "":
			f.SetString("(redacted)")
		case f.Kind() == reflect.Struct:
			redact(f)
		}
	}
}

type setting struct{ key, env, def, doc string }

// printSettings writes the settings table the README carries.
func printSettings(sections config.Sections) error {
	return writeSettings(os.Stdout, sections)
}

func writeSettings(out io.Writer, sections config.Sections) error {
	var rows []setting
	for name, v := range sections {
		collect(name, reflect.ValueOf(v).Elem(), &rows)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].key < rows[j].key })
	w := tabwriter.NewWriter(out, 0, 0, 1, ' ', 0)
	fmt.Fprintln(w, "| key | environment | default |")
	fmt.Fprintln(w, "|---|---|---|")
	for _, r := range rows {
		fmt.Fprintf(w, "| `%s` | `%s` | %s |\n", r.key, r.env, r.def)
	}
	return w.Flush()
}

func collect(prefix string, v reflect.Value, rows *[]setting) {
	if v.Kind() != reflect.Struct {
		*rows = append(*rows, row(prefix, v))
		return
	}
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		tag := t.Field(i).Tag.Get("koanf")
		if tag == "" || tag == "-" {
			continue
		}
		fv := v.Field(i)
		if name, _, _ := strings.Cut(tag, ","); name == "" {
			// An embedded group of settings (",flatten,squash") whose keys
			// are the section's own.
			collect(prefix, fv, rows)
			continue
		}
		key := prefix + "." + tag
		if fv.Kind() == reflect.Struct && fv.Type().String() != "time.Time" {
			collect(key, fv, rows)
			continue
		}
		*rows = append(*rows, row(key, fv))
	}
}

func row(key string, v reflect.Value) setting {
	def := fmt.Sprint(v.Interface())
	switch v.Kind() {
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Struct {
			def = fmt.Sprintf("%d entries (see the example above)", v.Len())
		} else {
			var parts []string
			for i := 0; i < v.Len(); i++ {
				parts = append(parts, fmt.Sprint(v.Index(i).Interface()))
			}
			def = strings.Join(parts, ",")
		}
	}
	if def == "" {
		def = `""`
	} else {
		def = "`" + def + "`"
	}
	return setting{key: key, env: config.EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_")), def: def}
}
