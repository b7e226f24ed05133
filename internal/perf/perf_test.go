package perf_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/perf"
	"github.com/fkrollout/fkrollout/internal/perf/loadgen"
	"github.com/fkrollout/fkrollout/internal/perf/loadgen/runner"
	"github.com/fkrollout/fkrollout/internal/testkit/perftest"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
)

// TestDecisionsFromRealRuns measures a baseline, then the same workload with
// the constraints plus a trigger that sleeps on every insert into
// workflow_instances, and checks the verdict the sleep must produce.
func TestDecisionsFromRealRuns(t *testing.T) {
	// The machine is shared (2 cores, other test suites running): the
	// medians are compared and the margins to the limits are wide, so
	// scheduling noise cannot flip a verdict.
	cases := []struct {
		name     string
		sleepMS  int
		t        perf.Thresholds
		verdict  string
		rowValue string
	}{
		{"constraints only", 0, perf.Thresholds{Metric: "p50"}, perf.Pass, perf.RowAcceptable},
		{"30 ms overhead warns", 30, perf.Thresholds{AcceptableMS: 10, RollbackMS: 60, Metric: "p50"}, perf.Warn, perf.RowWarning},
		{"40 ms overhead rolls back at the default +20 ms", 40, perf.Thresholds{Metric: "p50"}, perf.Rollback, perf.RowRollback},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			db := pgtest.New(t)
			db.Exec(t, perftest.Schema)
			w, err := loadgen.ParseWorkload([]byte(perftest.Workload))
			require.NoError(t, err)
			opts := loadgen.RunOptions{Workers: 2, Iterations: 40, Warmup: 0}

			base, err := runner.Run(ctx, db.Pool, w, opts)
			require.NoError(t, err)

			for _, fk := range []plan.ForeignKey{perftest.FKIndexed, perftest.FKUnindexed} {
				db.Exec(t, fk.AddSQL(true))
				db.Exec(t, fk.ValidateSQL())
			}
			if c.sleepMS > 0 {
				db.Exec(t, fmt.Sprintf(`CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$
					BEGIN PERFORM pg_sleep(%g); RETURN NEW; END $$;
					CREATE TRIGGER slow BEFORE INSERT ON workflow_instances FOR EACH ROW EXECUTE FUNCTION slow();`, float64(c.sleepMS)/1000))
			}
			with, err := runner.Run(ctx, db.Pool, w, opts)
			require.NoError(t, err)

			cmp := perf.Compare(base, with, c.t)
			assert.Equal(t, c.verdict, cmp.Verdict, cmp.Reason)
			require.Len(t, cmp.Rows, 2)
			assert.Equal(t, "create_workflow", cmp.Rows[0].Operation)
			assert.Equal(t, c.rowValue, cmp.Rows[0].Verdict)
			// Every insert sleeps: the measured latency cannot be below it.
			assert.GreaterOrEqual(t, cmp.Rows[0].WithFKsMS, float64(c.sleepMS))
			// The bulk import pays 10 FK checks per execution but is judged
			// per unit: it stays acceptable.
			assert.Equal(t, 10, cmp.Rows[1].Units)
			assert.Equal(t, perf.RowAcceptable, cmp.Rows[1].Verdict)

			md := cmp.Markdown()
			assert.Contains(t, md, "| Operation | Baseline | With FKs | Overhead | Acceptable |")
			assert.Contains(t, md, "| bulk_import (10) |")
			assert.Contains(t, md, "**Verdict:** "+c.verdict)
		})
	}
}

// TestErrorRateRollsBack: after the constraint, the application's inserts of
// orphans fail; the error-rate rule of the decision matrix rolls back even
// though latency did not move.
func TestErrorRateRollsBack(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	db.Exec(t, perftest.Schema)
	w, err := loadgen.ParseWorkload([]byte(`
operations:
  - name: create_orphan_sometimes
    params: {ws: "SELECT g FROM generate_series(150, 250) g"}
    statements: ["INSERT INTO workflow_instances (workspace_id) VALUES (:ws)"]`))
	require.NoError(t, err)
	opts := loadgen.RunOptions{Workers: 2, Iterations: 200}
	base, err := runner.Run(ctx, db.Pool, w, opts)
	require.NoError(t, err)
	db.Exec(t, `DELETE FROM workflow_instances WHERE workspace_id > 200`)
	db.Exec(t, perftest.FKIndexed.AddSQL(false))
	with, err := runner.Run(ctx, db.Pool, w, opts)
	require.NoError(t, err)

	cmp := perf.Compare(base, with, perf.Thresholds{})
	assert.Equal(t, perf.Rollback, cmp.Verdict)
	assert.Contains(t, cmp.Reason, "error rate")
	assert.Contains(t, cmp.Rows[0].Note, "foreign key")
}

func TestCompareTable(t *testing.T) {
	rep := func(ops ...loadgen.OpStats) loadgen.Report { return loadgen.Report{Ops: ops} }
	op := func(name string, units int, avg float64) loadgen.OpStats {
		return loadgen.OpStats{Operation: name, Units: units, Count: 100, AvgMS: avg, P95MS: avg * 1.5}
	}
	// A typical table (a few ms more per write): all acceptable.
	cmp := perf.Compare(
		rep(op("Create workflow", 1, 10), op("Create submission", 1, 15), op("Bulk import", 100, 500), op("Query workflows", 1, 5)),
		rep(op("Create workflow", 1, 12), op("Create submission", 1, 17), op("Bulk import", 100, 550), op("Query workflows", 1, 6)),
		perf.Thresholds{})
	assert.Equal(t, perf.Pass, cmp.Verdict)
	assert.InDelta(t, 0.5, cmp.Rows[2].PerUnitMS, 1e-9)
	assert.Contains(t, cmp.Markdown(), "| Bulk import (100) | 500ms (p95 750ms) | 550ms (p95 825ms) | +50.0ms (+0.50ms/unit) | ✅ Yes |")

	// Custom thresholds, boundaries inclusive, and a missing operation.
	cmp = perf.Compare(rep(op("a", 1, 1), op("b", 1, 1), op("c", 1, 1)), rep(op("a", 1, 3), op("b", 1, 6)), perf.Thresholds{AcceptableMS: 2, RollbackMS: 4})
	assert.Equal(t, []string{perf.RowAcceptable, perf.RowRollback, perf.RowRollback}, verdicts(cmp))
	assert.Equal(t, perf.Rollback, cmp.Verdict)
	assert.Contains(t, cmp.Reason, "c: missing from the with-FKs run")

	cmp = perf.Compare(rep(op("a", 1, 1)), rep(op("a", 1, 4)), perf.Thresholds{AcceptableMS: 2, RollbackMS: 4})
	assert.Equal(t, perf.Warn, cmp.Verdict)
	assert.True(t, strings.HasPrefix(cmp.Reason, "above the acceptable limit"))

	assert.Equal(t, perf.Rollback, perf.Compare(rep(), rep(), perf.Thresholds{}).Verdict)

	// A baseline that never succeeded cannot pass silently.
	broken := loadgen.OpStats{Operation: "a", Units: 1, Count: 10, Errors: 10, ErrorRate: 1, FirstError: "relation missing"}
	cmp = perf.Compare(rep(broken), rep(op("a", 1, 4)), perf.Thresholds{})
	assert.Equal(t, perf.Warn, cmp.Verdict)
	assert.Contains(t, cmp.Rows[0].Note, "no successful execution in the baseline: relation missing")
}

func verdicts(c perf.Comparison) []string {
	var out []string
	for _, r := range c.Rows {
		out = append(out, r.Verdict)
	}
	return out
}
