package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
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

// DSNEnv is read when --dsn is not given, so the DSN stays out of shell
// history and process listings. It is never printed.
const DSNEnv = "FKROLLOUT_DSN"

// AdminDSNEnv is read by demo-db when --admin-dsn is not given.
const AdminDSNEnv = "FKROLLOUT_ADMIN_DSN"

// engineCommands are the database-facing commands.
func engineCommands() []command {
	return []command{
		{"lint", "review a plan (.sql migration or .yaml) like the seeds' checklist", cmdLint},
		{"check", "lint the plan and check it against the database's catalog", cmdCheck},
		{"audit", "count and sample orphan rows for every plan foreign key", cmdAudit},
		// "remediate" is the workflow gate decision (workflow_cmds.go); this is
		// the direct engine operation.
		{"remediate-orphans", "delete or null one foreign key's orphans now (quarantined first)", cmdRemediate},
		{"apply", "add every plan foreign key NOT VALID, in priority order", cmdApply},
		{"validate", "VALIDATE CONSTRAINT every plan foreign key", cmdValidate},
		{"verify", "show whether every plan foreign key exists, validated, as planned", cmdVerify},
		{"rollback", "drop the plan foreign keys this rollout created", cmdRollback},
		{"restore", "put back the rows a rollout's remediation quarantined (parents first)", cmdRestore},
		{"behave", "prove each foreign key rejects orphans and applies its actions", cmdBehave},
		{"stats", "census: tables, foreign keys, CHECK constraints, unique indexes", cmdStats},
		{"indexes", "report (or --create) indexes the referencing columns need", cmdIndexes},
		{"backup", "schema dump, constraint snapshot and (--full) data dump", cmdBackup},
		{"generate", "write the plan as a Prisma migration directory", cmdGenerate},
		{"demo-db", "create and seed the APMS demo database; prints its DSN", cmdDemoDB},
		{"discover", "find missing foreign keys and write a prioritised migration", cmdDiscover},
	}
}

// engineFlags are the flags most engine commands share.
type engineFlags struct {
	fs          *flag.FlagSet
	planPath    string
	dsn         string
	json        bool
	rolloutID   string
	needRollout bool
	lockTimeout time.Duration
	attempts    int
	// strict lints with the rules that the rollout makes safe as errors.
	strict bool
}

func newEngineFlags(name string, stderr io.Writer) *engineFlags {
	f := &engineFlags{fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	f.fs.SetOutput(stderr)
	f.fs.BoolVar(&f.json, "json", false, "machine-readable JSON output")
	return f
}

func (f *engineFlags) withPlan() *engineFlags {
	f.fs.StringVar(&f.planPath, "plan", "", "plan file: migration .sql or .yaml/.json, type by extension (required)")
	f.fs.BoolVar(&f.strict, "strict", false, "lint strictly: missing NOT VALID, ON DELETE, names and referenced columns are errors")
	return f
}

func (f *engineFlags) withDB() *engineFlags {
	f.fs.StringVar(&f.dsn, "dsn", "", "database DSN (default $"+DSNEnv+")")
	return f
}

func (f *engineFlags) withLock() *engineFlags {
	d := dbx.DefaultLockPolicy()
	f.fs.DurationVar(&f.lockTimeout, "lock-timeout", d.LockTimeout, "lock_timeout of each DDL attempt")
	f.fs.IntVar(&f.attempts, "attempts", d.Attempts, "tries per statement when the lock times out")
	return f
}

func (f *engineFlags) withRollout() *engineFlags {
	f.fs.StringVar(&f.rolloutID, "rollout-id", "", "rollout id recorded as the constraints' owner (required)")
	f.needRollout = true
	return f
}

// parse parses args; -h prints usage and yields errHelp (exit 0).
func (f *engineFlags) parse(args []string) error {
	if err := f.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return usageError{err.Error()}
	}
	if f.fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", f.fs.Arg(0))}
	}
	if f.fs.Lookup("plan") != nil && f.planPath == "" {
		return usageError{"--plan is required"}
	}
	if f.needRollout && strings.TrimSpace(f.rolloutID) == "" {
		return usageError{"--rollout-id is required"}
	}
	if f.fs.Lookup("attempts") != nil {
		if f.attempts < 1 {
			return usageError{fmt.Sprintf("--attempts must be at least 1, got %d", f.attempts)}
		}
		if f.lockTimeout <= 0 {
			return usageError{fmt.Sprintf("--lock-timeout must be positive, got %s", f.lockTimeout)}
		}
	}
	return nil
}

func (f *engineFlags) lockPolicy() dbx.LockPolicy {
	p := dbx.DefaultLockPolicy()
	p.LockTimeout, p.Attempts = f.lockTimeout, f.attempts
	return p
}

// errHelp ends a command after -h without an error message.
var errHelp = errors.New("help requested")

// wrap turns errHelp into success.
func wrap(fn func(ctx context.Context, args []string, stdout, stderr io.Writer) error) func(context.Context, []string, io.Writer, io.Writer) error {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		if err := fn(ctx, args, stdout, stderr); err != nil && !errors.Is(err, errHelp) {
			return err
		}
		return nil
	}
}

