package demo_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/demo"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/engine/sqlplan"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
	sqlassets "github.com/fkrollout/fkrollout/sql"
)

func seeded(t *testing.T, o demo.Options) (*pgtest.DB, demo.Counts) {
	t.Helper()
	db := pgtest.New(t)
	ctx := context.Background()
	require.NoError(t, demo.Setup(ctx, db.Pool))
	c, err := demo.Seed(ctx, db.Pool, o)
	require.NoError(t, err)
	return db, c
}

func demoPlan(t *testing.T) plan.Plan {
	t.Helper()
	p, err := plan.ParseYAML([]byte(sqlassets.Plan))
	require.NoError(t, err)
	return p
}

// orphans counts rows of fk's child whose key has no parent (anti-join).
func orphans(t *testing.T, db *pgtest.DB, fk plan.ForeignKey) int64 {
	t.Helper()
	c, rc := pgx.Identifier{fk.Columns[0]}.Sanitize(), pgx.Identifier{fk.RefColumns[0]}.Sanitize()
	return db.Count(t, fmt.Sprintf(`SELECT count(*) FROM %s c WHERE c.%s IS NOT NULL
AND NOT EXISTS (SELECT 1 FROM %s p WHERE p.%s = c.%s)`, fk.Table.Sanitize(), c, fk.RefTable.Sanitize(), rc, c))
}

func TestSeedCountsAndNoOrphans(t *testing.T) {
	db, c := seeded(t, demo.Options{Workspaces: 3, WorkflowsPerWorkspace: 20, Seed: 7})
	want := map[string]int64{
		"workspaces": 3, "config_versions": 9, "atp_scope_master": 15, "vendor_master": 15,
		"approval_role_master": 12, "approval_policy_master": 6, "approval_policy_stages": 18,
		"cluster_master": 9, "cluster_approver_master": 18, "workflow_instances": 60,
		"workflow_stages": 180, "workflow_stage_actions": 180, "atp_submissions": 60,
		"atp_submission_documents": 120, "punchlists": 30, "punchlist_items": 90, "approver_overrides": 12,
	}
	assert.Equal(t, demo.Counts(want), c)
	for _, fk := range demoPlan(t).ForeignKeys {
		assert.Zero(t, orphans(t, db, fk), fk.Name)
	}
	// The application's own lookups find what they expect.
	assert.EqualValues(t, 1, db.Count(t, `SELECT count(*) FROM workspaces ws JOIN config_versions cv ON cv.workspace_id = ws.id
WHERE ws.code = 'XLSMART-AVIAT' AND cv.status = 'ACTIVE'`))
	// Exactly one FK before the rollout, and the partial unique index.
	assert.EqualValues(t, 1, db.Count(t, `SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace`))
	assert.EqualValues(t, 1, db.Count(t, `SELECT count(*) FROM pg_indexes WHERE schemaname = 'public' AND indexdef LIKE 'CREATE UNIQUE INDEX % WHERE %'`))
	assert.GreaterOrEqual(t, db.Count(t, `SELECT count(*) FROM pg_constraint WHERE contype = 'c' AND connamespace = 'public'::regnamespace`), int64(30))
}

func TestSeedIsDeterministicPerSeed(t *testing.T) {
	a, _ := seeded(t, demo.Options{Workspaces: 1, WorkflowsPerWorkspace: 4, Seed: 1})
	b, _ := seeded(t, demo.Options{Workspaces: 1, WorkflowsPerWorkspace: 4, Seed: 2})
	var ida, idb string
	require.NoError(t, a.Pool.QueryRow(context.Background(), "SELECT min(id) FROM workflow_instances").Scan(&ida))
	require.NoError(t, b.Pool.QueryRow(context.Background(), "SELECT min(id) FROM workflow_instances").Scan(&idb))
	assert.NotEqual(t, ida, idb)
}

