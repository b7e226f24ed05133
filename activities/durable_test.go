package activities

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/config"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
	"github.com/fkrollout/fkrollout/workflows/rollout"
	"github.com/fkrollout/fkrollout/workflows/steps"
)

const durableFixture = `CREATE TABLE parent (id int PRIMARY KEY);
	CREATE TABLE child (id int PRIMARY KEY, parent_id int NOT NULL);
	INSERT INTO parent VALUES (1); INSERT INTO child VALUES (1, 1);`

// A retried Backup activity of the same workflow run reuses the completed
// backup (verified by its manifest) instead of dumping into new files.
func TestBackupRetryReusesTheCompletedBackup(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, durableFixture)
	cfg := cfgWith(map[string]config.Environment{"production": {DSN: db.DSN}})
	cfg.BackupDir = filepath.Join(t.TempDir(), "backups")
	env, _ := newEnv(t, cfg)
	in := rollout.BackupInput{Environment: "production", RolloutID: "fkr-backup-1", Plan: plan.Plan{ForeignKeys: []plan.ForeignKey{childParentFK()}}}

	var first, again rollout.BackupResult
	v, err := env.ExecuteActivity(rollout.ActBackup, in)
	require.NoError(t, err)
	require.NoError(t, v.Get(&first))
	require.False(t, first.Reused)
	require.NotEmpty(t, first.Artifacts)

	v, err = env.ExecuteActivity(rollout.ActBackup, in)
	require.NoError(t, err)
	require.NoError(t, v.Get(&again))
	assert.True(t, again.Reused, "the retry found the completed backup")
	assert.Equal(t, first.Artifacts, again.Artifacts)
}

// VALIDATE of a constraint someone dropped is a non-retryable
// ConstraintMissing (the workflow's retry applies it again); a rollback
// that keeps validated constraints drops only NOT VALID ones.
func TestMissingConstraintAndKeepValidatedRollback(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, durableFixture+`CREATE TABLE other (id int PRIMARY KEY, parent_id int NOT NULL); INSERT INTO other VALUES (1, 1);`)
	env, _ := newEnv(t, cfgWith(map[string]config.Environment{"staging": {DSN: db.DSN}}))
	fk := childParentFK()
	otherFK := plan.ForeignKey{Name: "fk_other_parent", Table: plan.TableName{Schema: "public", Name: "other"}, Columns: []string{"parent_id"},
		RefTable: plan.TableName{Schema: "public", Name: "parent"}, RefColumns: []string{"id"}, Priority: plan.PriorityHigh}
	for _, f := range []plan.ForeignKey{fk, otherFK} {
		_, err := env.ExecuteActivity(rollout.ActApplyConstraint, rollout.ConstraintInput{Environment: "staging", RolloutID: "r-1", RunID: "run-1", FK: f})
		require.NoError(t, err)
	}

	db.Exec(t, `ALTER TABLE child DROP CONSTRAINT fk_child_parent`)
	_, err := env.ExecuteActivity(rollout.ActValidateConstraint, rollout.ConstraintInput{Environment: "staging", RolloutID: "r-1", RunID: "run-1", FK: fk})
	require.Error(t, err)
	typ, nonRetryable := appErrType(t, err)
	assert.Equal(t, steps.ErrTypeMissing, typ)
	assert.True(t, nonRetryable)

	// Applied again, validated; other stays NOT VALID.
	_, err = env.ExecuteActivity(rollout.ActApplyConstraint, rollout.ConstraintInput{Environment: "staging", RolloutID: "r-1", RunID: "run-1", FK: fk})
	require.NoError(t, err)
	_, err = env.ExecuteActivity(rollout.ActValidateConstraint, rollout.ConstraintInput{Environment: "staging", RolloutID: "r-1", RunID: "run-1", FK: fk})
	require.NoError(t, err)

	v, err := env.ExecuteActivity(rollout.ActRollback, rollout.RollbackInput{Environment: "staging", RolloutID: "r-1", RunID: "run-1",
		Plan: plan.Plan{ForeignKeys: []plan.ForeignKey{fk, otherFK}}, KeepValidated: true})
	require.NoError(t, err)
	var res []rollout.ConstraintResult
	require.NoError(t, v.Get(&res))
	actions := map[string]string{}
	for _, r := range res {
		actions[r.FK] = r.Action
	}
	assert.Equal(t, map[string]string{"fk_child_parent": "kept-validated", "fk_other_parent": "dropped"}, actions)
	var n int
	require.NoError(t, db.Pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_constraint WHERE conname IN ('fk_child_parent', 'fk_other_parent')`).Scan(&n))
	assert.Equal(t, 1, n, "the validated one stays")
}
