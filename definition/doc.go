// Package definition holds what audience and campaign files share: the
// duration grammar their windows, budgets and delays are written in, where
// a YAML node sits in its file, and the error that names a problem's file,
// line, column and field. Audiences (materialize) and campaigns (trigger)
// parse with it, so one spelling of "30d" and one form of "file:line:col:
// field: message" hold for both.
package definition
