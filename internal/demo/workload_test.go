package demo_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/demo"
	"github.com/fkrollout/fkrollout/internal/perf/loadgen"
	"github.com/fkrollout/fkrollout/internal/perf/loadgen/runner"
	sqlassets "github.com/fkrollout/fkrollout/sql"
)

// The embedded workload parses, names the four operations of the
// performance table, and every
// statement runs against seeded data with all 16 foreign keys in force (so
// the perf phase measures successful writes, not constraint errors).
func TestWorkloadRunsWithConstraints(t *testing.T) {
	db, _ := seeded(t, demo.Options{Workspaces: 2, WorkflowsPerWorkspace: 10, Seed: 9})
	ctx := context.Background()
	w, err := loadgen.ParseWorkload([]byte(sqlassets.Workload))
	require.NoError(t, err)
	var names []string
	for _, op := range w.Operations {
		names = append(names, op.Name)
	}
	assert.Equal(t, []string{"create_workflow", "create_submission", "bulk_import_100", "query_workflows"}, names)

	_, err = db.Pool.Exec(ctx, sqlassets.Migration)
	require.NoError(t, err)
	ops, err := runner.Sample(ctx, db.Pool, w)
	require.NoError(t, err)
	require.Len(t, ops, 4)
	before := db.Count(t, "SELECT count(*) FROM workflow_stages")
	for _, op := range ops {
		tx, err := db.Pool.Begin(ctx)
		require.NoError(t, err)
		for _, st := range op.Statements {
			_, err := tx.Exec(ctx, st.SQL, st.Args...)
			assert.NoError(t, err, "%s: %s", op.Operation, st.SQL)
		}
		require.NoError(t, tx.Commit(ctx), op.Operation)
	}
	assert.Equal(t, before+100, db.Count(t, "SELECT count(*) FROM workflow_stages"), "bulk import adds 100 rows")
}
