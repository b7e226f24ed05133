package activities

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/config"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/rollout"
	"github.com/fkrollout/fkrollout/workflows/steps"
)

// A step PostgreSQL refuses deterministically comes back non-retryable as
// DeterministicError with the SQLSTATE, so the workflow asks at once.
func TestDeterministicErrorsAreNotRetried(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, `CREATE TABLE parent (id int PRIMARY KEY, code text UNIQUE);
		CREATE TABLE child (id int PRIMARY KEY, parent_id int NOT NULL, label text);`)
	env, _ := newEnv(t, cfgWith(map[string]config.Environment{"staging": {DSN: db.DSN}}))
	cases := []struct {
		name, sqlstate string
		edit           func(*plan.ForeignKey)
	}{
		{"undefined column", "42703", func(fk *plan.ForeignKey) { fk.Columns = []string{"nope"} }},
		{"undefined table", "42P01", func(fk *plan.ForeignKey) { fk.Table.Name = "nope" }},
		{"type mismatch", "42804", func(fk *plan.ForeignKey) { fk.RefColumns = []string{"code"} }},
		{"no unique key", "42830", func(fk *plan.ForeignKey) {
			fk.Columns, fk.RefTable.Name, fk.RefColumns = []string{"label"}, "child", []string{"label"}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fk := childParentFK()
			c.edit(&fk)
			_, err := env.ExecuteActivity(rollout.ActApplyConstraint, rollout.ConstraintInput{Environment: "staging", RolloutID: "r-1", FK: fk})
			require.Error(t, err)
			typ, nonRetryable := appErrType(t, err)
			assert.Equal(t, steps.ErrTypeDeterministic, typ)
			assert.True(t, nonRetryable)
			assert.Contains(t, err.Error(), c.sqlstate)
		})
	}
}

// The impact of a chain: a plain delete is impossible with the reason, and
// delete-with-dependents then removes the dependent rows with a copy each.
func TestImpactAndDeleteWithDependents(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, `CREATE TABLE parent (id int PRIMARY KEY);
		CREATE TABLE child (id int PRIMARY KEY, parent_id int NOT NULL);
		CREATE TABLE grandchild (id int PRIMARY KEY, child_id int NOT NULL REFERENCES child (id));
		INSERT INTO parent VALUES (1); INSERT INTO child VALUES (1, 1), (2, 99); INSERT INTO grandchild VALUES (1, 2), (2, 2), (3, 1);`)
	env, _ := newEnv(t, cfgWith(map[string]config.Environment{"staging": {DSN: db.DSN}}))
	v, err := env.ExecuteActivity(rollout.ActRemediationImpact, rollout.ImpactInput{Environment: "staging", FK: childParentFK()})
	require.NoError(t, err)
	var imp rollout.Impact
	require.NoError(t, v.Get(&imp))
	assert.Equal(t, int64(1), imp.Orphans)
	require.Len(t, imp.Dependents, 1)
	assert.Equal(t, rollout.ImpactRow{Table: "public.grandchild", Constraint: "grandchild_child_id_fkey", Action: "NO ACTION", Rows: 2, Depth: 1}, imp.Dependents[0])
	assert.Contains(t, imp.Impossible[approval.ChoiceDelete], "public.grandchild")
	assert.Contains(t, imp.Impossible[approval.ChoiceSetNull], "NOT NULL")
	assert.NotContains(t, imp.Impossible, approval.ChoiceDeleteWithDependents)
	assert.NotContains(t, imp.Impossible[approval.ChoiceDelete], "delete_with_dependents", "choices named as the gate names them")

	_, err = env.ExecuteActivity(rollout.ActRemediate, rollout.RemediateInput{Environment: "staging", RolloutID: "r-1", FK: childParentFK(), Mode: rollout.ModeDelete})
	require.Error(t, err)
	typ, _ := appErrType(t, err)
	assert.Equal(t, steps.ErrTypeRemediation, typ, "a plain delete that would hit dependents is refused, not retried")

	v, err = env.ExecuteActivity(rollout.ActRemediate, rollout.RemediateInput{Environment: "staging", RolloutID: "r-1", RunID: "run-1", FK: childParentFK(), Mode: rollout.ModeDeleteWithDependents})
	require.NoError(t, err)
	var rem rollout.RemediationResult
	require.NoError(t, v.Get(&rem))
	assert.Equal(t, int64(3), rem.Quarantined)
	assert.ElementsMatch(t, []rollout.QuarantineCount{{Table: "public.child", Action: "delete", Rows: 1}, {Table: "public.grandchild", Action: "delete", Rows: 2}}, rem.Tables)
	assert.Equal(t, int64(1), db.Count(t, "SELECT count(*) FROM grandchild"))

	// Restore through the Quarantine activity puts all three back.
	v, err = env.ExecuteActivity(rollout.ActQuarantine, rollout.QuarantineInput{Environment: "staging", RolloutID: "r-1", RunID: "run-1", Restore: true})
	require.NoError(t, err)
	var q rollout.QuarantineResult
	require.NoError(t, v.Get(&q))
	assert.Empty(t, q.RestoreError)
	assert.Equal(t, int64(3), q.Restored)
	assert.Zero(t, q.Rows)
	assert.Equal(t, int64(3), db.Count(t, "SELECT count(*) FROM grandchild"))
}

// ParsePlan resolves REFERENCES t without columns to t's primary key in
// the first environment, and refuses a table without one by name.
func TestParsePlanResolvesImplicitReferencedColumns(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, `CREATE TABLE posts (post_key bigint PRIMARY KEY); CREATE TABLE comments (id int PRIMARY KEY, post_id bigint);
		CREATE TABLE tags (name text); CREATE TABLE post_tags (post_id bigint, tag text);`)
	env, _ := newEnv(t, cfgWith(map[string]config.Environment{"staging": {DSN: db.DSN}}))
	v, err := env.ExecuteActivity(rollout.ActParsePlan, rollout.ParsePlanInput{Text: "ALTER TABLE comments ADD FOREIGN KEY (post_id) REFERENCES posts;",
		Format: "sql", Environment: "staging"})
	require.NoError(t, err)
	var res rollout.ParsePlanResult
	require.NoError(t, v.Get(&res))
	require.Len(t, res.Plan.ForeignKeys, 1)
	assert.Equal(t, "comments_post_id_fkey", res.Plan.ForeignKeys[0].Name)
	assert.Equal(t, []string{"post_key"}, res.Plan.ForeignKeys[0].RefColumns)

	_, err = env.ExecuteActivity(rollout.ActParsePlan, rollout.ParsePlanInput{Text: "ALTER TABLE post_tags ADD FOREIGN KEY (tag) REFERENCES tags;",
		Format: "sql", Environment: "staging"})
	require.Error(t, err)
	typ, _ := appErrType(t, err)
	assert.Equal(t, steps.ErrTypePlan, typ)
	assert.Contains(t, err.Error(), "tags")

	_, err = env.ExecuteActivity(rollout.ActParsePlan, rollout.ParsePlanInput{Text: "-- nothing yet\n", Format: "sql"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "plan is empty")
}