func TestSeedRejectsBadOptions(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	require.NoError(t, demo.Setup(ctx, db.Pool))
	for _, o := range []demo.Options{
		{Workspaces: 0, WorkflowsPerWorkspace: 1},
		{Workspaces: 1, WorkflowsPerWorkspace: -1},
		{Workspaces: 1, WorkflowsPerWorkspace: 1, Orphans: map[string]int{"fk_nope": 1}},
	} {
		_, err := demo.Seed(ctx, db.Pool, o)
		assert.Error(t, err, "%+v", o)
	}
	assert.Zero(t, db.Count(t, "SELECT count(*) FROM workspaces"), "nothing written on bad input")
}

func TestInjectOrphans(t *testing.T) {
	inject := map[string]int{
		"fk_workflow_instances_config_version": 3,
		"fk_punchlist_items_punchlist":         5,
		"fk_approval_policy_stages_policy":     2,
		"fk_workflow_stage_actions_stage":      1,
	}
	db, c := seeded(t, demo.Options{Workspaces: 2, WorkflowsPerWorkspace: 10, Seed: 3, Orphans: inject})
	assert.EqualValues(t, 20+3, c["workflow_instances"])
	for _, fk := range demoPlan(t).ForeignKeys {
		assert.EqualValues(t, inject[fk.Name], orphans(t, db, fk), fk.Name)
	}
	ctx := context.Background()
	require.NoError(t, demo.InjectOrphans(ctx, db.Pool, "fk_vendor_master_workspace", 4))
	fk := demoPlan(t).ForeignKeys[8]
	require.Equal(t, "fk_vendor_master_workspace", fk.Name)
	assert.EqualValues(t, 4, orphans(t, db, fk))
	assert.ErrorContains(t, demo.InjectOrphans(ctx, db.Pool, "fk_missing", 1), "fk_missing")
}

// After a clean seed, the hand-written migration file (sql/migration.sql) runs as written — every
// foreign key added NOT VALID and validated — which proves the schema and
// the plan agree (tables, columns, types, unique parents).
func TestMigrationAppliesAndValidates(t *testing.T) {
	db, _ := seeded(t, demo.Options{Workspaces: 2, WorkflowsPerWorkspace: 10, Seed: 5})
	ctx := context.Background()
	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx)
	_, err = tx.Exec(ctx, sqlassets.Migration)
	require.NoError(t, err)
	var total, validated int
	require.NoError(t, tx.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE convalidated)
FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace`).Scan(&total, &validated))
	assert.Equal(t, 17, total)
	assert.Equal(t, 17, validated)
	// The plan YAML and the migration SQL describe the same constraints.
	fromSQL, err := sqlplan.ParseSQL(sqlassets.Migration)
	require.NoError(t, err)
	assert.Equal(t, fromSQL.ForeignKeys, demoPlan(t).ForeignKeys)
}

// With an orphan the same file fails at VALIDATE, as it would in staging.
func TestMigrationFailsWithOrphans(t *testing.T) {
	db, _ := seeded(t, demo.Options{Workspaces: 1, WorkflowsPerWorkspace: 4, Seed: 5,
		Orphans: map[string]int{"fk_punchlists_workflow_instance": 1}})
	_, err := db.Pool.Exec(context.Background(), "BEGIN; "+sqlassets.Migration+"; ROLLBACK")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "fk_punchlists_workflow_instance")
	_, _ = db.Pool.Exec(context.Background(), "ROLLBACK")
}

func TestCreateDatabase(t *testing.T) {
	ctx := context.Background()
	name := "fkr_demo_createdb_test"
	dsn, err := demo.CreateDatabase(ctx, pgtest.AdminDSN(), name, true)
	require.NoError(t, err)
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), pgtest.AdminDSN())
		if err == nil {
			_, _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			conn.Close(context.Background())
		}
	})
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	var got string
	require.NoError(t, conn.QueryRow(ctx, "SELECT current_database()").Scan(&got))
	conn.Close(ctx)
	assert.Equal(t, name, got)
	_, err = demo.CreateDatabase(ctx, pgtest.AdminDSN(), name, false)
	assert.Error(t, err, "exists and drop=false")
	_, err = demo.CreateDatabase(ctx, pgtest.AdminDSN(), name, true)
	assert.NoError(t, err, "recreated")
}
