// Package seed writes deterministic tideline data into a ClickHouse test
// database for the plugin's tests and benchmark, and keeps the same data in
// Go so that tests can compute what every query type must answer.
package seed
