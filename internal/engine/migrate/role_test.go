package migrate_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/engine/audit"
	"github.com/fkrollout/fkrollout/internal/engine/dbx"
	"github.com/fkrollout/fkrollout/internal/engine/migrate"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
)

// requireOrdinaryRole fails the test unless pool connects as a role without
// superuser, CREATEROLE or CREATEDB.
func requireOrdinaryRole(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	var super, createRole, createDB bool
	require.NoError(t, pool.QueryRow(context.Background(),
		`SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user`).Scan(&super, &createRole, &createDB))
	require.False(t, super || createRole || createDB, "the role must be an ordinary one (super=%v createrole=%v createdb=%v)", super, createRole, createDB)
	var isSuper string
	require.NoError(t, pool.QueryRow(context.Background(), `SHOW is_superuser`).Scan(&isSuper))
	require.Equal(t, "off", isSuper)
}

// Every phase of the engine through the role sql/role.sql sets up (a member
// of the tables' owner with CREATE on the database), never as a superuser:
// apply NOT VALID, validate (after remediating orphans into the
// quarantine), verify, rollback, and the restore of the quarantined rows.
// The fixtures are the admin's; pgtest.NewRole hands them to an owner role.
func TestEnginePhasesAsNonSuperuserRole(t *testing.T) {
	cases := []struct {
		name    string
		setup   string
		fk      plan.ForeignKey
		orphans int64 // rows without a parent, remediated by delete
		bad     string
		// validated is Validate's action: a partitioned table is
		// validated leaf by leaf during apply already.
		validated string
	}{
		{
			name: "plain",
			setup: `CREATE TABLE parent (id int PRIMARY KEY); CREATE TABLE child (id int PRIMARY KEY, parent_id int);
				INSERT INTO parent VALUES (1), (2); INSERT INTO child VALUES (1, 1), (2, 2), (3, NULL);`,
			fk:  plan.ForeignKey{Name: "fk_child_parent", Table: tn("public", "child"), Columns: []string{"parent_id"}, RefTable: tn("public", "parent"), RefColumns: []string{"id"}},
			bad: `INSERT INTO child VALUES (10, 99)`,
		},
		{
			name: "orphans in a quoted schema",
			setup: `CREATE SCHEMA "Sales"; CREATE TABLE "Sales"."Orders" (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY);
				CREATE TABLE "Sales"."Order Lines" (id serial PRIMARY KEY, "orderId" bigint NOT NULL, note text);
				INSERT INTO "Sales"."Orders" DEFAULT VALUES; INSERT INTO "Sales"."Orders" DEFAULT VALUES;
				INSERT INTO "Sales"."Order Lines" ("orderId", note) VALUES (1, 'ok'), (2, 'ok'), (40, 'orphan'), (41, 'orphan');`,
			fk: plan.ForeignKey{Name: "Order Lines_order_fk", Table: tn("Sales", "Order Lines"), Columns: []string{"orderId"},
				RefTable: tn("Sales", "Orders"), RefColumns: []string{"id"}, OnDelete: plan.ActionCascade},
			orphans: 2,
			bad:     `INSERT INTO "Sales"."Order Lines" ("orderId") VALUES (99)`,
		},
		{
			// Apply validates the leaves itself, so no orphans here
			// (internal/audit's role test remediates before applying).
			name:  "partitioned child",
			setup: partitionedSchema,
			fk: plan.ForeignKey{Name: "fk_events_parent", Table: tn("public", "events"), Columns: []string{"parent_id"},
				RefTable: tn("public", "parent"), RefColumns: []string{"id"}},
			bad:       `INSERT INTO events VALUES (3, 99)`,
			validated: migrate.ActionAlreadyValidated,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			db := pgtest.New(t)
			db.Exec(t, tc.setup)
			role := pgtest.NewRole(t, db)
			requireOrdinaryRole(t, role.Pool)
			p := plan.Plan{ForeignKeys: []plan.ForeignKey{tc.fk}}
			o := opts()

			// apply
			res, err := migrate.Apply(ctx, role.Pool, p, o)
			require.NoError(t, err)
			require.Len(t, res, 1)
			assert.Equal(t, migrate.ActionCreated, res[0].Action)
			assert.True(t, res[0].Owned)
			exists, _ := conState(t, db, tc.fk.Table, tc.fk.Name)
			assert.True(t, exists)
			assert.Equal(t, role.Name, ownerOf(t, db, "fkrollout"))

			// remediation (delete, with quarantine) when there are orphans
			if tc.orphans > 0 {
				_, err := migrate.Validate(ctx, role.Pool, p, o)
				require.ErrorIs(t, err, migrate.ErrOrphans)
				a, err := audit.AuditOne(ctx, role.Pool, tc.fk, audit.Options{})
				require.NoError(t, err)
				assert.Equal(t, tc.orphans, a.Orphans)
				rr, err := audit.Remediate(ctx, role.Pool, tc.fk, audit.ModeDelete, o.RolloutID, audit.RemediateOptions{BatchSize: 1, Lock: fastLock()})
				require.NoError(t, err)
				assert.Equal(t, tc.orphans, rr.Quarantined)
				assert.Equal(t, tc.orphans, db.Count(t, `SELECT count(*) FROM fkrollout.quarantine WHERE rollout_id = $1`, o.RolloutID))
			}

			// validate
			vr, err := migrate.Validate(ctx, role.Pool, p, o)
			require.NoError(t, err)
			want := tc.validated
			if want == "" {
				want = migrate.ActionValidated
			}
			assert.Equal(t, want, vr[0].Action)
			_, validated := conState(t, db, tc.fk.Table, tc.fk.Name)
			assert.True(t, validated)
			_, err = role.Pool.Exec(ctx, tc.bad)
			assert.Equal(t, dbx.CodeForeignKeyViolation, dbx.Code(err))
			ver, err := migrate.Verify(ctx, role.Pool, p)
			require.NoError(t, err)
			assert.True(t, ver[0].Exists && ver[0].Validated && ver[0].Owned)

			// rollback, then the quarantined rows go back
			rb, err := migrate.Rollback(ctx, role.Pool, o.RolloutID, p, o)
			require.NoError(t, err)
			require.NotEmpty(t, rb)
			assert.Equal(t, migrate.ActionDropped, rb[0].Action, rb[0].FK)
			for _, r := range rb[1:] {
				// Leaf constraints go with their partitioned parent's.
				assert.Contains(t, []string{migrate.ActionDropped, migrate.ActionAbsent}, r.Action, r.FK)
			}
			assert.Zero(t, db.Count(t, `SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND conname = $1`, tc.fk.Name))
			assert.Zero(t, ownerRows(t, db, o.RolloutID))
			if tc.orphans > 0 {
				n, err := audit.Restore(ctx, role.Pool, dbx.DefaultLockPolicy(), o.RolloutID, tc.fk.Name)
				require.NoError(t, err)
				assert.Equal(t, tc.orphans, n)
				a, err := audit.AuditOne(ctx, role.Pool, tc.fk, audit.Options{})
				require.NoError(t, err)
				assert.Equal(t, tc.orphans, a.Orphans, "the orphans are back after the rollback")
			}
		})
	}
}

func ownerOf(t *testing.T, db *pgtest.DB, schema string) string {
	t.Helper()
	var owner string
	require.NoError(t, db.Pool.QueryRow(context.Background(), `SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = $1`, schema).Scan(&owner))
	return owner
}
