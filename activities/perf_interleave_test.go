package activities

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/config"
	"github.com/fkrollout/fkrollout/internal/demo"
	"github.com/fkrollout/fkrollout/internal/engine/sqlplan"
	"github.com/fkrollout/fkrollout/internal/perf"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
	sqlassets "github.com/fkrollout/fkrollout/sql"
	"github.com/fkrollout/fkrollout/workflows/rollout"
)

// TestPerfInterleaveOnDemoDatabase runs one round of the interleaved
// comparison the way the workflow does, on a seeded demo database: keys that
// already exist stay on both sides, the others are added NOT VALID for the
// with-FKs slices only, and the database is left as found.
func TestPerfInterleaveOnDemoDatabase(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	require.NoError(t, demo.Setup(ctx, db.Pool))
	_, err := demo.Seed(ctx, db.Pool, demo.Options{Workspaces: 2, WorkflowsPerWorkspace: 40, Seed: 7})
	require.NoError(t, err)
	p, err := sqlplan.ParseSQL(sqlassets.Migration)
	require.NoError(t, err)
	fks := p.ForeignKeys
	require.Len(t, fks, 16)
	for _, fk := range fks[:3] {
		db.Exec(t, fk.AddSQL(true))
	}
	defsBefore := db.Count(t, `SELECT count(*) FROM pg_constraint WHERE contype = 'f'`)

	env, _ := newEnv(t, perfCfg(map[string]config.Environment{"staging": {DSN: db.DSN}}, "staging"))
	v, err := env.ExecuteActivity(rollout.ActPerfInterleave, rollout.PerfInterleaveInput{Environment: "staging", RolloutID: "r-perf",
		FKs: fks, Workload: "demo", Workers: 2, Pairs: 2, Iterations: 30, Seed: 3})
	require.NoError(t, err)
	var res rollout.PerfInterleaveResult
	require.NoError(t, v.Get(&res))
	assert.Len(t, res.Present, 3)
	assert.Len(t, res.Toggled, 13)
	require.Len(t, res.Slices, 4)
	for i, s := range res.Slices {
		assert.Equal(t, perf.SliceOrder(i), s.WithFKs)
		assert.Len(t, s.Report.Ops, 4)
		assert.Zero(t, s.Report.Total.Errors, s.Report.Total.FirstError)
	}
	c := perf.CompareInterleaved(res.Slices, perf.Thresholds{AcceptableMS: 1000, RollbackMS: 5000}, perf.Interval{Seed: 1})
	// Limits far above any overhead: never warn or rollback. A rarely drawn
	// operation (the bulk import) may get too few pairs for an interval, so
	// inconclusive is as right as pass here.
	assert.Contains(t, []string{perf.Pass, perf.Inconclusive}, c.Verdict, c.Markdown())
	assert.Equal(t, defsBefore, db.Count(t, `SELECT count(*) FROM pg_constraint WHERE contype = 'f'`), "left as found")
}
