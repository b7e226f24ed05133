package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/fkrollout/fkrollout/internal/config"
	"github.com/fkrollout/fkrollout/internal/demo"
	"github.com/fkrollout/fkrollout/internal/engine/audit"
	"github.com/fkrollout/fkrollout/internal/engine/backup"
	"github.com/fkrollout/fkrollout/internal/engine/behave"
	"github.com/fkrollout/fkrollout/internal/engine/catalog"
	"github.com/fkrollout/fkrollout/internal/engine/dbx"
	"github.com/fkrollout/fkrollout/internal/engine/migrate"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/engine/sqlplan"
	"github.com/fkrollout/fkrollout/internal/engine/stats"
)

// engineCommands are the database-facing commands: each works on one
// database directly, without Temporal.
func engineCommands() []*cobra.Command {
	return []*cobra.Command{
		lintCmd(), checkCmd(), auditCmd(), remediateOrphansCmd(), applyCmd(), validateCmd(), verifyCmd(),
		rollbackCmd(), restoreCmd(), behaveCmd(), statsCmd(), indexesCmd(), backupCmd(), generateCmd(), demoDBCmd(), perfCmd(),
	}
}

// engineCmd is the shape every engine command shares: flags only (no
// positional arguments) and a body that runs after cobra parsed them.
func engineCmd(use, short, example string) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, Example: example, Args: exactArgs()}
}

// lintFile reads a plan file (type by extension) and lints it the way the
// workflow does: one parser and one rule set for every path.
func lintFile(path string, strict bool) (plan.Plan, []plan.Finding, error) {
	src, err := sqlplan.LoadSource(path)
	if err != nil {
		return plan.Plan{}, nil, err
	}
	return src.Plan, src.Lint(plan.LintOptions{Strict: strict}), nil
}

func lintErrors(fs []plan.Finding) []plan.Finding {
	var out []plan.Finding
	for _, f := range fs {
		if f.Severity == plan.SeverityError {
			out = append(out, f)
		}
	}
	return out
}

func lintErrorText(errs []plan.Finding) string {
	lines := make([]string, len(errs))
	for i, f := range errs {
		lines[i] = "  - " + f.String()
	}
	return fmt.Sprintf("plan has %d lint error(s):\n%s", len(errs), strings.Join(lines, "\n"))
}

