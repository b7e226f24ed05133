package activities

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/config"
	"github.com/fkrollout/fkrollout/internal/demo"
	"github.com/fkrollout/fkrollout/internal/engine/sqlplan"
	"github.com/fkrollout/fkrollout/internal/perf/loadgen"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
	sqlassets "github.com/fkrollout/fkrollout/sql"
	"github.com/fkrollout/fkrollout/workflows/rollout"
	"github.com/fkrollout/fkrollout/workflows/steps"
)

// TestPerfActivitiesOnDemoDatabase runs the perf phase's activities the way
// the workflow does, on a small seeded demo database: the baseline, the
// constraints, the EXPLAIN checks (recommendation only, then with index
// creation requested) and the with-FKs run. Latencies are real; the test
// asserts the structure and counts, never a timing.
func TestPerfActivitiesOnDemoDatabase(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	require.NoError(t, demo.Setup(ctx, db.Pool))
	_, err := demo.Seed(ctx, db.Pool, demo.Options{Workspaces: 2, WorkflowsPerWorkspace: 40, Seed: 7})
	require.NoError(t, err)
	p, err := sqlplan.ParseSQL(sqlassets.Migration)
	require.NoError(t, err)
	fks := p.ForeignKeys
	require.Len(t, fks, 16)

	env, _ := newEnv(t, perfCfg(map[string]config.Environment{"staging": {DSN: db.DSN}}, "staging"))
	run := func(label string) loadgen.Report {
		t.Helper()
		v, err := env.ExecuteActivity(rollout.ActPerfRun, rollout.PerfRunInput{Environment: "staging", RolloutID: "r-perf",
			Label: label, Workload: "demo", Workers: 2, Iterations: 120})
		require.NoError(t, err)
		var rep loadgen.Report
		require.NoError(t, v.Get(&rep))
		return rep
	}
	checkReport := func(rep loadgen.Report) {
		t.Helper()
		require.Len(t, rep.Ops, 4)
		var total int64
		for i, name := range []string{"create_workflow", "create_submission", "bulk_import_100", "query_workflows"} {
			o := rep.Ops[i]
			assert.Equal(t, name, o.Operation)
			assert.Zero(t, o.Errors, "%s: %s", name, o.FirstError)
			if o.Count > 0 {
				assert.Greater(t, o.AvgMS, 0.0, name)
				assert.GreaterOrEqual(t, o.MaxMS, o.P50MS, name)
			}
			total += o.Count
		}
		assert.Equal(t, int64(120), total, "the iteration count is shared by the workers")
		assert.Equal(t, int64(120), rep.Total.Count)
		assert.Equal(t, 100, rep.Ops[2].Units)
	}
	base := run("baseline")
	checkReport(base)
	before := db.Count(t, "SELECT count(*) FROM workflow_instances")

	for _, fk := range fks {
		db.Exec(t, fk.AddSQL(true))
		db.Exec(t, fk.ValidateSQL())
	}

	explain := func(create bool) rollout.PerfExplainResult {
		t.Helper()
		v, err := env.ExecuteActivity(rollout.ActPerfExplain, rollout.PerfExplainInput{Environment: "staging", RolloutID: "r-perf",
			FKs: fks, Workload: "demo", CreateIndexes: create})
		require.NoError(t, err)
		var res rollout.PerfExplainResult
		require.NoError(t, v.Get(&res))
		return res
	}
	ex := explain(false)
	require.Len(t, ex.FKChecks, 16)
	assert.NotEmpty(t, ex.Recommended, "the demo schema leaves FK columns unindexed on purpose")
	assert.Empty(t, ex.IndexesBuilt, "indexes are built only on request")
	for _, c := range ex.FKChecks {
		assert.NotEmpty(t, c.ScanNode, c.FK)
		assert.NotEmpty(t, c.CheckQuery, c.FK)
	}
	assert.NotEmpty(t, ex.Queries)
	for _, q := range ex.Queries {
		assert.Empty(t, q.Error, q.Operation)
	}
	indexesBefore := db.Count(t, "SELECT count(*) FROM pg_indexes WHERE schemaname = 'public'")

	ex = explain(true)
	assert.Len(t, ex.IndexesBuilt, len(ex.Recommended))
	assert.Equal(t, indexesBefore+int64(len(ex.IndexesBuilt)), db.Count(t, "SELECT count(*) FROM pg_indexes WHERE schemaname = 'public'"))
	for _, c := range ex.FKChecks {
		assert.Empty(t, c.Recommendation, "%s still recommends an index after they were built", c.FK)
	}
	assert.Zero(t, db.Count(t, "SELECT count(*) FROM pg_index WHERE NOT indisvalid"), "no invalid index left behind")

	with := run("with-fks")
	checkReport(with)
	assert.Greater(t, db.Count(t, "SELECT count(*) FROM workflow_instances"), before, "the workload really wrote")
}

