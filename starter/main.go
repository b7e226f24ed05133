// Command fkrollout (built from ./starter as bin/fkrollout) is the command
// line for release owners and SREs: engine operations against a database
// (lint, check, audit, apply, validate, verify, rollback, discover, ...) and
// rollout operations against Temporal (start, status, watch, approve, ...).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// programName is what usage text and error messages call the program,
// whatever the binary file is named.
const programName = "fkrollout"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command line and returns the process exit code. main
// and the tests both go through it, so the tests exercise the real
// command tree: parsing, help, argument checks and exit codes.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(longFlagsWithOneDash(root, args))
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetIn(os.Stdin)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	code := exitCode(err)
	fmt.Fprintf(stderr, "%s: %v\n", programName, err)
	if code == exitUsage && cmd != nil {
		fmt.Fprintf(stderr, "usage: %s\nRun '%s --help' for more.\n", cmd.UseLine(), cmd.CommandPath())
	}
	return code
}

const rootLong = `fkrollout rolls missing PostgreSQL foreign keys out to live databases through a
durable Temporal workflow (start, status, watch, approve, ...) and runs each
step against one database directly (lint, check, audit, apply, validate, ...).

Temporal commands connect with the standard TEMPORAL_* variables (and a
profile of the Temporal config file); --address, --namespace, --profile and
--config-file override them. Database commands take --dsn or FKROLLOUT_DSN.
FKROLLOUT_TRACE=otlp (or stdout) traces the Temporal calls with OpenTelemetry.

Exit codes:
  0  ok
  1  findings: the command ran and found problems (lint errors, a plan that
     does not fit the database, orphans, constraints not in place or
     misbehaving, a followed rollout or fleet that did not complete)
  2  usage: unknown command or flag, missing or extra arguments, bad values
  3  error: the command could not do its job (no connection, refused by
     the workflow or the database, a file that cannot be read or written)`

const (
	groupRollout = "rollout"
	groupFleet   = "fleet"
	groupEngine  = "engine"
	groupSetup   = "setup"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:     programName,
		Short:   "roll missing PostgreSQL foreign keys out safely",
		Long:    rootLong,
		Version: version(),
		// The root runs only for a bare "fkrollout" (help) or an unknown
		// command, which is a usage error with suggestions.
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			msg := fmt.Sprintf("unknown command %q", args[0])
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += "; did you mean " + strings.Join(s, " or ") + "?"
			}
			return usageError{msg: msg}
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmd.Help()
		},
		SilenceErrors:              true,
		SilenceUsage:               true,
		SuggestionsMinimumDistance: 2,
	}
	root.SetVersionTemplate(programName + " {{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return usageError{msg: err.Error()}
	})
	root.AddGroup(
		&cobra.Group{ID: groupRollout, Title: "Rollouts (Temporal):"},
		&cobra.Group{ID: groupFleet, Title: "Fleets of databases (Temporal):"},
		&cobra.Group{ID: groupEngine, Title: "One database, directly (engine):"},
		&cobra.Group{ID: groupSetup, Title: "Setup and other commands:"},
	)
	root.SetHelpCommandGroupID(groupSetup)
	root.SetCompletionCommandGroupID(groupSetup)
	add := func(group string, cmds ...*cobra.Command) {
		for _, c := range cmds {
			c.GroupID = group
			root.AddCommand(c)
		}
	}
	add(groupRollout, rolloutCommands()...)
	add(groupFleet, fleetCommands()...)
	add(groupEngine, engineCommands()...)
	add(groupEngine, discoverCommand())
	add(groupSetup, scheduleCommands()...)
	add(groupSetup, keyCommands()...)
	add(groupSetup, versionCommand())
	return root
}

// longFlagsWithOneDash rewrites -name to --name where name is a long flag
// of the command being run: the CLI used to parse with the flag package,
// which accepts both, and scripts written then keep working.
func longFlagsWithOneDash(root *cobra.Command, args []string) []string {
	cmd, _, err := root.Find(args)
	if err != nil || cmd == nil {
		return args
	}
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		if len(a) > 2 && a[0] == '-' && a[1] != '-' {
			name, _, _ := strings.Cut(a[1:], "=")
			if len(name) > 1 && (name == "help" || cmd.Flags().Lookup(name) != nil || cmd.InheritedFlags().Lookup(name) != nil) {
				a = "-" + a
			}
		}
		out = append(out, a)
	}
	return out
}