// preflight loads and lints the plan and checks it against the database,
// reporting every problem at once before anything changes. Problems in the
// plan or the database are findings (exit 1); a failure to look is not.
func preflight(ctx context.Context, f *engineFlags, pool *pgxpool.Pool) (plan.Plan, catalog.Report, error) {
	p, findings, err := lintFile(f.planPath, f.strict)
	if err != nil {
		return plan.Plan{}, catalog.Report{}, err
	}
	errs := lintErrors(findings)
	var rep catalog.Report
	if len(p.ForeignKeys) > 0 {
		rep, err = catalog.Check(ctx, pool, p)
		if err != nil {
			return p, rep, fmt.Errorf("check plan against database: %w", err)
		}
		if rep.Err() == nil {
			// REFERENCES t without columns means t's primary key.
			if err := catalog.ResolveReferences(ctx, pool, &p); err != nil {
				return p, rep, err
			}
		}
	}
	var msgs []string
	if len(errs) > 0 {
		msgs = append(msgs, lintErrorText(errs))
	}
	if err := rep.Err(); err != nil {
		msgs = append(msgs, err.Error())
	}
	if len(msgs) > 0 {
		return p, rep, findingsError{"refusing to change the database:\n" + strings.Join(msgs, "\n")}
	}
	return p, rep, nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func table(w io.Writer, header string, rows [][]string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

func lintCmd() *cobra.Command {
	cmd := engineCmd("lint --plan FILE", "review a plan (.sql migration or .yaml) against the lint rules",
		"  fkrollout lint --plan sql/migration.sql --strict\n  fkrollout lint --rules")
	f := newEngineFlags(cmd.Flags()).withPlan()
	rules := cmd.Flags().Bool("rules", false, "list every lint rule with its default and strict severity, then exit")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		stdout := cmd.OutOrStdout()
		if *rules {
			return printRules(stdout, f.json)
		}
		if err := f.check(); err != nil {
			return err
		}
		p, findings, err := lintFile(f.planPath, f.strict)
		if err != nil {
			return err
		}
		if f.json {
			if findings == nil {
				findings = []plan.Finding{}
			}
			if err := writeJSON(stdout, map[string]any{"plan": p.Name, "foreign_keys": len(p.ForeignKeys), "findings": findings}); err != nil {
				return err
			}
		} else {
			for _, x := range findings {
				fmt.Fprintln(stdout, x.String())
			}
			fmt.Fprintf(stdout, "%s: %d foreign key(s), %d finding(s)\n", f.planPath, len(p.ForeignKeys), len(findings))
		}
		if errs := lintErrors(findings); len(errs) > 0 {
			return findingsError{fmt.Sprintf("%s: %d lint error(s)", f.planPath, len(errs))}
		}
		return nil
	}
	withInputLint(cmd, f)
	return cmd
}

// printRules lists the lint rules: id, default severity, severity under
// --strict, whether a plan or the worker may override it, and what it checks.
func printRules(stdout io.Writer, asJSON bool) error {
	rs := plan.Rules()
	if asJSON {
		return writeJSON(stdout, rs)
	}
	rows := make([][]string, 0, len(rs))
	for _, r := range rs {
		strict := string(r.Severity)
		if r.Strict {
			strict = string(plan.SeverityError)
		}
		fixed := "yes"
		if r.Fixed {
			fixed = "no"
		}
		rows = append(rows, []string{r.ID, string(r.Severity), strict, fixed, r.Description})
	}
	table(stdout, "RULE\tDEFAULT\tSTRICT\tOVERRIDABLE\tCHECKS", rows)
	return nil
}

func checkCmd() *cobra.Command {
	cmd := engineCmd("check --plan FILE [--dsn DSN]", "lint the plan and check it against the database's catalog",
		"  FKROLLOUT_DSN=postgres://… fkrollout check --plan sql/migration.sql")
	f := newEngineFlags(cmd.Flags()).withPlan().withDB()
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx, stdout := cmd.Context(), cmd.OutOrStdout()
		if err := f.check(); err != nil {
			return err
		}
		pool, err := f.connect(ctx)
		if err != nil {
			return err
		}
		defer pool.Close()
		p, rep, err := preflight(ctx, f, pool)
		if f.json {
			if jerr := writeJSON(stdout, map[string]any{"plan": p.Name, "ok": err == nil, "report": rep}); jerr != nil {
				return jerr
			}
		} else if err == nil {
			fmt.Fprintf(stdout, "ok: %d foreign key(s) of %s check out against the database\n", len(p.ForeignKeys), p.Name)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", f.planPath, err)
		}
		return nil
	}
	return cmd
}

