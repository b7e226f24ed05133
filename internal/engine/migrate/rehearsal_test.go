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

// The rollback rehearsal of a rollout: its run applies and validates, drops
// what it created, then applies and validates again. The run owns the
// constraints again afterwards (a later real rollback drops them), and a
// constraint another run created is neither dropped nor taken over.
func TestRehearsalApplyRollbackApplyInOneRun(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, `CREATE TABLE p (id int PRIMARY KEY); CREATE TABLE c (id int, p_id int, q_id int);
		INSERT INTO p VALUES (1); INSERT INTO c VALUES (1, 1, 1);`)
	ctx := context.Background()
	mine := plan.ForeignKey{Name: "fk_c_p", Table: tn("public", "c"), Columns: []string{"p_id"}, RefTable: tn("public", "p"), RefColumns: []string{"id"}}
	theirs := plan.ForeignKey{Name: "fk_c_q", Table: tn("public", "c"), Columns: []string{"q_id"}, RefTable: tn("public", "p"), RefColumns: []string{"id"}}
	other := migrate.Options{RolloutID: "r0", RunID: "run-0", Lock: fastLock()}
	_, err := migrate.Apply(ctx, db.Pool, plan.Plan{ForeignKeys: []plan.ForeignKey{theirs}}, other)
	require.NoError(t, err)

	o := migrate.Options{RolloutID: "r1", RunID: "run-1", Lock: fastLock()}
	p := plan.Plan{ForeignKeys: []plan.ForeignKey{mine, theirs}}
	for round := range 2 {
		res, err := migrate.Apply(ctx, db.Pool, p, o)
		require.NoError(t, err, "round %d", round)
		_, err = migrate.Validate(ctx, db.Pool, plan.Plan{ForeignKeys: []plan.ForeignKey{mine}}, o)
		require.NoError(t, err)
		exists, validated := conState(t, db, mine.Table, mine.Name)
		assert.True(t, exists && validated, "round %d: applied and validated", round)
		assert.Equal(t, int64(1), ownerRows(t, db, "r1"), "round %d: the run owns its constraint again", round)
		require.Len(t, res, 2)
		if round == 1 {
			break
		}
		rb, err := migrate.Rollback(ctx, db.Pool, "r1", p, o)
		require.NoError(t, err)
		actions := map[string]string{}
		for _, r := range rb {
			actions[r.FK] = r.Action
		}
		// Results name a constraint by its id or its name.
		assert.Equal(t, "dropped", actions[mine.ID()]+actions[mine.Name], "the run's own constraint is dropped")
		exists, _ = conState(t, db, mine.Table, mine.Name)
		assert.False(t, exists)
		exists, _ = conState(t, db, theirs.Table, theirs.Name)
		assert.True(t, exists, "another run's constraint stays")
		assert.Zero(t, ownerRows(t, db, "r1"))
	}
	assert.Equal(t, int64(1), ownerRows(t, db, "r0"), "the other run still owns its constraint")
	_, err = db.Pool.Exec(ctx, `INSERT INTO c VALUES (2, 99, 1)`)
	assert.Error(t, err, "the re-added constraint guards writes")
}
