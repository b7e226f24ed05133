package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/fkrollout/fkrollout/internal/engine/discover"
)

// discoverFlags are discover's own flags beside the shared --dsn/--json.
type discoverFlags struct {
	*engineFlags
	opts       discover.Options
	schemas    string
	out        string
	force      bool
	nearMisses bool
	quiet      bool
}

func newDiscoverFlags(cmd *cobra.Command) *discoverFlags {
	f := &discoverFlags{engineFlags: newEngineFlags(cmd.Flags()).withDB()}
	fs := f.fs
	fs.StringVar(&f.schemas, "schemas", "", "comma-separated schemas to search (default: every user schema but fkrollout)")
	fs.Float64Var(&f.opts.Threshold, "threshold", discover.DefaultThreshold, "confidence (0..1] a candidate needs to be accepted")
	fs.StringVar(&f.out, "out", "", "write the migration here (an existing file is refused without --force)")
	fs.BoolVar(&f.force, "force", false, "overwrite the --out file")
	fs.StringVar(&f.opts.MigrationName, "name", discover.DefaultMigrationName, "migration name written in the file")
	fs.IntVar(&f.opts.SampleSize, "sample", discover.DefaultSampleSize, "distinct values screened per column")
	fs.Int64Var(&f.opts.SampleRowsAbove, "sample-rows-above", discover.DefaultSampleRowsAbove, "tables with more rows are screened through TABLESAMPLE")
	fs.DurationVar(&f.opts.StatementTimeout, "timeout", discover.DefaultStatementTimeout, "statement_timeout of each query")
	fs.DurationVar(&f.opts.LockTimeout, "lock-timeout", discover.DefaultLockTimeout, "lock_timeout of each query")
	fs.IntVar(&f.opts.Concurrency, "parallel", discover.DefaultConcurrency, "queries running at once")
	fs.BoolVar(&f.nearMisses, "near-misses", false, "also list the candidates below the threshold")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress on stderr")
	return f
}

// checkValues refuses values the run would reject later, as usage errors.
func (f *discoverFlags) checkValues() error {
	o := f.opts
	switch {
	case o.Threshold <= 0 || o.Threshold > 1:
		return usageError{fmt.Sprintf("--threshold must be in (0, 1], got %g", o.Threshold)}
	case o.SampleSize < 1:
		return usageError{fmt.Sprintf("--sample must be at least 1, got %d", o.SampleSize)}
	case o.SampleRowsAbove < 1:
		return usageError{fmt.Sprintf("--sample-rows-above must be at least 1, got %d", o.SampleRowsAbove)}
	case o.StatementTimeout <= 0 || o.LockTimeout <= 0:
		return usageError{"--timeout and --lock-timeout must be positive"}
	case o.Concurrency < 1:
		return usageError{fmt.Sprintf("--parallel must be at least 1, got %d", o.Concurrency)}
	}
	for _, s := range strings.Split(f.schemas, ",") {
		if s = strings.TrimSpace(s); s != "" {
			f.opts.Schemas = append(f.opts.Schemas, s)
		}
	}
	return nil
}

func discoverCommand() *cobra.Command {
	cmd := engineCmd("discover [--dsn DSN]", "find missing foreign keys and write a prioritised migration",
		"  fkrollout discover --dsn \"$DSN\" --out discovered.sql\n  fkrollout lint --plan discovered.sql --strict && fkrollout check --plan discovered.sql --dsn \"$DSN\"")
	f := newDiscoverFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return runDiscover(cmd.Context(), f, cmd.OutOrStdout(), cmd.ErrOrStderr())
	}
	return cmd
}

func runDiscover(ctx context.Context, f *discoverFlags, stdout, stderr io.Writer) error {
	if err := f.checkValues(); err != nil {
		return err
	}
	// Refuse before the (possibly long) run, not after it.
	if f.out != "" && !f.force {
		if _, err := os.Stat(f.out); err == nil {
			return fmt.Errorf("%s exists; pass --force to overwrite it", f.out)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("check --out: %w", err)
		}
	}
	if !f.quiet {
		f.opts.Progress = func(p discover.Progress) {
			if p.Done == p.Total {
				fmt.Fprintf(stderr, "discover: %s %d/%d %s\n", p.Phase, p.Done, p.Total, p.Detail)
			}
		}
	}
	pool, err := f.connect(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	rep, err := discover.Run(ctx, pool, f.opts)
	if err != nil {
		return err
	}
	if f.out != "" && rep.Migration != "" {
		if err := writeMigration(f.out, rep.Migration, f.force); err != nil {
			return err
		}
	}
	if f.json {
		return writeJSON(stdout, rep)
	}
	printDiscovery(stdout, rep, f.nearMisses)
	switch {
	case f.out != "" && rep.Migration == "":
		fmt.Fprintf(stdout, "nothing written to %s: no candidate reaches %.2f\n", f.out, rep.Threshold)
	case f.out != "":
		fmt.Fprintf(stdout, "wrote %s (%d foreign keys); next: fkrollout lint --plan %s --strict, then fkrollout check --plan %s\n",
			f.out, len(rep.Candidates), f.out, f.out)
	}
	return nil
}

// writeMigration writes text to path; without force an existing file is
// refused (O_EXCL, so a file created meanwhile is not clobbered either).
func writeMigration(path, text string, force bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	fh, err := os.OpenFile(path, flags, 0o644)
	if err != nil {
		return fmt.Errorf("write migration: %w", err)
	}
	if _, err := fh.WriteString(text); err != nil {
		fh.Close()
		return fmt.Errorf("write migration %s: %w", path, err)
	}
	if err := fh.Close(); err != nil {
		return fmt.Errorf("write migration %s: %w", path, err)
	}
	return nil
}

func printDiscovery(w io.Writer, rep discover.Report, nearMisses bool) {
	rows := [][]string{}
	for _, c := range rep.Candidates {
		rows = append(rows, discoveryRow(strconv.Itoa(c.Rank), c))
	}
	if nearMisses {
		for _, c := range rep.NearMisses {
			rows = append(rows, discoveryRow("-", c))
		}
	}
	table(w, "RANK\tCONF\tPRIORITY\tFOREIGN KEY\tNAME\tINCLUDED\tORPHANS\tINDEX", rows)
	if nearMisses {
		for _, c := range rep.NearMisses {
			fmt.Fprintf(w, "  not accepted: %s: %s\n", c.String(), c.Reason)
		}
	}
	for _, warn := range rep.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	fmt.Fprintf(w, "%d candidate(s) at confidence >= %.2f (%d near misses; %d pairs, %d looked up, %d checked exactly) in %dms\n",
		len(rep.Candidates), rep.Threshold, len(rep.NearMisses), rep.Pairs, rep.Probed, rep.Exact, rep.DurationMS)
}

func discoveryRow(rank string, c discover.Candidate) []string {
	orphans := strconv.FormatInt(c.Orphans.Rows, 10)
	if !c.Orphans.Exact {
		orphans = "~" + strconv.FormatInt(c.Orphans.Distinct, 10) + " values"
	}
	index := "none"
	if c.Index.Supports {
		index = c.Index.Name
	}
	return []string{rank, fmt.Sprintf("%.2f", c.Confidence), c.Priority, c.String(), c.Evidence.NameMatch,
		fmt.Sprintf("%.1f%%", 100*c.Evidence.InclusionRatio), orphans, index}
}
