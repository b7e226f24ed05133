package migrate_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/engine/migrate"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
)

func runOpts(rollout, run string) migrate.Options {
	return migrate.Options{RolloutID: rollout, RunID: run, Lock: fastLock()}
}

// ownerRun returns the run_id recorded for the constraint ("<null>" for
// NULL, "<none>" without a row).
func ownerRun(t *testing.T, db *pgtest.DB, name string) string {
	t.Helper()
	n := db.Count(t, `SELECT count(*) FROM fkrollout.constraints WHERE constraint_name = $1`, name)
	if n == 0 {
		return "<none>"
	}
	var run string
	require.NoError(t, db.Pool.QueryRow(context.Background(),
		`SELECT coalesce(run_id, '<null>') FROM fkrollout.constraints WHERE constraint_name = $1`, name).Scan(&run))
	return run
}

// A workflow id reused after its run closed: run B of the same rollout id
// must not own, and so must not roll back, the validated FK run A created.
func TestReusedRolloutIDDoesNotTakeOverAnotherRun(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, lockSchema+`INSERT INTO parent VALUES (1); INSERT INTO child VALUES (1, 1);`)
	ctx := context.Background()
	p := plan.Plan{ForeignKeys: []plan.ForeignKey{lockFK}}
	a, b := runOpts("r1", "run-a"), runOpts("r1", "run-b")

	res, err := migrate.Apply(ctx, db.Pool, p, a)
	require.NoError(t, err)
	require.Len(t, res, 1)
	assert.Equal(t, migrate.ActionCreated, res[0].Action)
	assert.True(t, res[0].Owned)
	res, err = migrate.Validate(ctx, db.Pool, p, a)
	require.NoError(t, err)
	assert.Equal(t, migrate.ActionValidated, res[0].Action)
	assert.True(t, res[0].Owned)
	assert.Equal(t, "run-a", ownerRun(t, db, lockFK.Name))

	// Run B applies the same plan: the constraint is there, but not B's.
	res, err = migrate.Apply(ctx, db.Pool, p, b)
	require.NoError(t, err)
	assert.Equal(t, migrate.ActionExistsSame, res[0].Action)
	assert.False(t, res[0].Owned)
	assert.Contains(t, res[0].Note, "run-a")
	assert.Equal(t, "run-a", ownerRun(t, db, lockFK.Name), "B did not take the row over")
	res, err = migrate.Validate(ctx, db.Pool, p, b)
	require.NoError(t, err)
	assert.Equal(t, migrate.ActionAlreadyValidated, res[0].Action)
	assert.False(t, res[0].Owned)

	vs, err := migrate.VerifyRun(ctx, db.Pool, p, b)
	require.NoError(t, err)
	assert.Equal(t, []migrate.Verification{{FK: lockFK.ID(), Exists: true, Validated: true, SameDefinition: true,
		Owned: false, OwnerRollout: "r1", OwnerRun: "run-a"}}, vs)
	vs, err = migrate.VerifyRun(ctx, db.Pool, p, a)
	require.NoError(t, err)
	assert.True(t, vs[0].Owned)

	// B's rollback drops nothing and says so.
	res, err = migrate.Rollback(ctx, db.Pool, "r1", p, b)
	require.NoError(t, err)
	require.Len(t, res, 1)
	assert.Equal(t, migrate.ActionNotOwned, res[0].Action)
	assert.False(t, res[0].Owned)
	res, err = migrate.Rollback(ctx, db.Pool, "r1", plan.Plan{}, b)
	require.NoError(t, err)
	assert.Empty(t, res, "without a plan B's rollback sees only B's rows")
	exists, validated := conState(t, db, lockFK.Table, lockFK.Name)
	assert.True(t, exists && validated, "A's validated FK survives B's rollback")
	assert.Equal(t, "run-a", ownerRun(t, db, lockFK.Name))

	// A's rollback drops it.
	res, err = migrate.Rollback(ctx, db.Pool, "r1", p, a)
	require.NoError(t, err)
	require.Len(t, res, 1)
	assert.Equal(t, migrate.ActionDropped, res[0].Action)
	exists, _ = conState(t, db, lockFK.Table, lockFK.Name)
	assert.False(t, exists)
	assert.Zero(t, ownerRows(t, db, "r1"))
}

// Rollback drops a constraint only for the run that owns it; rows written
// before runs were recorded (run_id NULL) stay their rollout's.
func TestRollbackByRun(t *testing.T) {
	cases := []struct {
		name       string
		recordedAs string // run_id of the ownership row; "" writes NULL
		rollout    string
		run        string
		want       string
	}{
		{name: "same run", recordedAs: "run-a", rollout: "r1", run: "run-a", want: migrate.ActionDropped},
		{name: "other run", recordedAs: "run-a", rollout: "r1", run: "run-b", want: migrate.ActionNotOwned},
		{name: "legacy row, any later run of the rollout", recordedAs: "", rollout: "r1", run: "run-b", want: migrate.ActionDropped},
		{name: "no run given: every run of the rollout", recordedAs: "run-a", rollout: "r1", run: "", want: migrate.ActionDropped},
		{name: "other rollout, same run id", recordedAs: "run-a", rollout: "r2", run: "run-a", want: migrate.ActionNotOwned},
		{name: "legacy row, other rollout", recordedAs: "", rollout: "r2", run: "run-b", want: migrate.ActionNotOwned},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := pgtest.New(t)
			db.Exec(t, lockSchema)
			ctx := context.Background()
			p := plan.Plan{ForeignKeys: []plan.ForeignKey{lockFK}}
			_, err := migrate.Apply(ctx, db.Pool, p, runOpts("r1", tc.recordedAs))
			require.NoError(t, err)
			if tc.recordedAs == "" {
				assert.Equal(t, "<null>", ownerRun(t, db, lockFK.Name))
			}

			vs, err := migrate.VerifyRun(ctx, db.Pool, p, runOpts(tc.rollout, tc.run))
			require.NoError(t, err)
			assert.Equal(t, tc.want == migrate.ActionDropped, vs[0].Owned, "Verify agrees with Rollback")

			res, err := migrate.Rollback(ctx, db.Pool, tc.rollout, p, runOpts(tc.rollout, tc.run))
			require.NoError(t, err)
			require.Len(t, res, 1)
			assert.Equal(t, tc.want, res[0].Action)
			exists, _ := conState(t, db, lockFK.Table, lockFK.Name)
			assert.Equal(t, tc.want != migrate.ActionDropped, exists)
			if tc.want != migrate.ActionDropped {
				assert.Equal(t, int64(1), ownerRows(t, db, "r1"), "ownership row left for its run")
			}
		})
	}
}

