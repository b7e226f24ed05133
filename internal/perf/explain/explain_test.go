package explain_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/perf"
	"github.com/fkrollout/fkrollout/internal/perf/explain"
	"github.com/fkrollout/fkrollout/internal/perf/loadgen"
	"github.com/fkrollout/fkrollout/internal/perf/loadgen/runner"
	"github.com/fkrollout/fkrollout/internal/testkit/perftest"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
)

// TestExplainFKs: the unindexed referencing column is caught scanning
// sequentially and gets a recommendation; the indexed one is not; building
// the recommended index on request flips the check; nothing the checks did
// persists.
func TestExplainFKs(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	db.Exec(t, perftest.Schema)
	fks := []plan.ForeignKey{perftest.FKIndexed, perftest.FKUnindexed}
	for _, fk := range fks {
		db.Exec(t, fk.AddSQL(true))
		db.Exec(t, fk.ValidateSQL())
	}
	before := db.Count(t, `SELECT count(*) FROM workspaces`) + db.Count(t, `SELECT count(*) FROM punchlists`)

	checks, err := explain.FKs(ctx, db.Pool, fks)
	require.NoError(t, err)
	require.Len(t, checks, 2)

	idx, seq := checks[0], checks[1]
	assert.False(t, idx.SeqScan, idx.ScanNode)
	assert.NotEmpty(t, idx.ScanNode)
	assert.Equal(t, "workflow_instances_workspace_id_idx", idx.Index)
	assert.Empty(t, idx.Recommendation)
	assert.True(t, idx.Advice.Covered)

	assert.True(t, seq.SeqScan, seq.ScanNode)
	assert.Equal(t, "Seq Scan", seq.ScanNode)
	assert.Positive(t, seq.RowsExamined)
	assert.Equal(t, `CREATE INDEX CONCURRENTLY IF NOT EXISTS "punchlists_workspace_id_fkr_idx" ON "public"."punchlists" ("workspace_id")`, seq.Recommendation)
	assert.Contains(t, seq.CheckQuery, `SELECT 1 FROM ONLY "public"."punchlists" x WHERE x."workspace_id" = $1 FOR KEY SHARE OF x`)

	// The parent-side delete (of an unreferenced workspace, rolled back)
	// fired each constraint's own trigger once.
	for _, c := range checks {
		assert.EqualValues(t, 1, c.DeleteCalls, c.FK+" "+c.DeleteNote)
		assert.Empty(t, c.DeleteNote)
	}
	assert.Equal(t, before, db.Count(t, `SELECT count(*) FROM workspaces`)+db.Count(t, `SELECT count(*) FROM punchlists`))

	// Only on request: the checks alone built nothing.
	assert.Zero(t, db.Count(t, `SELECT count(*) FROM pg_indexes WHERE indexname = 'punchlists_workspace_id_fkr_idx'`))
	built, err := explain.CreateRecommendedIndexes(ctx, db.Pool, checks, 0)
	require.Error(t, err, "a zero lock timeout is refused")
	assert.Empty(t, built)
	built, err = explain.CreateRecommendedIndexes(ctx, db.Pool, checks, 2e9)
	require.NoError(t, err)
	assert.Equal(t, []string{"punchlists_workspace_id_fkr_idx"}, built)

	md := perf.Report{FKChecks: checks, IndexesBuilt: built}.Markdown()
	assert.Contains(t, md, "| public.punchlists.fk_punchlists_workspace | ⚠️ Seq Scan |")
	assert.Contains(t, md, "`CREATE INDEX CONCURRENTLY IF NOT EXISTS")

	db.Exec(t, `ANALYZE punchlists`)
	again, err := explain.FKs(ctx, db.Pool, fks)
	require.NoError(t, err)
	assert.False(t, again[1].SeqScan, again[1].ScanNode)
	assert.Equal(t, "punchlists_workspace_id_fkr_idx", again[1].Index)
	assert.Empty(t, perf.NeedIndex(again))
}

