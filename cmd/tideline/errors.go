package main

import (
	"encoding/json"
	"errors"
	"os"

	"github.com/spf13/cobra"
)

// Exit codes, documented in the README and the root command's help.
const (
	exitOK      = 0
	exitFailure = 1
	// exitUsage: a flag, argument or setting was wrong; nothing ran.
	exitUsage = 2
	// exitPending: `backfill plan` found something to do (as `diff` and
	// `terraform plan -detailed-exitcode` do), so scripts can branch on it.
	exitPending = 3
)

// errSilent ends a command whose failure was already reported.
var errSilent = errors.New("failed")

// errPending ends `backfill plan` when the plan is not empty; its summary
// already said what it found.
var errPending = errors.New("the plan found something to do")

// usageError marks a mistake in how tideline was called.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usage(err error) error {
	if err == nil {
		return nil
	}
	return usageError{err}
}

// exitCode maps what a command returned to the process's exit status.
func exitCode(err error) int {
	var u usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errPending):
		return exitPending
	case errors.As(err, &u):
		return exitUsage
	default:
		return exitFailure
	}
}

// markUsage makes argument errors of cmd and its children usage errors.
func markUsage(cmd *cobra.Command) {
	if args := cmd.Args; args != nil {
		cmd.Args = func(c *cobra.Command, a []string) error { return usage(args(c, a)) }
	}
	for _, c := range cmd.Commands() {
		markUsage(c)
	}
}

// writeJSON prints v as indented JSON on stdout, the shape every --json takes.
func writeJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
