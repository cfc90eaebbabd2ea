// Package lint holds the house rules as tests, in the manner of pebble's
// lint tests: which package may name which ClickHouse table, that
// production code never imports test code, that only tests set the
// process environment. It has no code of its own; `go test ./internal/lint`
// runs the rules over the whole module.
package lint
