package audit_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/engine/audit"
	"github.com/fkrollout/fkrollout/internal/engine/dbx"
	"github.com/fkrollout/fkrollout/internal/engine/migrate"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
)

// The rollout's data path as the worker runs it in production, through the
// non-superuser role of sql/role.sql: audit, ADD CONSTRAINT NOT VALID,
// remediation into the quarantine (delete, and set_null), VALIDATE,
// rollback of the constraint and restore of the quarantined rows. The
// fixture (a quoted schema, identity and generated columns) is the admin's;
// pgtest.NewRole hands it to an owner role the login role is a member of.
func TestRolloutAsNonSuperuserRole(t *testing.T) {
	for _, mode := range []audit.Mode{audit.ModeDelete, audit.ModeSetNull} {
		t.Run(string(mode), func(t *testing.T) {
			ctx := context.Background()
			db := pgtest.New(t)
			db.Exec(t, `
CREATE SCHEMA "Shop";
CREATE TABLE "Shop"."Orders" (id int PRIMARY KEY);
INSERT INTO "Shop"."Orders" VALUES (1), (2);
CREATE TABLE "Shop"."Line Items" (
    id      int PRIMARY KEY,
    seq     bigint GENERATED ALWAYS AS IDENTITY,
    "OrderId" int,
    doubled int GENERATED ALWAYS AS (id * 2) STORED
);
INSERT INTO "Shop"."Line Items" (id, "OrderId") SELECT g, CASE WHEN g % 3 = 0 THEN 500 + g ELSE 1 + g % 2 END FROM generate_series(1, 30) g;`)
			snapshot := func() []string {
				var out []string
				require.NoError(t, db.Pool.QueryRow(ctx, `SELECT array_agg(to_jsonb(t)::text ORDER BY id) FROM "Shop"."Line Items" t`).Scan(&out))
				return out
			}
			before := snapshot()
			role := pgtest.NewRole(t, db)
			var super bool
			require.NoError(t, role.Pool.QueryRow(ctx, `SELECT rolsuper FROM pg_roles WHERE rolname = current_user`).Scan(&super))
			require.False(t, super, "the worker's role is not a superuser")
			var current string
			require.NoError(t, role.Pool.QueryRow(ctx, `SELECT current_user`).Scan(&current))
			require.Equal(t, role.Name, current)

			fk := plan.ForeignKey{Name: "Line Items_order_fk", Table: plan.TableName{Schema: "Shop", Name: "Line Items"}, Columns: []string{"OrderId"},
				RefTable: plan.TableName{Schema: "Shop", Name: "Orders"}, RefColumns: []string{"id"}}
			p := plan.Plan{ForeignKeys: []plan.ForeignKey{fk}}
			lock := dbx.LockPolicy{LockTimeout: 500 * time.Millisecond, Attempts: 3, BaseBackoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
			mo := migrate.Options{RolloutID: "r-role", Lock: lock}

			res, err := audit.Audit(ctx, role.Pool, p.ForeignKeys, audit.Options{})
			require.NoError(t, err)
			require.Len(t, res, 1)
			assert.Equal(t, int64(10), res[0].Orphans)

			_, err = migrate.Apply(ctx, role.Pool, p, mo)
			require.NoError(t, err, "ADD CONSTRAINT ... NOT VALID as a member of the table owner")

			rr, err := audit.Remediate(ctx, role.Pool, fk, mode, mo.RolloutID, audit.RemediateOptions{BatchSize: 4, Lock: lock})
			require.NoError(t, err)
			assert.Equal(t, int64(10), rr.Quarantined)
			assert.Equal(t, int64(10), db.Count(t, `SELECT count(*) FROM fkrollout.quarantine WHERE rollout_id = 'r-role' AND action = $1`, string(mode)))
			var quarantineOwner string
			require.NoError(t, db.Pool.QueryRow(ctx, `SELECT relowner::regrole::text FROM pg_class WHERE oid = 'fkrollout.quarantine'::regclass`).Scan(&quarantineOwner))
			assert.Equal(t, role.Name, quarantineOwner, "the quarantine is created by the worker's role")

			vr, err := migrate.Validate(ctx, role.Pool, p, mo)
			require.NoError(t, err)
			assert.Equal(t, migrate.ActionValidated, vr[0].Action)

			rb, err := migrate.Rollback(ctx, role.Pool, mo.RolloutID, p, mo)
			require.NoError(t, err)
			require.Len(t, rb, 1)
			assert.Equal(t, migrate.ActionDropped, rb[0].Action)
			n, err := audit.Restore(ctx, role.Pool, dbx.DefaultLockPolicy(), mo.RolloutID, fk.Name)
			require.NoError(t, err)
			assert.Equal(t, int64(10), n)
			assert.Equal(t, before, snapshot(), "rollback and restore give back exactly the rows there were")
		})
	}
}
