package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/attribute"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/fkrollout/fkrollout/internal/engine/audit"
	"github.com/fkrollout/fkrollout/internal/engine/backup"
	"github.com/fkrollout/fkrollout/internal/engine/behave"
	"github.com/fkrollout/fkrollout/internal/engine/catalog"
	"github.com/fkrollout/fkrollout/internal/engine/dbx"
	"github.com/fkrollout/fkrollout/internal/engine/meta"
	"github.com/fkrollout/fkrollout/internal/engine/migrate"
	"github.com/fkrollout/fkrollout/internal/engine/pgerr"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/engine/sqlplan"
	"github.com/fkrollout/fkrollout/internal/engine/stats"
	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/rollout"
	"github.com/fkrollout/fkrollout/workflows/steps"
)

// ParsePlan parses and lints the plan text from the workflow input, in the
// format the input names (or recognised from the text), with the worker's
// lint settings; the plan's own lint settings may only tighten them. With
// an environment it resolves implicit referenced columns to the primary
// key from that environment's catalog. A plan that does not parse, lint or
// resolve is a non-retryable PlanError naming every problem.
func (a *Activities) ParsePlan(ctx context.Context, in rollout.ParsePlanInput) (rollout.ParsePlanResult, error) {
	planErr := func(err error) error {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("plan: %v", a.redact(err.Error())), steps.ErrTypePlan, nil)
	}
	var src *plan.Source
	var err error
	if in.Format == "" {
		src, err = sqlplan.ParseAutoSource(in.Text)
	} else {
		src, err = sqlplan.Parse(in.Text, plan.Format(in.Format))
	}
	if err != nil {
		return rollout.ParsePlanResult{}, planErr(err)
	}
	findings := src.Lint(a.Config.Lint)
	if err := plan.FindingsError(src.Plan.Name, findings); err != nil {
		return rollout.ParsePlanResult{}, planErr(err)
	}
	if err := a.plannedQueriesExist(src.Plan, in.Environment); err != nil {
		return rollout.ParsePlanResult{}, planErr(err)
	}
	if in.Environment != "" {
		pool, err := a.pool(ctx, in.Environment)
		if err != nil {
			return rollout.ParsePlanResult{}, err
		}
		if err := catalog.ResolveReferences(ctx, pool, &src.Plan); err != nil {
			return rollout.ParsePlanResult{}, planErr(fmt.Errorf("resolve referenced columns in %s: %w", in.Environment, err))
		}
	}
	res := rollout.ParsePlanResult{Plan: src.Plan}
	for _, f := range findings {
		if f.Severity == plan.SeverityOff {
			continue
		}
		res.Findings = append(res.Findings, rollout.Finding{Severity: string(f.Severity), FK: f.FK, Line: f.Line, Rule: f.Rule, Message: f.Message})
	}
	return res, nil
}

// CheckPlan checks the plan against the environment's catalog (tables,
// columns, types, referenced keys, name clashes).
func (a *Activities) CheckPlan(ctx context.Context, in rollout.EnvInput) (rollout.CheckResult, error) {
	pool, err := a.pool(ctx, in.Environment)
	if err != nil {
		return rollout.CheckResult{}, err
	}
	rep, err := catalog.Check(ctx, pool, in.Plan)
	if err != nil {
		return rollout.CheckResult{}, a.clean(fmt.Errorf("check plan on %s: %w", in.Environment, err))
	}
	out := rollout.CheckResult{States: map[string]string{}}
	for _, p := range rep.Problems {
		out.Problems = append(out.Problems, rollout.Problem{FK: p.FK, Rule: p.Rule, Message: p.Message})
	}
	for k, v := range rep.States {
		out.States[k] = fmt.Sprint(v)
	}
	return out, nil
}

