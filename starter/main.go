// Command starter is fkrollout's command line for release owners and SREs:
// engine operations against a database (audit, check, apply, validate,
// verify, rollback, generate, ...) and workflow operations against Temporal
// (start, status, approve, reject, ...).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// command is one sub-command. Engine commands live in engine_cmds.go,
// workflow commands in workflow_cmds.go, schedules in schedule_cmds.go.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmds := map[string]command{}
	for _, c := range concat(engineCommands(), workflowCommands(), scheduleCommands(), fleetCommands()) {
		cmds[c.name] = c
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout, cmds)
		return 0
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "fkrollout: unknown command %q\n\n", args[0])
		usage(stderr, cmds)
		return 2
	}
	if err := c.run(ctx, args[1:], stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "fkrollout %s: %v\n", c.name, err)
		return exitCode(err)
	}
	return 0
}

func concat(lists ...[]command) []command {
	var all []command
	for _, l := range lists {
		all = append(all, l...)
	}
	return all
}

// usageError marks bad command-line input (exit 2, not 1).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func exitCode(err error) int {
	if _, ok := err.(usageError); ok {
		return 2
	}
	return 1
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "usage: starter <command> [flags]   (each command has -h)")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-14s %s\n", n, cmds[n].summary)
	}
}
