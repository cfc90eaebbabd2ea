// Package config fills each component's config struct from, in increasing
// order of precedence: the struct's defaults, a YAML file, TIDELINE_*
// environment variables and command-line flags. Every component keeps its own
// plain struct with defaults and Validate(); this package only layers the
// sources.
package config

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/structs"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/pflag"
)

// EnvPrefix starts every environment variable tideline reads.
const EnvPrefix = "TIDELINE_"

// Sections maps a top-level config key (e.g. "clickhouse") to a pointer to the
// struct holding its defaults; Load writes the effective values back into it.
type Sections map[string]any

// Flag binds a command-line flag to a config key such as "clickhouse.addr".
type Flag struct {
	Name string
	Key  string
}

// Load layers defaults, the YAML file at path (if not empty), environment
// variables and the flags that were set, then decodes each section.
//
// Environment variables are the key upper-cased with dots as underscores:
// clickhouse.addr is TIDELINE_CLICKHOUSE_ADDR, loader.batch_size is
// TIDELINE_LOADER_BATCH_SIZE. Lists are comma-separated.
func Load(path string, flags *pflag.FlagSet, bound []Flag, sections Sections) error {
	k := koanf.New(".")
	names := make([]string, 0, len(sections))
	for name := range sections {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		sub := koanf.New(".")
		if err := sub.Load(structs.Provider(sections[name], "koanf"), nil); err != nil {
			return fmt.Errorf("defaults of %s: %w", name, err)
		}
		if err := k.MergeAt(sub, name); err != nil {
			return fmt.Errorf("defaults of %s: %w", name, err)
		}
	}
	if path != "" {
		f := koanf.New(".")
		if err := f.Load(file.Provider(path), yaml.Parser()); err != nil {
			return fmt.Errorf("config file %s: %w", path, err)
		}
		if unknown := unknownKeys(k, f, sections); len(unknown) > 0 {
			return fmt.Errorf("config file %s: unknown keys %s: see the README for the settings", path, strings.Join(unknown, ", "))
		}
		if err := k.Merge(f); err != nil {
			return fmt.Errorf("config file %s: %w", path, err)
		}
	}
	known := map[string]string{}
	for _, key := range k.Keys() {
		known[EnvPrefix+strings.ToUpper(strings.NewReplacer(".", "_").Replace(key))] = key
	}
	var unknown []string
	err := k.Load(env.Provider(".", env.Opt{
		Prefix: EnvPrefix,
		TransformFunc: func(name, value string) (string, any) {
			key, ok := known[name]
			if !ok {
				if !ignorable(name) {
					unknown = append(unknown, name)
				}
				return "", nil
			}
			if _, isList := k.Get(key).([]any); isList || isStringList(k.Get(key)) {
				return key, strings.Split(value, ",")
			}
			return key, value
		},
	}), nil)
	if err != nil {
		return fmt.Errorf("environment: %w", err)
	}
	if len(unknown) > 0 && strictEnv() {
		return fmt.Errorf("unknown environment variables %s: see the README for the settings", strings.Join(unknown, ", "))
	}
	if flags != nil {
		for _, b := range bound {
			f := flags.Lookup(b.Name)
			if f == nil || !f.Changed {
				continue
			}
			var v any = f.Value.String()
			if sv, ok := f.Value.(pflag.SliceValue); ok {
				v = sv.GetSlice()
			}
			if err := k.Set(b.Key, v); err != nil {
				return fmt.Errorf("flag --%s: %w", b.Name, err)
			}
		}
	}
	var errs []error
	for _, name := range names {
		if err := k.UnmarshalWithConf(name, sections[name], koanf.UnmarshalConf{Tag: "koanf"}); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// unknownKeys lists the keys of file under the given sections that no
// setting has: a misspelt key in a config file is as wrong as a misspelt
// variable. Other sections belong to other commands, which check them
// (CheckFile checks them all).
func unknownKeys(defaults, file *koanf.Koanf, sections Sections) []string {
	var unknown []string
	for _, key := range file.Keys() {
		section, _, _ := strings.Cut(key, ".")
		if _, ours := sections[section]; ours && !defaults.Exists(key) {
			unknown = append(unknown, key)
		}
	}
	return unknown
}

// CheckFile reports every key of the YAML file at path that is not a
// setting of one of all, the sections of every command, so a file shared by
// several commands is checked whole whichever command reads it.
func CheckFile(path string, all Sections) error {
	if path == "" {
		return nil
	}
	defaults := koanf.New(".")
	for name, v := range all {
		sub := koanf.New(".")
		if err := sub.Load(structs.Provider(v, "koanf"), nil); err != nil {
			return fmt.Errorf("defaults of %s: %w", name, err)
		}
		if err := defaults.MergeAt(sub, name); err != nil {
			return fmt.Errorf("defaults of %s: %w", name, err)
		}
	}
	f := koanf.New(".")
	if err := f.Load(file.Provider(path), yaml.Parser()); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	var unknown []string
	for _, key := range f.Keys() {
		if !defaults.Exists(key) {
			unknown = append(unknown, key)
		}
	}
	if len(unknown) > 0 {
		return fmt.Errorf("config file %s: unknown keys %s: see the README for the settings", path, strings.Join(unknown, ", "))
	}
	return nil
}

// scriptVariables are the TIDELINE_* variables of the repository's scripts
// and test harness, which are not settings. They are named one by one: a
// prefix such as TIDELINE_KAFKA_ would also hide a misspelt kafka.* setting.
var scriptVariables = map[string]bool{
	"TIDELINE_CONFIG":                true,
	"TIDELINE_STATE_DIR":             true,
	"TIDELINE_ALLOW_UNKNOWN_ENV":     true,
	"TIDELINE_CH_TCP_PORT":           true,
	"TIDELINE_CH_HTTP_PORT":          true,
	"TIDELINE_CH_INTERSERVER_PORT":   true,
	"TIDELINE_KAFKA_PORT":            true,
	"TIDELINE_KAFKA_CONTROLLER_PORT": true,
	"TIDELINE_KAFKA_LIBS":            true,
	"TIDELINE_KAFKA_SECURE_PORT":     true,
	"TIDELINE_KAFKA_SECURE_DIR":      true,
	"TIDELINE_M2_REPO":               true,
	"TIDELINE_CHDB_VERSION":          true,
	// docker-compose.yml's own variables, read from a .env file
	"TIDELINE_CH_PASSWORD":         true,
	"TIDELINE_GRAFANA_CH_USER":     true,
	"TIDELINE_GRAFANA_CH_PASSWORD": true,
}

// ignorable reports whether an unknown TIDELINE_* variable is not meant as
// a setting: the scripts' variables, and the tests' (TIDELINE_TEST_*).
func ignorable(name string) bool {
	return scriptVariables[name] || strings.HasPrefix(name, "TIDELINE_TEST_")
}

// strictEnv rejects unknown TIDELINE_* variables, which are almost always a
// misspelt setting.
func strictEnv() bool { return os.Getenv("TIDELINE_ALLOW_UNKNOWN_ENV") == "" }

func isStringList(v any) bool {
	_, ok := v.([]string)
	return ok
}

// Keyed returns sections as nested maps under the keys the file, the
// environment and the README use (clickhouse.dial_timeout), for printing.
func Keyed(sections Sections) (map[string]any, error) {
	out := map[string]any{}
	for name, v := range sections {
		sub := koanf.New(".")
		if err := sub.Load(structs.Provider(v, "koanf"), nil); err != nil {
			return nil, fmt.Errorf("settings of %s: %w", name, err)
		}
		out[name] = sub.Raw()
	}
	return out, nil
}