// open parses the flags, loads the plan and connects: the start of every
// command that reads a plan and a database. The caller closes the pool.
func (f *engineFlags) open(ctx context.Context, args []string) (plan.Plan, *pgxpool.Pool, error) {
	if err := f.parse(args); err != nil {
		return plan.Plan{}, nil, err
	}
	p, err := sqlplan.Load(f.planPath)
	if err != nil {
		return plan.Plan{}, nil, err
	}
	pool, err := f.connect(ctx)
	if err != nil {
		return plan.Plan{}, nil, err
	}
	// REFERENCES t without columns means t's primary key.
	if err := catalog.ResolveReferences(ctx, pool, &p); err != nil {
		pool.Close()
		return plan.Plan{}, nil, err
	}
	return p, pool, nil
}

// connect opens a pool from --dsn or $FKROLLOUT_DSN. Errors never contain
// the DSN itself.
func (f *engineFlags) connect(ctx context.Context) (*pgxpool.Pool, error) {
	dsn := f.dsn
	if dsn == "" {
		dsn = os.Getenv(DSNEnv)
	}
	if dsn == "" {
		return nil, usageError{"no database: pass --dsn or set " + DSNEnv}
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, usageError{"the database DSN does not parse (check --dsn / " + DSNEnv + ")"}
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to database %s: %w", cfg.ConnConfig.Database, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database %s on %s: %w", cfg.ConnConfig.Database, cfg.ConnConfig.Host, err)
	}
	return pool, nil
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

func findingsError(errs []plan.Finding) error {
	lines := make([]string, len(errs))
	for i, f := range errs {
		lines[i] = "  - " + f.String()
	}
	return fmt.Errorf("plan has %d lint error(s):\n%s", len(errs), strings.Join(lines, "\n"))
}

// preflight loads and lints the plan and checks it against the database,
// reporting every problem at once before anything changes.
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
		msgs = append(msgs, findingsError(errs).Error())
	}
	if err := rep.Err(); err != nil {
		msgs = append(msgs, err.Error())
	}
	if len(msgs) > 0 {
		return p, rep, fmt.Errorf("refusing to change the database:\n%s", strings.Join(msgs, "\n"))
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

var cmdLint = wrap(func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newEngineFlags("lint", stderr).withPlan()
	f.fs.Bool("rules", false, "list every lint rule with its default and strict severity, then exit")
	if slices.Contains(args, "--rules") || slices.Contains(args, "-rules") {
		return printRules(stdout, f, args)
	}
	if err := f.parse(args); err != nil {
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
		return fmt.Errorf("%s: %d lint error(s)", f.planPath, len(errs))
	}
	return nil
})

// printRules lists the lint rules: id, default severity, severity under
// --strict, whether a plan or the worker may override it, and what it checks.
func printRules(stdout io.Writer, f *engineFlags, args []string) error {
	_ = f.fs.Parse(args)
	rs := plan.Rules()
	if f.json {
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

var cmdCheck = wrap(func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newEngineFlags("check", stderr).withPlan().withDB()
	if err := f.parse(args); err != nil {
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
})

var cmdAudit = wrap(func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newEngineFlags("audit", stderr).withPlan().withDB()
	o := audit.Options{}
	f.fs.IntVar(&o.SampleLimit, "samples", 10, "orphan rows sampled per foreign key (negative: none)")
	f.fs.DurationVar(&o.StatementTimeout, "timeout", 5*time.Minute, "statement_timeout of each audit query")
	f.fs.IntVar(&o.Parallelism, "parallel", 4, "foreign keys audited at once")
	allow := f.fs.Bool("allow-orphans", false, "exit 0 even when orphans are found")
	p, pool, err := f.open(ctx, args)
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
		return fmt.Errorf("%d orphan row(s) in %d foreign key(s); remediate them before apply", total, bad)
	}
	return nil
})

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

var cmdRemediate = wrap(func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newEngineFlags("remediate-orphans", stderr).withPlan().withDB().withRollout().withLock()
	mode := f.fs.String("mode", "", "delete | delete_with_dependents | set_null (required)")
	fkName := f.fs.String("fk", "", "foreign key name from the plan (required)")
	batch := f.fs.Int("batch-size", 1000, "rows per transaction")
	if err := f.parse(args); err != nil {
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
})

