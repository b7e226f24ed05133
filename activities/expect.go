package activities

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/fkrollout/fkrollout/internal/engine/audit"
	"github.com/fkrollout/fkrollout/internal/engine/expect"
	"github.com/fkrollout/fkrollout/internal/engine/pgerr"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/workflows/rollout"
)

// CheckExpectations measures the figures the plan and the environment's
// configuration expect (validated FKs, CHECK constraints, tables, aligned
// types, runbook queries in READ ONLY transactions under the lock policy)
// and compares them; the orphans come from the workflow's last audit.
// Nothing expected: an empty result, no query.
func (a *Activities) CheckExpectations(ctx context.Context, in rollout.ExpectInput) ([]rollout.ExpectationResult, error) {
	env, err := a.Config.Environment(in.Environment)
	if err != nil {
		return nil, err
	}
	if in.Plan.Expect.Empty() && env.Expect.Empty() {
		return []rollout.ExpectationResult{}, nil
	}
	pool, err := a.pool(ctx, in.Environment)
	if err != nil {
		return nil, err
	}
	res, err := expect.Check(ctx, pool, a.Lock, expect.Input{Plan: in.Plan.Expect, Worker: env.Expect, Orphans: in.Orphans,
		OrphansKnown: in.OrphansKnown, Schemas: schemasFor(env.Schemas, in.Plan)})
	if err != nil {
		return nil, a.cleanWith(ctx, fmt.Errorf("expected figures on %s: %w", in.Environment, err), pgerr.Options{StatementTimeout: true})
	}
	out := make([]rollout.ExpectationResult, 0, len(res))
	for _, r := range res {
		out = append(out, rollout.ExpectationResult{Name: r.Name, Source: r.Source, Target: r.Target, Actual: r.Actual, OK: r.OK, Detail: a.redact(r.Detail)})
	}
	return out, nil
}

// ExportOrphans writes every orphan row of each constraint (up to
// audit.export_max_rows, with audit.export_columns as context) to
// <backup dir>/<rollout>/<environment>/orphans/round-<n>/<constraint>.csv,
// next to the environment's backup. The rows stay on the worker host:
// the workflow gets paths and counts.
func (a *Activities) ExportOrphans(ctx context.Context, in rollout.ExportOrphansInput) ([]rollout.OrphanExport, error) {
	pool, err := a.pool(ctx, in.Environment)
	if err != nil {
		return nil, err
	}
	hb := a.startHeartbeat(ctx, Progress{Total: len(in.FKs), Note: "exporting orphans"})
	defer hb.end()
	dir := filepath.Join(a.Config.BackupDirFor(in.Environment), safeName(in.RolloutID), in.Environment, "orphans", "round-"+strconv.Itoa(in.Round))
	out := make([]rollout.OrphanExport, 0, len(in.FKs))
	for i, fk := range in.FKs {
		hb.set(Progress{Done: i, Total: len(in.FKs), Item: fk.Name})
		ex, err := audit.ExportOrphans(ctx, pool, fk, audit.ExportOptions{Dir: dir, MaxRows: int64(a.Config.Audit.ExportMaxRows),
			Columns: a.Config.Audit.ExportColumnsFor(fk.Table), StatementTimeout: a.Config.AuditStatementTimeout()})
		if err != nil {
			return nil, a.cleanWith(ctx, fmt.Errorf("export orphans on %s: %w", in.Environment, err), pgerr.Options{StatementTimeout: true})
		}
		out = append(out, rollout.OrphanExport{FK: fk.Name, Round: in.Round, Path: absPath(ex.Path), Rows: ex.Rows, Orphans: ex.Orphans,
			Truncated: ex.Truncated, Limit: ex.Limit, SHA256: ex.SHA256})
	}
	return out, nil
}

func absPath(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}

// plannedQueriesExist refuses, before anything changes, a plan that names
// runbook queries the first environment's configuration does not define
// (later environments are checked when their figures are measured).
func (a *Activities) plannedQueriesExist(p plan.Plan, envName string) error {
	if p.Expect == nil || len(p.Expect.Queries) == 0 || envName == "" {
		return nil
	}
	env, err := a.Config.Environment(envName)
	if err != nil {
		return nil // the environment's own check reports it
	}
	defined := map[string]bool{}
	var names []string
	for _, q := range env.Expect.Queries {
		defined[q.Name] = true
		names = append(names, q.Name)
	}
	var missing []string
	for _, n := range p.Expect.Queries {
		if !defined[n] {
			missing = append(missing, strconv.Quote(n))
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if len(names) == 0 {
		names = []string{"none"}
	}
	return fmt.Errorf("expect.queries: %s not defined in the worker configuration of environment %s (defined: %s); runbook SQL lives only there",
		strings.Join(missing, ", "), envName, strings.Join(names, ", "))
}
