package perf_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/demo"
	"github.com/fkrollout/fkrollout/internal/engine/sqlplan"
	"github.com/fkrollout/fkrollout/internal/perf"
	"github.com/fkrollout/fkrollout/internal/perf/explain"
	"github.com/fkrollout/fkrollout/internal/perf/loadgen"
	"github.com/fkrollout/fkrollout/internal/perf/loadgen/runner"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
	sqlassets "github.com/fkrollout/fkrollout/sql"
)

// TestDemoPerfPhase runs the perf phase the way staging does on the demo
// schema: the shipped workload before the demo migration's 16 constraints and after
// they are validated, the comparison, and the plan checks.
func TestDemoPerfPhase(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	require.NoError(t, demo.Setup(ctx, db.Pool))
	_, err := demo.Seed(ctx, db.Pool, demo.Options{Workspaces: 3, WorkflowsPerWorkspace: 100, Seed: 1})
	require.NoError(t, err)
	w, err := loadgen.ParseWorkload([]byte(sqlassets.Workload))
	require.NoError(t, err)
	p, err := sqlplan.ParseSQL(sqlassets.Migration)
	require.NoError(t, err)
	require.Len(t, p.ForeignKeys, 16)

	opts := loadgen.RunOptions{Workers: 2, Iterations: 200}
	base, err := runner.Run(ctx, db.Pool, w, opts)
	require.NoError(t, err)
	for _, o := range base.Ops {
		assert.Zero(t, o.Errors, "%s: %s", o.Operation, o.FirstError)
	}
	for _, fk := range p.ForeignKeys {
		db.Exec(t, fk.AddSQL(true))
		db.Exec(t, fk.ValidateSQL())
	}
	with, err := runner.Run(ctx, db.Pool, w, opts)
	require.NoError(t, err)
	cmp := perf.Compare(base, with, perf.Thresholds{Metric: "p50"})
	assert.Len(t, cmp.Rows, len(w.Operations))
	for _, r := range cmp.Rows {
		assert.Zero(t, r.WithFKsErrs, "%s: %s", r.Operation, r.Note)
	}
	assert.NotEqual(t, perf.Rollback, cmp.Verdict, cmp.Markdown())

	checks, err := explain.FKs(ctx, db.Pool, p.ForeignKeys)
	require.NoError(t, err)
	flagged := map[string]bool{}
	for _, c := range checks {
		if !c.Advice.Covered {
			// The schema leaves these columns unindexed on purpose.
			assert.True(t, c.SeqScan, c.FK)
			assert.NotEmpty(t, c.Recommendation, c.FK)
			flagged[c.FK] = true
		} else {
			assert.Empty(t, c.Recommendation, c.FK)
		}
	}
	assert.True(t, flagged["public.vendor_master.fk_vendor_master_workspace"])
	assert.True(t, flagged["public.workflow_instances.fk_workflow_instances_config_version"])
	assert.False(t, flagged["public.workflow_stages.fk_workflow_stages_workflow_instance"])

	samples, err := runner.Sample(ctx, db.Pool, w)
	require.NoError(t, err)
	queries, err := explain.Workload(ctx, db.Pool, samples, explain.Options{})
	require.NoError(t, err)
	for _, q := range queries {
		assert.Empty(t, q.Error, q.Operation)
	}
	t.Log("\n" + perf.Report{Comparison: cmp, FKChecks: checks, Queries: queries}.Markdown())
}