var cmdRestore = wrap(func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newEngineFlags("restore", stderr).withDB().withRollout()
	runID := f.fs.String("run-id", "", "only the rows this run of the rollout quarantined (default: every run's)")
	fkName := f.fs.String("fk", "", "only the rows remediating this foreign key removed or changed (default: all)")
	if err := f.parse(args); err != nil {
		return err
	}
	pool, err := f.connect(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	var restored map[string]int64
	if *fkName != "" {
		n, err := audit.RestoreRun(ctx, pool, dbx.DefaultLockPolicy(), f.rolloutID, *runID, *fkName)
		if err != nil {
			return err
		}
		restored = map[string]int64{*fkName: n}
	} else if restored, err = audit.RestoreAll(ctx, pool, dbx.DefaultLockPolicy(), f.rolloutID, *runID); err != nil {
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
})

type migrateFn func(ctx context.Context, pool *pgxpool.Pool, p plan.Plan, o migrate.Options) ([]migrate.Result, error)

// runMigrate is apply and validate: preflight, then the step with progress
// on stderr (stdout stays the result).
func runMigrate(name string, fn migrateFn, needRollout bool) func(context.Context, []string, io.Writer, io.Writer) error {
	return wrap(func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		f := newEngineFlags(name, stderr).withPlan().withDB().withLock()
		if needRollout {
			f.withRollout()
		} else {
			f.fs.StringVar(&f.rolloutID, "rollout-id", "", "rollout id (optional)")
		}
		quiet := f.fs.Bool("quiet", false, "no progress on stderr")
		if err := f.parse(args); err != nil {
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
	})
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

var (
	cmdApply    = runMigrate("apply", migrate.Apply, true)
	cmdValidate = runMigrate("validate", migrate.Validate, false)
)

var cmdVerify = wrap(func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newEngineFlags("verify", stderr).withPlan().withDB()
	p, pool, err := f.open(ctx, args)
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
		return fmt.Errorf("%d of %d foreign key(s) not in place (exists, validated, as planned)", bad, len(vs))
	}
	return nil
})

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

var cmdRollback = wrap(func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newEngineFlags("rollback", stderr).withPlan().withDB().withRollout().withLock()
	// Rollback only needs the plan to parse: it drops what this rollout
	// owns, even when the database has drifted from the plan since.
	p, pool, err := f.open(ctx, args)
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
})

var cmdBehave = wrap(func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newEngineFlags("behave", stderr).withPlan().withDB()
	p, pool, err := f.open(ctx, args)
	if err != nil {
		return err
	}
	defer pool.Close()
	res, err := behave.Run(ctx, pool, p.Sorted(), dbx.DefaultLockPolicy())
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
		return fmt.Errorf("%d of %d foreign key(s) misbehave", failed, len(res))
	}
	return nil
})

var cmdStats = wrap(func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newEngineFlags("stats", stderr).withDB()
	schemas := f.fs.String("schemas", "", "comma-separated schemas (default: all but system and fkrollout)")
	if err := f.parse(args); err != nil {
		return err
	}
	pool, err := f.connect(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	var list []string
	for _, s := range strings.Split(*schemas, ",") {
		if s = strings.TrimSpace(s); s != "" {
			list = append(list, s)
		}
	}
	snap, err := stats.Take(ctx, pool, list)
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
})

var cmdIndexes = wrap(func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newEngineFlags("indexes", stderr).withPlan().withDB()
	create := f.fs.Bool("create", false, "create the missing indexes (CREATE INDEX CONCURRENTLY)")
	lockTimeout := f.fs.Duration("lock-timeout", 5*time.Second, "lock_timeout of each CREATE INDEX")
	p, pool, err := f.open(ctx, args)
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
})

var cmdBackup = wrap(func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newEngineFlags("backup", stderr).withDB()
	dir := f.fs.String("dir", "", "output directory (required)")
	label := f.fs.String("label", "fkrollout", "file name prefix")
	full := f.fs.Bool("full", false, "also dump all data (custom format)")
	if err := f.parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return usageError{"--dir is required"}
	}
	pool, err := f.connect(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	dsn := f.dsn
	if dsn == "" {
		dsn = os.Getenv(DSNEnv)
	}
	res, err := backup.Run(ctx, pool, backup.Options{DSN: dsn, Dir: *dir, Label: *label, Full: *full})
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
})

var cmdGenerate = wrap(func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newEngineFlags("generate", stderr).withPlan()
	dir := f.fs.String("dir", "", "migrations directory, e.g. backend/prisma/migrations (required)")
	name := f.fs.String("name", "", "migration name (default: the plan's name)")
	if err := f.parse(args); err != nil {
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
		return findingsError(errs)
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
})

var cmdDemoDB = wrap(func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newEngineFlags("demo-db", stderr)
	admin := f.fs.String("admin-dsn", "", "DSN of a maintenance database to create from (default $"+AdminDSNEnv+")")
	name := f.fs.String("name", "fkr_demo", "database to create")
	drop := f.fs.Bool("drop", false, "drop the database first when it exists")
	o := demo.Options{}
	f.fs.IntVar(&o.Workspaces, "workspaces", 3, "workspaces (the first is XLSMART-AVIAT)")
	f.fs.IntVar(&o.WorkflowsPerWorkspace, "workflows", 1000, "workflow instances per workspace (the scale)")
	f.fs.Int64Var(&o.Seed, "seed", 1, "id seed")
	orphans := f.fs.String("orphans", "", "orphans to inject: fk_name=n,fk_name=n")
	if err := f.parse(args); err != nil {
		return err
	}
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
})

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