func TestExplainFKsBeforeConstraintAndAllReferenced(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	db.Exec(t, perftest.Schema)
	db.Exec(t, `DELETE FROM workspaces WHERE id > 100`) // every parent is now referenced
	checks, err := explain.FKs(ctx, db.Pool, []plan.ForeignKey{perftest.FKUnindexed})
	require.NoError(t, err)
	assert.True(t, checks[0].SeqScan)
	assert.Contains(t, checks[0].DeleteNote, "constraint not present")

	db.Exec(t, perftest.FKIndexed.AddSQL(false))
	checks, err = explain.FKs(ctx, db.Pool, []plan.ForeignKey{perftest.FKIndexed})
	require.NoError(t, err)
	assert.Contains(t, checks[0].DeleteNote, "RESTRICT forbids")

	bad := perftest.FKIndexed
	bad.RefColumns = []string{"nope"}
	_, err = explain.FKs(ctx, db.Pool, []plan.ForeignKey{bad})
	assert.ErrorContains(t, err, `referenced column public.workspaces.nope does not exist`)
}

func TestExplainWorkload(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	db.Exec(t, perftest.Schema)
	db.Exec(t, perftest.FKIndexed.AddSQL(false))
	w, err := loadgen.ParseWorkload([]byte(perftest.Workload + `
  - name: query_notes
    sql: SELECT * FROM punchlists WHERE note = 'x' AND workspace_id = :workspace_id`))
	require.NoError(t, err)
	samples, err := runner.Sample(ctx, db.Pool, w)
	require.NoError(t, err)
	checks, err := explain.Workload(ctx, db.Pool, samples, explain.Options{})
	require.NoError(t, err)
	require.Len(t, checks, 3)
	assert.Contains(t, checks[0].TriggerMS, perftest.FKIndexed.Name, "the insert pays the FK check")
	assert.Equal(t, []string{"punchlists"}, checks[2].SeqScans)
	for _, c := range checks {
		assert.Empty(t, c.Error)
	}
	// Rolled back.
	assert.EqualValues(t, 20000, db.Count(t, `SELECT count(*) FROM workflow_instances`))
}

// TestExplainCompositeKeyWithQuotes: a two-column key whose values carry
// quotes and a mixed-case schema reach the checks intact.
func TestExplainCompositeKeyWithQuotes(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	db.Exec(t, `CREATE SCHEMA "Sales";
		CREATE TABLE "Sales"."Accounts" (region text, code int, PRIMARY KEY (region, code));
		INSERT INTO "Sales"."Accounts" VALUES ('O''Brien; DROP TABLE x --', 1), ('north', 2);
		CREATE TABLE "Sales"."Orders" (id int PRIMARY KEY, region text, code int);
		INSERT INTO "Sales"."Orders" SELECT g, 'north', 2 FROM generate_series(1, 5000) g;
		ANALYZE "Sales"."Orders";`)
	fk := plan.ForeignKey{Name: "Orders_Account", Table: plan.TableName{Schema: "Sales", Name: "Orders"}, Columns: []string{"region", "code"},
		RefTable: plan.TableName{Schema: "Sales", Name: "Accounts"}, RefColumns: []string{"region", "code"}}
	db.Exec(t, fk.AddSQL(false))
	checks, err := explain.FKs(ctx, db.Pool, []plan.ForeignKey{fk})
	require.NoError(t, err)
	c := checks[0]
	assert.True(t, c.SeqScan)
	assert.EqualValues(t, 1, c.DeleteCalls, c.DeleteNote)
	assert.Equal(t, `CREATE INDEX CONCURRENTLY IF NOT EXISTS "Orders_region_code_fkr_idx" ON "Sales"."Orders" ("region", "code")`, c.Recommendation)
	assert.EqualValues(t, 2, db.Count(t, `SELECT count(*) FROM "Sales"."Accounts"`))
}