func auditCmd() *cobra.Command {
	cmd := engineCmd("audit --plan FILE [--dsn DSN]", "count and sample orphan rows for every plan foreign key (exit 1 when there are any)",
		"  fkrollout audit --plan sql/migration.sql --dsn \"$DSN\" --json")
	f := newEngineFlags(cmd.Flags()).withPlan().withDB()
	o := audit.Options{}
	cmd.Flags().IntVar(&o.SampleLimit, "samples", 10, "orphan rows sampled per foreign key (negative: none)")
	cmd.Flags().DurationVar(&o.StatementTimeout, "timeout", 5*time.Minute, "statement_timeout of each audit statement (one chunk of a table)")
	cmd.Flags().IntVar(&o.Parallelism, "parallel", 4, "child tables audited at once")
	cmd.Flags().IntVar(&o.ChunkPages, "chunk-pages", audit.DefaultChunkPages, "heap pages of a child table read by one statement")
	cmd.Flags().DurationVar(&o.Pause, "pause", 0, "wait between two chunks of a table, to cap the load (at most 1m)")
	allow := cmd.Flags().Bool("allow-orphans", false, "exit 0 even when orphans are found")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx, stdout := cmd.Context(), cmd.OutOrStdout()
		if err := positive(cmd, "timeout", o.StatementTimeout); err != nil {
			return err
		}
		if o.Parallelism < 1 {
			return usageError{fmt.Sprintf("--parallel must be at least 1, got %d", o.Parallelism)}
		}
		if o.ChunkPages < 1 {
			return usageError{fmt.Sprintf("--chunk-pages must be at least 1, got %d", o.ChunkPages)}
		}
		if o.Pause < 0 || o.Pause > config.MaxAuditChunkPause {
			return usageError{fmt.Sprintf("--pause must be between 0 and %s, got %s", config.MaxAuditChunkPause, o.Pause)}
		}
		p, pool, err := f.open(ctx)
		if err != nil {
			return err
		}
		defer pool.Close()
		res, err := audit.Audit(ctx, pool, p.Sorted(), o)
		if err != nil {
			return err
		}
		var total int64
		var bad int
		rows := [][]string{}
		for _, r := range res {
			total += r.Orphans
			status := "PASS"
			if r.Orphans > 0 {
				bad++
				status = "FAIL"
			}
			rows = append(rows, []string{r.FK, strconv.FormatInt(r.Orphans, 10), status, strconv.FormatInt(r.DurationMS, 10) + "ms"})
		}
		if f.json {
			if err := writeJSON(stdout, map[string]any{"plan": p.Name, "orphans": total, "results": res}); err != nil {
				return err
			}
		} else {
			table(stdout, "FOREIGN KEY\tORPHANS\tSTATUS\tTIME", rows)
			for _, r := range res {
				for _, s := range r.Samples {
					fmt.Fprintf(stdout, "  orphan in %s: key=%v fk=%v\n", r.Table, s.Key, s.FK)
				}
			}
		}
		if total > 0 && !*allow {
			return findingsError{fmt.Sprintf("%d orphan row(s) in %d foreign key(s); remediate them before apply", total, bad)}
		}
		return nil
	}
	return cmd
}

// findFK picks a plan key by constraint name or by ID (schema.table.name).
func findFK(p plan.Plan, name string) (plan.ForeignKey, error) {
	var hits []plan.ForeignKey
	for _, fk := range p.ForeignKeys {
		if fk.Name == name || fk.ID() == name {
			hits = append(hits, fk)
		}
	}
	switch len(hits) {
	case 1:
		return hits[0], nil
	case 0:
		return plan.ForeignKey{}, usageError{fmt.Sprintf("--fk %q is not in the plan", name)}
	}
	return plan.ForeignKey{}, usageError{fmt.Sprintf("--fk %q names %d plan keys; use schema.table.name", name, len(hits))}
}