// TakeStats snapshots the catalog; with Before it also compares and lists
// FK columns no index supports.
func (a *Activities) TakeStats(ctx context.Context, in rollout.StatsInput) (rollout.StatsResult, error) {
	pool, err := a.pool(ctx, in.Environment)
	if err != nil {
		return rollout.StatsResult{}, err
	}
	env, _ := a.Config.Environment(in.Environment)
	snap, err := stats.Take(ctx, pool, schemasFor(env.Schemas, in.Plan))
	if err != nil {
		return rollout.StatsResult{}, a.clean(fmt.Errorf("stats on %s: %w", in.Environment, err))
	}
	raw, err := json.Marshal(snap)
	if err != nil {
		return rollout.StatsResult{}, fmt.Errorf("encode snapshot: %w", err)
	}
	out := rollout.StatsResult{Snapshot: raw, TakenAt: snap.TakenAt, ForeignKeys: snap.ForeignKeys,
		ForeignKeysValidated: snap.ForeignKeysValidated, ForeignKeysNotValid: snap.ForeignKeysNotValid}
	if len(in.Before) > 0 {
		var before stats.Snapshot
		if err := json.Unmarshal(in.Before, &before); err != nil {
			return out, temporal.NewNonRetryableApplicationError("stats: previous snapshot does not decode: "+err.Error(), steps.ErrTypePlan, nil)
		}
		for _, r := range stats.Compare(before, snap) {
			out.Comparison = append(out.Comparison, rollout.StatRow{Metric: r.Metric, Before: r.Before, After: r.After, Change: r.Change})
		}
		adv, err := stats.CheckIndexes(ctx, pool, in.Plan.ForeignKeys)
		if err != nil {
			return out, a.clean(fmt.Errorf("index check on %s: %w", in.Environment, err))
		}
		for _, ad := range adv {
			if !ad.Covered {
				out.Unindexed = append(out.Unindexed, fmt.Sprintf("%s (%s)", ad.FK, strings.Join(ad.Columns, ", ")))
			}
		}
	}
	return out, nil
}

// schemasFor is the configured schema list, else the plan's schemas.
func schemasFor(configured []string, p plan.Plan) []string {
	if len(configured) > 0 {
		return configured
	}
	return schemasOf(p)
}