func TestPerfWorkloadResolution(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 10);`)
	dir := t.TempDir()
	write := func(name, text string) string {
		file := filepath.Join(dir, name+".yaml")
		require.NoError(t, os.WriteFile(file, []byte(text), 0o600))
		return file
	}
	// "qa" has a perf policy but no database: the configuration's own
	// lookup refuses it, after the policy let it through.
	cfg := perfCfg(map[string]config.Environment{"staging": {DSN: db.DSN}}, "staging", "qa")
	cfg.Perf.Workloads = map[string]string{
		"reads":   write("reads", "operations:\n  - name: read\n    params: {id: SELECT id FROM t}\n    sql: SELECT * FROM t WHERE id = :id\n"),
		"bad-yml": write("bad-yml", "operations:\n  - name: x\n    sql: SELECT :nope\n"),
		"bad-sql": write("bad-sql", "operations:\n  - name: x\n    sql: SELECT * FROM missing_table\n"),
	}
	env, _ := newEnv(t, cfg)

	cases := []struct {
		name    string
		in      rollout.PerfRunInput
		errType string
		errText string
	}{
		{name: "configured file", in: rollout.PerfRunInput{Workload: "reads", Iterations: 20}},
		{name: "inline refused", in: rollout.PerfRunInput{WorkloadYAML: "operations:\n  - name: one\n    sql: SELECT 1\n", Iterations: 20}, errType: steps.ErrTypeConfig, errText: "inline SQL is not accepted"},
		{name: "unknown name", in: rollout.PerfRunInput{Workload: "checkout", Iterations: 5}, errType: steps.ErrTypeConfig, errText: `perf workload "checkout" is not configured`},
		{name: "bad yaml", in: rollout.PerfRunInput{Workload: "bad-yml", Iterations: 5}, errType: steps.ErrTypePlan, errText: "no parameter nope"},
		{name: "bad sql", in: rollout.PerfRunInput{Workload: "bad-sql", Iterations: 5}, errType: steps.ErrTypePlan, errText: "missing_table"},
		{name: "no bound", in: rollout.PerfRunInput{Workload: "reads"}, errType: steps.ErrTypePlan, errText: "duration or an iteration count"},
		{name: "unknown environment", in: rollout.PerfRunInput{Environment: "qa", Workload: "reads", Iterations: 5}, errType: steps.ErrTypeConfig, errText: `environment "qa"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := c.in
			if in.Environment == "" {
				in.Environment = "staging"
			}
			in.Label, in.Workers = "baseline", 2
			v, err := env.ExecuteActivity(rollout.ActPerfRun, in)
			if c.errType != "" {
				require.Error(t, err)
				typ, nonRetryable := appErrType(t, err)
				assert.Equal(t, c.errType, typ)
				assert.True(t, nonRetryable)
				assert.Contains(t, err.Error(), c.errText)
				assert.NotContains(t, err.Error(), db.DSN)
				return
			}
			require.NoError(t, err)
			var rep loadgen.Report
			require.NoError(t, v.Get(&rep))
			require.Len(t, rep.Ops, 1)
			assert.Equal(t, int64(20), rep.Total.Count)
			assert.Zero(t, rep.Total.Errors, rep.Total.FirstError)
		})
	}
}