// remediateOrphansCmd is the direct engine operation; "remediate" is the
// workflow gate decision (cmd_rollout.go).
func remediateOrphansCmd() *cobra.Command {
	cmd := engineCmd("remediate-orphans --plan FILE --fk NAME --mode MODE --rollout-id ID",
		"delete or null one foreign key's orphans now (quarantined first)",
		"  fkrollout remediate-orphans --plan sql/plan.yaml --fk fk_punchlist_items_punchlist --mode delete --rollout-id r1")
	f := newEngineFlags(cmd.Flags()).withPlan().withDB().withRollout().withLock()
	mode := cmd.Flags().String("mode", "", "delete | delete_with_dependents | set_null (required)")
	fkName := cmd.Flags().String("fk", "", "foreign key name from the plan (required)")
	batch := cmd.Flags().Int("batch-size", 1000, "rows per transaction")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx, stdout := cmd.Context(), cmd.OutOrStdout()
		if err := f.check(); err != nil {
			return err
		}
		m := audit.Mode(*mode)
		if !m.Valid() {
			return usageError{fmt.Sprintf("--mode must be delete, delete_with_dependents or set_null, got %q", *mode)}
		}
		if *fkName == "" {
			return usageError{"--fk is required"}
		}
		if *batch < 1 {
			return usageError{fmt.Sprintf("--batch-size must be at least 1, got %d", *batch)}
		}
		pool, err := f.connect(ctx)
		if err != nil {
			return err
		}
		defer pool.Close()
		p, _, err := preflight(ctx, f, pool)
		if err != nil {
			return err
		}
		fk, err := findFK(p, *fkName)
		if err != nil {
			return err
		}
		res, err := audit.Remediate(ctx, pool, fk, m, f.rolloutID, audit.RemediateOptions{BatchSize: *batch, Lock: f.lockPolicy()})
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(stdout, res)
		}
		fmt.Fprintf(stdout, "%s: %s %d row(s) in %d batch(es); %d copied to fkrollout.quarantine (rollout %s)\n",
			res.FK, res.Mode, res.Affected, res.Batches, res.Quarantined, f.rolloutID)
		return nil
	}
	return cmd
}

func restoreCmd() *cobra.Command {
	cmd := engineCmd("restore --rollout-id ID [--dsn DSN]", "put back the rows a rollout's remediation quarantined (parents first)",
		"  fkrollout restore --rollout-id fkrollout-20260501-020000 --dsn \"$DSN\" --fk fk_punchlist_items_punchlist")
	f := newEngineFlags(cmd.Flags()).withDB().withRollout().withLock()
	runID := cmd.Flags().String("run-id", "", "only the rows this run of the rollout quarantined (default: every run's)")
	fkName := cmd.Flags().String("fk", "", "only the rows remediating this foreign key removed or changed (default: all)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx, stdout := cmd.Context(), cmd.OutOrStdout()
		if err := f.check(); err != nil {
			return err
		}
		pool, err := f.connect(ctx)
		if err != nil {
			return err
		}
		defer pool.Close()
		var restored map[string]int64
		if *fkName != "" {
			n, err := audit.RestoreRun(ctx, pool, f.lockPolicy(), f.rolloutID, *runID, *fkName)
			if err != nil {
				return err
			}
			restored = map[string]int64{*fkName: n}
		} else if restored, err = audit.RestoreAll(ctx, pool, f.lockPolicy(), f.rolloutID, *runID); err != nil {
			return err
		}
		if f.json {
			return writeJSON(stdout, map[string]any{"rollout_id": f.rolloutID, "restored": restored})
		}
		var total int64
		names := make([]string, 0, len(restored))
		for n, v := range restored {
			names = append(names, n)
			total += v
		}
		slices.Sort(names)
		for _, n := range names {
			fmt.Fprintf(stdout, "%s: %d row(s) put back\n", n, restored[n])
		}
		fmt.Fprintf(stdout, "rollout %s: %d row(s) restored from fkrollout.quarantine (parents first, one transaction)\n", f.rolloutID, total)
		return nil
	}
	return cmd
}

type migrateFn func(ctx context.Context, pool *pgxpool.Pool, p plan.Plan, o migrate.Options) ([]migrate.Result, error)

func applyCmd() *cobra.Command {
	return migrateCmd("apply --plan FILE --rollout-id ID [--dsn DSN]", "add every plan foreign key NOT VALID, in priority order",
		"  fkrollout apply --plan sql/migration.sql --rollout-id r1 --lock-timeout 500ms --attempts 8", migrate.Apply, true)
}

func validateCmd() *cobra.Command {
	return migrateCmd("validate --plan FILE [--dsn DSN]", "VALIDATE CONSTRAINT every plan foreign key",
		"  fkrollout validate --plan sql/migration.sql --quiet", migrate.Validate, false)
}