func schemasOf(p plan.Plan) []string {
	seen := map[string]bool{}
	var out []string
	for _, fk := range p.ForeignKeys {
		for _, s := range []string{fk.Table.Schema, fk.RefTable.Schema} {
			if s != "" && !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	if len(out) == 0 {
		out = []string{"public"}
	}
	return out
}

// AuditProgress is the Audit activity's heartbeat: how far it is, for
// people, and the checkpoint a retried attempt resumes from.
type AuditProgress struct {
	Progress
	Checkpoint audit.Checkpoint `json:"checkpoint"`
}

// Audit counts orphans per constraint with a few samples. Each child table
// is read once for all its constraints, in chunks; after each chunk the
// position and the counts so far go into the heartbeat, and an attempt that
// finds them there (a retry after an error or a lost worker) goes on from
// that position instead of starting again.
func (a *Activities) Audit(ctx context.Context, in rollout.AuditInput) ([]rollout.AuditFigure, error) {
	pool, err := a.pool(ctx, in.Environment)
	if err != nil {
		return nil, err
	}
	var resume *audit.Checkpoint
	if activity.HasHeartbeatDetails(ctx) {
		var saved AuditProgress
		if err := activity.GetHeartbeatDetails(ctx, &saved); err == nil && len(saved.Checkpoint.Tables) > 0 {
			resume = &saved.Checkpoint
			activityLogger(ctx, a.Log).Info("audit resumes from its last heartbeat", "environment", in.Environment, "chunks_done", auditChunks(saved.Checkpoint))
		}
	}
	// Progress and OnCheckpoint are never called at once (the engine
	// serialises them), so state needs no lock of its own.
	state := AuditProgress{Progress: Progress{Total: len(in.FKs), Note: "auditing"}}
	if resume != nil {
		state.Checkpoint = *resume
	}
	hb := a.startHeartbeat(ctx, state)
	defer hb.end()
	sctx, span := startSQLSpan(ctx, "sql audit", in.Environment, "", attribute.Int("fkrollout.constraints", len(in.FKs)))
	res, err := audit.Audit(sctx, pool, in.FKs, audit.Options{
		SampleLimit:      a.Config.Audit.SampleLimit,
		StatementTimeout: a.Config.AuditStatementTimeout(),
		Parallelism:      a.Config.Audit.Parallelism,
		ChunkPages:       a.Config.Audit.ChunkPages,
		Pause:            a.Config.AuditChunkPause(),
		Resume:           resume,
		Progress: func(done, total int, fk string) {
			state.Done, state.Total, state.Item = done, total, fk
			hb.set(state)
		},
		OnCheckpoint: func(cp audit.Checkpoint) error {
			state.Checkpoint = cp
			state.Note = fmt.Sprintf("auditing: %d chunks read", auditChunks(cp))
			hb.set(state)
			activity.RecordHeartbeat(ctx, state)
			if a.afterAuditChunk != nil {
				return a.afterAuditChunk(cp)
			}
			return nil
		},
	})
	a.endSQLSpan(span, err)
	if err != nil {
		return nil, a.cleanWith(ctx, fmt.Errorf("audit on %s: %w", in.Environment, err), pgerr.Options{StatementTimeout: true})
	}
	byKey := map[string]plan.ForeignKey{}
	for _, fk := range in.FKs {
		byKey[fk.Name], byKey[fk.ID()] = fk, fk
	}
	out := make([]rollout.AuditFigure, 0, len(res))
	for _, r := range res {
		fk, ok := byKey[r.FK]
		if !ok {
			return nil, fmt.Errorf("audit on %s: result for unknown constraint %q", in.Environment, r.FK)
		}
		fig := rollout.AuditFigure{FK: fk.Name, Table: fk.Table.String(), References: fk.RefTable.String(), Columns: fk.Columns,
			Orphans: r.Orphans, DurationMS: r.DurationMS}
		for _, s := range r.Samples {
			fig.Samples = append(fig.Samples, renderSample(s))
		}
		if r.Orphans > 0 {
			fig.Nullable, _ = nullable(ctx, pool, fk)
		}
		out = append(out, fig)
	}
	// Bounded at the source: a large plan's samples would pass Temporal's
	// payload limit (the workflow caps them again for older workers).
	return rollout.CapAuditSamples(out), nil
}

func auditChunks(cp audit.Checkpoint) int {
	n := 0
	for _, t := range cp.Tables {
		n += t.Chunks
	}
	return n
}

// nullable reports whether every FK column accepts NULL (set-null possible).
func nullable(ctx context.Context, pool *pgxpool.Pool, fk plan.ForeignKey) (bool, error) {
	var ok *bool
	err := pool.QueryRow(ctx, `SELECT bool_and(NOT a.attnotnull)
		FROM pg_attribute a
		WHERE a.attrelid = to_regclass($1) AND a.attname = ANY($2) AND a.attnum > 0`,
		fk.Table.Sanitize(), fk.Columns).Scan(&ok)
	if err != nil || ok == nil {
		return false, err
	}
	return *ok, nil
}

// Backup writes a backup of what the rollout touches (or the whole
// database) before any change. Paths, sizes and checksums come back; the DSN
// stays here.
func (a *Activities) Backup(ctx context.Context, in rollout.BackupInput) (rollout.BackupResult, error) {
	pool, err := a.pool(ctx, in.Environment)
	if err != nil {
		return rollout.BackupResult{}, err
	}
	dsn, err := a.dsn(in.Environment)
	if err != nil {
		return rollout.BackupResult{}, err
	}
	env, _ := a.Config.Environment(in.Environment)
	hb := a.startHeartbeat(ctx, Progress{Note: "backing up " + in.Environment})
	defer hb.end()
	dir := filepath.Join(a.Config.BackupDirFor(in.Environment), safeName(in.RolloutID), in.Environment)
	// The run id keys the backup's manifest: a retry of this activity (on
	// any worker sharing the backup directory) reuses the completed backup.
	var runKey string
	if activity.IsActivity(ctx) {
		runKey = activity.GetInfo(ctx).WorkflowExecution.RunID
	}
	res, err := backup.Run(ctx, pool, backup.Options{DSN: dsn, Dir: dir, Label: safeName(in.RolloutID) + "-" + in.Environment, Full: env.FullBackup || in.Full,
		Schemas: schemasFor(env.Schemas, in.Plan), RunKey: runKey})
	if err != nil {
		return rollout.BackupResult{}, a.clean(fmt.Errorf("backup of %s: %w", in.Environment, err))
	}
	if res.Reused {
		activityLogger(ctx, a.Log).Info("backup reused: completed by an earlier attempt, verified", "environment", in.Environment, "files", len(res.Artifacts))
	}
	out := rollout.BackupResult{Reused: res.Reused}
	for _, ar := range res.Artifacts {
		out.Artifacts = append(out.Artifacts, rollout.BackupArtifact{Kind: string(ar.Kind), Path: ar.Path, SizeBytes: ar.SizeBytes, SHA256: ar.SHA256, Entries: ar.Entries})
	}
	return out, nil
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

// migrateOptions binds ownership to the workflow run (runID) as well as the
// rollout: a rollout id can be reused once its run has closed.
// The activity attempt labels each statement's session, so a retry ends
// a previous attempt's backend still running the same statement.
func (a *Activities) migrateOptions(ctx context.Context, rolloutID, runID string, hb *heartbeater) migrate.Options {
	attempt := 0
	if activity.IsActivity(ctx) {
		attempt = int(activity.GetInfo(ctx).Attempt)
	}
	return migrate.Options{RolloutID: rolloutID, RunID: runID, Lock: a.Lock, Attempt: attempt, Progress: func(ev migrate.Event) {
		if hb != nil {
			hb.set(ev)
		}
	}}
}

// ApplyConstraint adds one constraint NOT VALID (idempotent: an existing
// constraint with the same definition owned by this rollout is left alone).
func (a *Activities) ApplyConstraint(ctx context.Context, in rollout.ConstraintInput) (rollout.ConstraintResult, error) {
	return a.runConstraintDDL(ctx, in, "apply", migrate.ApplyOne)
}

// ValidateConstraint runs VALIDATE CONSTRAINT, heartbeating while it runs.
// Violating rows (23503) are a non-retryable OrphansFound: the workflow
// re-audits and asks a human.
func (a *Activities) ValidateConstraint(ctx context.Context, in rollout.ConstraintInput) (rollout.ConstraintResult, error) {
	res, err := a.runConstraintDDL(ctx, in, "validate", migrate.ValidateOne)
	if err != nil && (errors.Is(err, migrate.ErrOrphans) || dbx.IsCode(err, dbx.CodeForeignKeyViolation)) {
		return res, temporal.NewNonRetryableApplicationError(a.redact(err.Error()), steps.ErrTypeOrphans, nil)
	}
	return res, err
}

func (a *Activities) runConstraintDDL(ctx context.Context, in rollout.ConstraintInput, what string,
	fn func(context.Context, *pgxpool.Pool, plan.ForeignKey, migrate.Options) (migrate.Result, error)) (rollout.ConstraintResult, error) {
	pool, err := a.pool(ctx, in.Environment)
	if err != nil {
		return rollout.ConstraintResult{}, err
	}
	hb := a.startHeartbeat(ctx, Progress{Total: 1, Item: in.FK.Name, Note: what})
	defer hb.end()
	opts := a.migrateOptions(ctx, in.RolloutID, in.RunID, hb)
	sctx, span := startSQLSpan(ctx, "sql "+what, in.Environment, in.FK.Name, attribute.String("db.sql.table", in.FK.Table.String()))
	r, err := fn(sctx, pool, in.FK, opts)
	a.endSQLSpan(span, err)
	if err != nil {
		if errors.Is(err, migrate.ErrOrphans) {
			return rollout.ConstraintResult{}, err
		}
		return rollout.ConstraintResult{}, a.clean(fmt.Errorf("%s %s on %s: %w", what, in.FK.Name, in.Environment, err))
	}
	activityLogger(ctx, a.Log).Info(what+" done", "environment", in.Environment, "constraint", in.FK.Name, "action", r.Action, "attempts", r.Attempts,
		"waited_ms", r.WaitedMS, "waited_for", r.WaitedFor, "terminated", r.Terminated)
	return toResult(in.FK, r), nil
}

func toResult(fk plan.ForeignKey, r migrate.Result) rollout.ConstraintResult {
	return rollout.ConstraintResult{FK: fk.Name, Table: fk.Table.String(), Action: string(r.Action), Attempts: r.Attempts, DurationMS: r.DurationMS,
		WaitedMS: r.WaitedMS, WaitedFor: r.WaitedFor, Terminated: r.Terminated}
}

// Remediate quarantines and then deletes (or sets NULL on) one
// constraint's orphans, in batches; delete_with_dependents also removes or
// changes every row that references them, children first, each copied to
// quarantine. A choice that cannot run (dependents a plain delete would
// hit, a NOT NULL column, a trigger changing rows fkrollout did not copy)
// is a non-retryable RemediationError: the gate reopens with the reason.
func (a *Activities) Remediate(ctx context.Context, in rollout.RemediateInput) (rollout.RemediationResult, error) {
	pool, err := a.pool(ctx, in.Environment)
	if err != nil {
		return rollout.RemediationResult{}, err
	}
	refused := func(msg string) error {
		return temporal.NewNonRetryableApplicationError(a.redact(msg), steps.ErrTypeRemediation, nil)
	}
	mode := audit.Mode(in.Mode)
	if !mode.Valid() {
		return rollout.RemediationResult{}, refused(fmt.Sprintf("remediation mode %q: want delete, delete_with_dependents or set_null", in.Mode))
	}
	if mode == audit.ModeSetNull {
		ok, err := nullable(ctx, pool, in.FK)
		if err != nil {
			return rollout.RemediationResult{}, a.clean(fmt.Errorf("check nullability of %s: %w", in.FK.Name, err))
		}
		if !ok {
			return rollout.RemediationResult{}, refused(fmt.Sprintf("set-null is impossible for %s: %s is NOT NULL", in.FK.Name, strings.Join(in.FK.Columns, ", ")))
		}
	}
	hb := a.startHeartbeat(ctx, Progress{Item: in.FK.Name, Note: in.Mode})
	defer hb.end()
	sctx, span := startSQLSpan(ctx, "sql remediate", in.Environment, in.FK.Name, attribute.String("fkrollout.remediation_mode", in.Mode))
	r, err := audit.Remediate(sctx, pool, in.FK, mode, in.RolloutID, audit.RemediateOptions{BatchSize: a.Config.Audit.RemediationBatch, Lock: a.Lock, RunID: in.RunID})
	if err == nil {
		span.SetAttributes(attribute.Int64("fkrollout.rows_affected", r.Affected), attribute.Int64("fkrollout.rows_quarantined", r.Quarantined))
	}
	a.endSQLSpan(span, err)
	if err != nil {
		err = fmt.Errorf("remediate %s on %s: %w", in.FK.Name, in.Environment, err)
		if errors.Is(err, audit.ErrDependents) || errors.Is(err, audit.ErrNotPossible) || errors.Is(err, audit.ErrUncapturedChanges) || errors.Is(err, audit.ErrTooDeep) {
			return rollout.RemediationResult{}, refused(err.Error())
		}
		return rollout.RemediationResult{}, a.clean(err)
	}
	out := rollout.RemediationResult{FK: in.FK.Name, Mode: string(r.Mode), Quarantined: r.Quarantined, Affected: r.Affected, Batches: r.Batches}
	if mode == audit.ModeDeleteWithDependents {
		// The per-table split is the quarantine's own count for this run.
		q, err := quarantineCounts(ctx, pool, in.RolloutID, in.RunID, in.FK.Name)
		if err != nil {
			return out, a.clean(fmt.Errorf("count quarantine of %s on %s: %w", in.FK.Name, in.Environment, err))
		}
		out.Tables = q.Tables
	}
	return out, nil
}

// RemediationImpact computes, before anyone decides, what remediating one
// constraint's orphans would do across the foreign-key graph and which
// choices can run, each impossible one with its reason.
func (a *Activities) RemediationImpact(ctx context.Context, in rollout.ImpactInput) (rollout.Impact, error) {
	pool, err := a.pool(ctx, in.Environment)
	if err != nil {
		return rollout.Impact{}, err
	}
	hb := a.startHeartbeat(ctx, Progress{Item: in.FK.Name, Note: "remediation impact"})
	defer hb.end()
	rep, err := audit.Impact(ctx, pool, in.FK, audit.ModeDelete)
	if err != nil {
		err = fmt.Errorf("remediation impact of %s on %s: %w", in.FK.Name, in.Environment, err)
		if errors.Is(err, audit.ErrTooDeep) {
			return rollout.Impact{}, temporal.NewNonRetryableApplicationError(a.redact(err.Error()), steps.ErrTypeDeterministic, nil,
				steps.DeterministicDetail{Reason: "dependency walk too deep"})
		}
		return rollout.Impact{}, a.cleanWith(ctx, err, pgerr.Options{StatementTimeout: true})
	}
	return impactFor(in.FK.Name, rep), nil
}

// impactFor turns the engine's report into the workflow's plain data,
// choices named as the gate names them.
func impactFor(fk string, rep audit.ImpactReport) rollout.Impact {
	out := rollout.Impact{FK: fk, Orphans: rep.Orphans, Nullable: rep.FKColumnsNullable}
	for _, d := range rep.Dependents {
		out.Dependents = append(out.Dependents, rollout.ImpactRow{Table: d.Table, Constraint: d.Constraint, Action: d.OnDelete, Rows: d.Rows, Depth: d.Depth})
	}
	for _, t := range rep.Triggers {
		if !t.Enabled {
			continue
		}
		out.Triggers = append(out.Triggers, fmt.Sprintf("%s on %s (%s %s %s)", t.Name, t.Table, t.Timing, strings.Join(t.Events, "/"), t.Level))
	}
	choice := map[audit.Mode]string{audit.ModeDelete: approval.ChoiceDelete, audit.ModeDeleteWithDependents: approval.ChoiceDeleteWithDependents,
		audit.ModeSetNull: approval.ChoiceSetNull}
	for _, c := range rep.Choices {
		if id, ok := choice[c.Mode]; ok && !c.Possible {
			if out.Impossible == nil {
				out.Impossible = map[string]string{}
			}
			// The gate names choices with dashes; the engine names modes.
			out.Impossible[id] = strings.NewReplacer(string(audit.ModeDeleteWithDependents), approval.ChoiceDeleteWithDependents,
				string(audit.ModeSetNull), approval.ChoiceSetNull).Replace(c.Reason)
		}
	}
	return out
}

// Quarantine counts the rows this run of the rollout copied to quarantine
// in an environment, per table; with Restore it first puts them back
// (parents first, one transaction). A failed restore changes nothing and
// is reported in the result, not as an error: a rollback must finish.
func (a *Activities) Quarantine(ctx context.Context, in rollout.QuarantineInput) (rollout.QuarantineResult, error) {
	pool, err := a.pool(ctx, in.Environment)
	if err != nil {
		return rollout.QuarantineResult{}, err
	}
	var restored int64
	var restoreErr string
	if in.Restore {
		n, err := audit.RestoreAll(ctx, pool, a.Lock, in.RolloutID, in.RunID)
		if err != nil {
			restoreErr = a.redact(err.Error())
		}
		for _, v := range n {
			restored += v
		}
	}
	res, err := quarantineCounts(ctx, pool, in.RolloutID, in.RunID, "")
	if err != nil {
		return rollout.QuarantineResult{}, a.clean(fmt.Errorf("count quarantine on %s: %w", in.Environment, err))
	}
	res.Restored, res.RestoreError = restored, restoreErr
	return res, nil
}

// quarantineCounts counts quarantine rows of a rollout run (and rows from
// before runs were recorded), per table and change, optionally of one
// constraint's remediation.
func quarantineCounts(ctx context.Context, pool *pgxpool.Pool, rolloutID, runID, constraint string) (rollout.QuarantineResult, error) {
	var res rollout.QuarantineResult
	var exists bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", meta.QuarantineTable).Scan(&exists); err != nil || !exists {
		return res, err
	}
	rows, err := pool.Query(ctx, `SELECT table_schema, table_name, action, count(*) FROM `+meta.QuarantineTable+`
		WHERE rollout_id = $1 AND ($2 = '' OR run_id IS NULL OR run_id = $2) AND ($3 = '' OR constraint_name = $3)
		GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`, rolloutID, runID, constraint)
	if err != nil {
		return res, err
	}
	defer rows.Close()
	for rows.Next() {
		var t plan.TableName
		var c rollout.QuarantineCount
		if err := rows.Scan(&t.Schema, &t.Name, &c.Action, &c.Rows); err != nil {
			return res, err
		}
		c.Table = t.String()
		res.Tables = append(res.Tables, c)
		res.Rows += c.Rows
	}
	return res, rows.Err()
}

// RunBehaviourTests runs the constraint behaviour tests (invalid insert
// rejected, RESTRICT blocks delete, CASCADE cascades) in rolled-back
// transactions.
func (a *Activities) RunBehaviourTests(ctx context.Context, in rollout.BehaviourInput) ([]rollout.BehaviourResult, error) {
	pool, err := a.pool(ctx, in.Environment)
	if err != nil {
		return nil, err
	}
	hb := a.startHeartbeat(ctx, Progress{Total: len(in.FKs), Note: "behaviour tests"})
	defer hb.end()
	res, err := behave.Run(ctx, pool, in.FKs, a.Lock)
	if err != nil {
		if errors.Is(err, behave.ErrBadInput) {
			return nil, temporal.NewNonRetryableApplicationError(a.redact(err.Error()), steps.ErrTypePlan, nil)
		}
		return nil, a.clean(fmt.Errorf("behaviour tests on %s: %w", in.Environment, err))
	}
	names := map[string]string{}
	for _, fk := range in.FKs {
		names[fk.Name], names[fk.ID()] = fk.Name, fk.Name
	}
	out := make([]rollout.BehaviourResult, 0, len(res))
	for _, r := range res {
		br := rollout.BehaviourResult{FK: names[r.FK], Passed: r.Passed()}
		if br.FK == "" {
			br.FK = r.FK
		}
		for _, c := range r.Cases {
			br.Cases = append(br.Cases, rollout.BehaviourCase{Name: c.Name, Outcome: string(c.Outcome), Passed: c.Outcome != behave.Failed, Detail: c.Detail})
		}
		out = append(out, br)
	}
	return out, nil
}

// Rollback drops exactly the constraints this rollout created in the
// environment, in reverse priority order, with lock_timeout and retries.
func (a *Activities) Rollback(ctx context.Context, in rollout.RollbackInput) ([]rollout.ConstraintResult, error) {
	pool, err := a.pool(ctx, in.Environment)
	if err != nil {
		return nil, err
	}
	hb := a.startHeartbeat(ctx, Progress{Total: len(in.Plan.ForeignKeys), Note: "rollback"})
	defer hb.end()
	opts := a.migrateOptions(ctx, in.RolloutID, in.RunID, hb)
	opts.KeepValidated = in.KeepValidated
	res, err := migrate.Rollback(ctx, pool, in.RolloutID, in.Plan, opts)
	if err != nil {
		return nil, a.clean(fmt.Errorf("rollback on %s: %w", in.Environment, err))
	}
	byName := map[string]plan.ForeignKey{}
	for _, fk := range in.Plan.ForeignKeys {
		byName[fk.Name], byName[fk.ID()] = fk, fk
	}
	out := make([]rollout.ConstraintResult, 0, len(res))
	for _, r := range res {
		fk, ok := byName[r.FK]
		if !ok {
			fk = plan.ForeignKey{Name: r.FK}
		}
		out = append(out, toResult(fk, r))
	}
	return out, nil
}

// Verify reads every planned constraint back from the catalog; Owned means
// created by this run of the rollout.
func (a *Activities) Verify(ctx context.Context, in rollout.EnvInput) ([]rollout.Verification, error) {
	pool, err := a.pool(ctx, in.Environment)
	if err != nil {
		return nil, err
	}
	vs, err := migrate.VerifyRun(ctx, pool, in.Plan, migrate.Options{RolloutID: in.RolloutID, RunID: in.RunID})
	if err != nil {
		return nil, a.clean(fmt.Errorf("verify on %s: %w", in.Environment, err))
	}
	out := make([]rollout.Verification, 0, len(vs))
	for _, v := range vs {
		out = append(out, rollout.Verification{FK: v.FK, Exists: v.Exists, Validated: v.Validated, SameDefinition: v.SameDefinition, Owned: v.Owned, OwnerRollout: v.OwnerRollout})
	}
	return out, nil
}

// renderSample shows an orphan as "id=42 → workflow_instance_id=wi-9".
func renderSample(s audit.Sample) string {
	kv := func(m map[string]string) string {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, k+"="+m[k])
		}
		return strings.Join(parts, ", ")
	}
	if len(s.Key) == 0 {
		return kv(s.FK)
	}
	return kv(s.Key) + " → " + kv(s.FK)
}