// A rollout in flight during the upgrade wrote its row before run_id
// existed; a run of it still owns the constraint and can roll it back.
func TestLegacyOwnershipSurvivesUpgrade(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, lockSchema+`
		ALTER TABLE child ADD CONSTRAINT fk_child_parent FOREIGN KEY (parent_id) REFERENCES parent (id) NOT VALID;
		CREATE SCHEMA fkrollout;
		CREATE TABLE fkrollout.constraints (
		    table_schema text NOT NULL, table_name text NOT NULL, constraint_name text NOT NULL,
		    rollout_id text NOT NULL, definition text NOT NULL, priority int NOT NULL,
		    created_at timestamptz NOT NULL DEFAULT now(),
		    PRIMARY KEY (table_schema, table_name, constraint_name));
		INSERT INTO fkrollout.constraints (table_schema, table_name, constraint_name, rollout_id, definition, priority)
		VALUES ('public', 'child', 'fk_child_parent', 'r1', '', 0);`)
	ctx := context.Background()
	p := plan.Plan{ForeignKeys: []plan.ForeignKey{lockFK}}
	b := runOpts("r1", "run-b")

	// Read before anything added run_id.
	vs, err := migrate.VerifyRun(ctx, db.Pool, p, b)
	require.NoError(t, err)
	assert.True(t, vs[0].Owned)
	assert.Equal(t, "r1", vs[0].OwnerRollout)
	assert.Empty(t, vs[0].OwnerRun)

	// Apply upgrades the schema; the legacy row stays the rollout's but is
	// not claimed as created by this run, nor rewritten.
	res, err := migrate.Apply(ctx, db.Pool, p, b)
	require.NoError(t, err)
	assert.Equal(t, migrate.ActionExistsSame, res[0].Action)
	assert.True(t, res[0].Owned)
	assert.Equal(t, "<null>", ownerRun(t, db, lockFK.Name))
	res, err = migrate.Validate(ctx, db.Pool, p, b)
	require.NoError(t, err)
	assert.Equal(t, migrate.ActionValidated, res[0].Action)
	assert.True(t, res[0].Owned)

	other, err := migrate.Rollback(ctx, db.Pool, "r2", p, runOpts("r2", "run-b"))
	require.NoError(t, err)
	assert.Equal(t, migrate.ActionNotOwned, other[0].Action)

	res, err = migrate.Rollback(ctx, db.Pool, "r1", p, b)
	require.NoError(t, err)
	require.Len(t, res, 1)
	assert.Equal(t, migrate.ActionDropped, res[0].Action)
	exists, _ := conState(t, db, lockFK.Table, lockFK.Name)
	assert.False(t, exists)
	assert.Zero(t, ownerRows(t, db, "r1"))
}

// A stale row (its constraint dropped by hand) is replaced by the run that
// re-creates the constraint; a row whose constraint is live never is.
func TestStaleOwnershipRowIsReplacedLiveOneIsNot(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, lockSchema)
	ctx := context.Background()
	p := plan.Plan{ForeignKeys: []plan.ForeignKey{lockFK}}

	_, err := migrate.Apply(ctx, db.Pool, p, runOpts("r1", "run-a"))
	require.NoError(t, err)
	db.Exec(t, `ALTER TABLE child DROP CONSTRAINT fk_child_parent`)

	res, err := migrate.Apply(ctx, db.Pool, p, runOpts("r1", "run-b"))
	require.NoError(t, err)
	assert.Equal(t, migrate.ActionCreated, res[0].Action)
	assert.True(t, res[0].Owned)
	assert.Equal(t, "run-b", ownerRun(t, db, lockFK.Name))

	// Run A's rollback no longer drops it.
	res, err = migrate.Rollback(ctx, db.Pool, "r1", p, runOpts("r1", "run-a"))
	require.NoError(t, err)
	assert.Equal(t, migrate.ActionNotOwned, res[0].Action)
	exists, _ := conState(t, db, lockFK.Table, lockFK.Name)
	assert.True(t, exists)

	// A second apply of run B is idempotent and keeps the row.
	res, err = migrate.Apply(ctx, db.Pool, p, runOpts("r1", "run-b"))
	require.NoError(t, err)
	assert.Equal(t, migrate.ActionCreated, res[0].Action)
	assert.Equal(t, "run-b", ownerRun(t, db, lockFK.Name))
}