// migrateCmd is apply and validate: preflight, then the step with progress
// on stderr (stdout stays the result).
func migrateCmd(use, short, example string, fn migrateFn, needRollout bool) *cobra.Command {
	cmd := engineCmd(use, short, example)
	f := newEngineFlags(cmd.Flags()).withPlan().withDB().withLock()
	if needRollout {
		f.withRollout()
	} else {
		cmd.Flags().StringVar(&f.rolloutID, "rollout-id", "", "rollout id (optional)")
	}
	quiet := cmd.Flags().Bool("quiet", false, "no progress on stderr")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx, stdout, stderr := cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr()
		if err := f.check(); err != nil {
			return err
		}
		pool, err := f.connect(ctx)
		if err != nil {
			return err
		}
		defer pool.Close()
		p, _, err := preflight(ctx, f, pool)
		if err != nil {
			return err
		}
		o := migrate.Options{RolloutID: f.rolloutID, Lock: f.lockPolicy()}
		if !*quiet {
			o.Progress = func(e migrate.Event) {
				if e.Message != "start" {
					fmt.Fprintf(stderr, "[%d/%d] %s %s attempt %d: %s\n", e.Done, e.Total, e.Step, e.FK, e.Attempt, e.Message)
				}
			}
		}
		res, err := fn(ctx, pool, p, o)
		printResults(stdout, f.json, res)
		if err != nil {
			return fmt.Errorf("%d of %d done: %w", len(res), len(p.ForeignKeys), err)
		}
		return nil
	}
	return cmd
}

func printResults(w io.Writer, asJSON bool, res []migrate.Result) {
	if res == nil {
		res = []migrate.Result{}
	}
	if asJSON {
		_ = writeJSON(w, res)
		return
	}
	rows := [][]string{}
	for _, r := range res {
		rows = append(rows, []string{r.FK, r.Action, strconv.Itoa(r.Attempts), strconv.FormatInt(r.DurationMS, 10) + "ms", r.Note})
	}
	table(w, "FOREIGN KEY\tACTION\tATTEMPTS\tTIME\tNOTE", rows)
}

func verifyCmd() *cobra.Command {
	cmd := engineCmd("verify --plan FILE [--dsn DSN]", "show whether every plan foreign key exists, validated, as planned (exit 1 when not)",
		"  fkrollout verify --plan sql/migration.sql --json")
	f := newEngineFlags(cmd.Flags()).withPlan().withDB()
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx, stdout := cmd.Context(), cmd.OutOrStdout()
		p, pool, err := f.open(ctx)
		if err != nil {
			return err
		}
		defer pool.Close()
		vs, err := migrate.Verify(ctx, pool, p)
		if err != nil {
			return err
		}
		bad := 0
		rows := [][]string{}
		for _, v := range vs {
			ok := v.Exists && v.Validated && v.SameDefinition
			if !ok {
				bad++
			}
			rows = append(rows, []string{v.FK, yesNo(v.Exists), yesNo(v.Validated), yesNo(v.SameDefinition), v.OwnerRollout, map[bool]string{true: "OK", false: "MISSING"}[ok]})
		}
		if f.json {
			if err := writeJSON(stdout, map[string]any{"plan": p.Name, "ok": bad == 0, "constraints": vs}); err != nil {
				return err
			}
		} else {
			table(stdout, "FOREIGN KEY\tEXISTS\tVALIDATED\tAS PLANNED\tROLLOUT\tSTATUS", rows)
		}
		if bad > 0 {
			return findingsError{fmt.Sprintf("%d of %d foreign key(s) not in place (exists, validated, as planned)", bad, len(vs))}
		}
		return nil
	}
	return cmd
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func rollbackCmd() *cobra.Command {
	cmd := engineCmd("rollback --plan FILE --rollout-id ID [--dsn DSN]", "drop the plan foreign keys this rollout created",
		"  fkrollout rollback --plan sql/migration.sql --rollout-id r1")
	f := newEngineFlags(cmd.Flags()).withPlan().withDB().withRollout().withLock()
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx, stdout := cmd.Context(), cmd.OutOrStdout()
		// Rollback only needs the plan to parse: it drops what this rollout
		// owns, even when the database has drifted from the plan since.
		p, pool, err := f.open(ctx)
		if err != nil {
			return err
		}
		defer pool.Close()
		res, err := migrate.Rollback(ctx, pool, f.rolloutID, p, migrate.Options{RolloutID: f.rolloutID, Lock: f.lockPolicy()})
		printResults(stdout, f.json, res)
		if err != nil {
			return fmt.Errorf("rollback %s: %w", f.rolloutID, err)
		}
		return nil
	}
	return cmd
}

