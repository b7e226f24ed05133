package main

import "errors"

// Exit codes, documented in the root help and README.
const (
	exitOK       = 0
	exitFindings = 1
	exitUsage    = 2
	exitError    = 3
)

// usageError is bad command-line input: an unknown flag or command, a
// missing or extra argument, a value out of range. Exit 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// findingsError means the command did its job and found problems the
// caller must act on (orphans, lint errors, a rollout that failed). Exit 1,
// so scripts can tell "found something" from "could not look" (exit 3).
type findingsError struct{ msg string }

func (e findingsError) Error() string { return e.msg }

// exitCode maps an error to the process exit code; anything untyped is a
// failure to do the job (exit 3).
func exitCode(err error) int {
	var u usageError
	var f findingsError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &u):
		return exitUsage
	case errors.As(err, &f):
		return exitFindings
	}
	return exitError
}