func behaveCmd() *cobra.Command {
	cmd := engineCmd("behave --plan FILE [--dsn DSN]", "prove each foreign key rejects orphans and applies its actions (exit 1 when one does not)",
		"  fkrollout behave --plan sql/migration.sql --dsn \"$DSN\"")
	f := newEngineFlags(cmd.Flags()).withPlan().withDB().withLock()
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx, stdout := cmd.Context(), cmd.OutOrStdout()
		p, pool, err := f.open(ctx)
		if err != nil {
			return err
		}
		defer pool.Close()
		res, err := behave.Run(ctx, pool, p.Sorted(), f.lockPolicy())
		if err != nil {
			return err
		}
		failed := 0
		rows := [][]string{}
		for _, r := range res {
			if !r.Passed() {
				failed++
			}
			for _, c := range r.Cases {
				rows = append(rows, []string{r.FK, c.Name, string(c.Outcome), c.Detail})
			}
		}
		if f.json {
			if err := writeJSON(stdout, res); err != nil {
				return err
			}
		} else {
			table(stdout, "FOREIGN KEY\tCASE\tOUTCOME\tDETAIL", rows)
		}
		if failed > 0 {
			return findingsError{fmt.Sprintf("%d of %d foreign key(s) misbehave", failed, len(res))}
		}
		return nil
	}
	return cmd
}

func statsCmd() *cobra.Command {
	cmd := engineCmd("stats [--dsn DSN]", "census: tables, foreign keys, CHECK constraints, unique indexes",
		"  fkrollout stats --dsn \"$DSN\" --schemas public --json")
	f := newEngineFlags(cmd.Flags()).withDB()
	schemas := cmd.Flags().String("schemas", "", "comma-separated schemas (default: all but system and fkrollout)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx, stdout := cmd.Context(), cmd.OutOrStdout()
		pool, err := f.connect(ctx)
		if err != nil {
			return err
		}
		defer pool.Close()
		snap, err := stats.Take(ctx, pool, splitList(*schemas))
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(stdout, snap)
		}
		table(stdout, "METRIC\tVALUE", [][]string{
			{"Tables", strconv.Itoa(snap.Tables)},
			{"Foreign Keys", strconv.Itoa(snap.ForeignKeys)},
			{"  validated", strconv.Itoa(snap.ForeignKeysValidated)},
			{"  NOT VALID", strconv.Itoa(snap.ForeignKeysNotValid)},
			{"CHECK Constraints", strconv.Itoa(snap.CheckConstraints)},
			{"Unique Indexes", strconv.Itoa(snap.UniqueIndexes)},
			{"Partial Unique Indexes", strconv.Itoa(snap.PartialUniqueIndexes)},
		})
		return nil
	}
	return cmd
}

func indexesCmd() *cobra.Command {
	cmd := engineCmd("indexes --plan FILE [--dsn DSN]", "report (or --create) indexes the referencing columns need",
		"  fkrollout indexes --plan sql/migration.sql --create")
	f := newEngineFlags(cmd.Flags()).withPlan().withDB()
	create := cmd.Flags().Bool("create", false, "create the missing indexes (CREATE INDEX CONCURRENTLY)")
	lockTimeout := cmd.Flags().Duration("lock-timeout", dbx.DefaultLockPolicy().LockTimeout, "lock_timeout of each CREATE INDEX")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx, stdout := cmd.Context(), cmd.OutOrStdout()
		if *lockTimeout <= 0 {
			return usageError{fmt.Sprintf("--lock-timeout must be positive, got %s", *lockTimeout)}
		}
		p, pool, err := f.open(ctx)
		if err != nil {
			return err
		}
		defer pool.Close()
		adv, err := stats.CheckIndexes(ctx, pool, p.Sorted())
		if err != nil {
			return err
		}
		created := []string{}
		if *create {
			for i, a := range adv {
				if a.Covered {
					continue
				}
				if err := stats.CreateIndex(ctx, pool, a, *lockTimeout); err != nil {
					return fmt.Errorf("created %d index(es) before failing: %w", len(created), err)
				}
				created = append(created, a.IndexName)
				adv[i].Covered, adv[i].Index = true, a.IndexName
			}
		}
		if f.json {
			return writeJSON(stdout, map[string]any{"indexes": adv, "created": created})
		}
		rows := [][]string{}
		for _, a := range adv {
			state := "covered by " + a.Index
			if !a.Covered {
				state = "MISSING: " + a.Statement
			}
			rows = append(rows, []string{a.FK, strings.Join(a.Columns, ","), state})
		}
		table(stdout, "FOREIGN KEY\tCOLUMNS\tINDEX", rows)
		if len(created) > 0 {
			fmt.Fprintf(stdout, "created %d index(es): %s\n", len(created), strings.Join(created, ", "))
		}
		return nil
	}
	return cmd
}

func backupCmd() *cobra.Command {
	cmd := engineCmd("backup --dir DIR [--dsn DSN]", "schema dump, constraint snapshot and (--full) data dump",
		"  fkrollout backup --dir /var/backups/fkrollout --label before_fks")
	f := newEngineFlags(cmd.Flags()).withDB()
	dir := cmd.Flags().String("dir", "", "output directory (required)")
	label := cmd.Flags().String("label", "fkrollout", "file name prefix")
	full := cmd.Flags().Bool("full", false, "also dump all data (custom format)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx, stdout := cmd.Context(), cmd.OutOrStdout()
		if *dir == "" {
			return usageError{"--dir is required"}
		}
		pool, err := f.connect(ctx)
		if err != nil {
			return err
		}
		defer pool.Close()
		res, err := backup.Run(ctx, pool, backup.Options{DSN: f.dsnValue(), Dir: *dir, Label: *label, Full: *full})
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(stdout, res)
		}
		rows := [][]string{}
		for _, a := range res.Artifacts {
			rows = append(rows, []string{a.Kind, a.Path, strconv.FormatInt(a.SizeBytes, 10), strconv.Itoa(a.Entries), a.SHA256})
		}
		table(stdout, "KIND\tPATH\tBYTES\tENTRIES\tSHA256", rows)
		return nil
	}
	return cmd
}

func generateCmd() *cobra.Command {
	cmd := engineCmd("generate --plan FILE --dir DIR", "write the plan as a Prisma migration directory",
		"  fkrollout generate --plan sql/plan.yaml --dir prisma/migrations --name add_master_tables_fks")
	f := newEngineFlags(cmd.Flags()).withPlan()
	dir := cmd.Flags().String("dir", "", "migrations directory, e.g. backend/prisma/migrations (required)")
	name := cmd.Flags().String("name", "", "migration name (default: the plan's name)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		stdout := cmd.OutOrStdout()
		if err := f.check(); err != nil {
			return err
		}
		if *dir == "" {
			return usageError{"--dir is required"}
		}
		p, findings, err := lintFile(f.planPath, f.strict)
		if err != nil {
			return err
		}
		if errs := lintErrors(findings); len(errs) > 0 {
			return findingsError{lintErrorText(errs)}
		}
		n := *name
		if n == "" {
			n = p.Name
		}
		path, err := plan.WriteMigration(*dir, n, p, time.Now().UTC())
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(stdout, map[string]any{"path": path, "foreign_keys": len(p.ForeignKeys)})
		}
		fmt.Fprintf(stdout, "wrote %s (%d foreign keys)\n", path, len(p.ForeignKeys))
		return nil
	}
	return cmd
}

func demoDBCmd() *cobra.Command {
	cmd := engineCmd("demo-db [--admin-dsn DSN]", "create and seed the APMS demo database; prints its DSN",
		"  fkrollout demo-db --admin-dsn postgres://postgres@127.0.0.1:5432/postgres --drop --orphans fk_vendor_master_workspace=2")
	f := newEngineFlags(cmd.Flags())
	admin := cmd.Flags().String("admin-dsn", "", "DSN of a maintenance database to create from (default $"+AdminDSNEnv+")")
	name := cmd.Flags().String("name", "fkr_demo", "database to create")
	drop := cmd.Flags().Bool("drop", false, "drop the database first when it exists")
	o := demo.Options{}
	cmd.Flags().IntVar(&o.Workspaces, "workspaces", 3, "workspaces (the first is XLSMART-AVIAT)")
	cmd.Flags().IntVar(&o.WorkflowsPerWorkspace, "workflows", 1000, "workflow instances per workspace (the scale)")
	cmd.Flags().Int64Var(&o.Seed, "seed", 1, "id seed")
	orphans := cmd.Flags().String("orphans", "", "orphans to inject: fk_name=n,fk_name=n")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx, stdout := cmd.Context(), cmd.OutOrStdout()
		if *admin == "" {
			*admin = os.Getenv(AdminDSNEnv)
		}
		if *admin == "" {
			return usageError{"no admin database: pass --admin-dsn or set " + AdminDSNEnv}
		}
		if *orphans != "" {
			o.Orphans = map[string]int{}
			for _, kv := range strings.Split(*orphans, ",") {
				k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
				n, err := strconv.Atoi(v)
				if !ok || k == "" || err != nil || n < 0 {
					return usageError{fmt.Sprintf("--orphans: %q is not fk_name=count", kv)}
				}
				o.Orphans[k] += n
			}
		}
		if o.Workspaces < 1 || o.WorkflowsPerWorkspace < 0 {
			return usageError{"--workspaces must be at least 1 and --workflows not negative"}
		}
		start := time.Now()
		dsn, err := demo.CreateDatabase(ctx, *admin, *name, *drop)
		if err != nil {
			if !*drop {
				return fmt.Errorf("%w (pass --drop to recreate it)", err)
			}
			return err
		}
		pool, err := pgxpool.New(ctx, dsn)
		if err != nil {
			return fmt.Errorf("connect to %s: %w", *name, err)
		}
		defer pool.Close()
		if err := demo.Setup(ctx, pool); err != nil {
			return err
		}
		counts, err := demo.Seed(ctx, pool, o)
		if err != nil {
			return err
		}
		shown := redactDSN(dsn)
		if f.json {
			return writeJSON(stdout, map[string]any{"database": *name, "dsn": shown, "counts": counts, "duration_ms": time.Since(start).Milliseconds()})
		}
		rows := [][]string{}
		for _, t := range demo.Tables {
			rows = append(rows, []string{t, strconv.FormatInt(counts[t], 10)})
		}
		table(stdout, "TABLE\tROWS", rows)
		fmt.Fprintf(stdout, "seeded %s in %s\n%s\n", *name, time.Since(start).Round(time.Millisecond), shown)
		return nil
	}
	return cmd
}

// redactDSN hides a password; the demo database's DSN is otherwise printed
// so it can be exported as FKROLLOUT_DSN.
func redactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "REDACTED")
		}
		return u.String()
	}
	if strings.Contains(dsn, "password=") {
		return "(keyword DSN with a password: the admin DSN with dbname set)"
	}
	return dsn
}
