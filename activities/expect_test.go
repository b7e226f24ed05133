package activities

import (
	"encoding/csv"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/config"
	"github.com/fkrollout/fkrollout/internal/engine/expect"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
	"github.com/fkrollout/fkrollout/workflows/rollout"
	"github.com/fkrollout/fkrollout/workflows/steps"
)

// The plan's figures and the environment's runbook query, measured on
// PostgreSQL through the activity; a plan naming a query the worker does
// not define fails, never passes.
func TestCheckExpectationsActivity(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, `CREATE TABLE parent (id int PRIMARY KEY);
		CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent(id), qty int CHECK (qty > 0));
		INSERT INTO parent VALUES (1); INSERT INTO child VALUES (1, 1, 3);`)
	zero := "0"
	cfg := cfgWith(map[string]config.Environment{"staging": {DSN: db.DSN, Expect: expect.Config{
		CheckConstraints: plan.Exactly(1),
		Queries:          []expect.Query{{Name: "no zero qty", SQL: "SELECT count(*) FROM child WHERE qty = 0", ExpectValue: &zero}},
	}}})
	require.NoError(t, cfg.Validate())
	env, _ := newEnv(t, cfg)
	aligned := true
	p := plan.Plan{ForeignKeys: []plan.ForeignKey{childParentFK()},
		Expect: &plan.Expectations{ForeignKeys: plan.AtLeast(1), Tables: plan.Exactly(3), Orphans: plan.Exactly(0), TypesAligned: &aligned, Queries: []string{"missing"}}}
	v, err := env.ExecuteActivity(rollout.ActCheckExpectations, rollout.ExpectInput{Environment: "staging", Plan: p, Orphans: 0, OrphansKnown: true})
	require.NoError(t, err)
	var res []rollout.ExpectationResult
	require.NoError(t, v.Get(&res))
	got := map[string]bool{}
	for _, r := range res {
		got[r.Source+"/"+r.Name+"="+r.Actual] = r.OK
	}
	assert.Equal(t, map[string]bool{
		"plan/Validated foreign keys=1":                            true,
		"plan/Tables=2":                                            false,
		"plan/Orphaned rows (planned constraints)=0":               true,
		"plan/Column types aligned=aligned":                        true,
		"worker configuration/CHECK constraints=1":                 true,
		"plan/Runbook query missing=not configured":                false,
		`worker configuration/Runbook query no zero qty=value "0"`: true,
	}, got)

	// Nothing expected anywhere: no result and no database needed.
	env2, _ := newEnv(t, cfgWith(map[string]config.Environment{"qa": {DSN: "postgres://nobody@127.0.0.1:1/none"}}))
	v, err = env2.ExecuteActivity(rollout.ActCheckExpectations, rollout.ExpectInput{Environment: "qa", Plan: plan.Plan{}})
	require.NoError(t, err)
	require.NoError(t, v.Get(&res))
	assert.Empty(t, res)
}

// The export lands next to the environment's backup, with the configured
// context columns; the workflow gets the path and counts only.
func TestExportOrphansActivity(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, `CREATE TABLE parent (id int PRIMARY KEY);
		CREATE TABLE child (id int PRIMARY KEY, parent_id int NOT NULL, note text, secret text);
		INSERT INTO parent VALUES (1); INSERT INTO child VALUES (1, 1, 'ok', 's1'), (2, 99, 'lost', 's2'), (3, 98, NULL, 's3');`)
	cfg := cfgWith(map[string]config.Environment{"staging": {DSN: db.DSN}})
	cfg.BackupDir = t.TempDir()
	cfg.Audit.ExportColumns = map[string][]string{"child": {"note"}}
	require.NoError(t, cfg.Validate())
	env, _ := newEnv(t, cfg)
	v, err := env.ExecuteActivity(rollout.ActExportOrphans, rollout.ExportOrphansInput{Environment: "staging", RolloutID: "r/1", Round: 2, FKs: []plan.ForeignKey{childParentFK()}})
	require.NoError(t, err)
	var res []rollout.OrphanExport
	require.NoError(t, v.Get(&res))
	require.Len(t, res, 1)
	assert.Equal(t, cfg.BackupDir+"/r_1/staging/orphans/round-2/fk_child_parent.csv", res[0].Path)
	assert.Equal(t, int64(2), res[0].Rows)
	assert.Equal(t, int64(2), res[0].Orphans)
	f, err := os.Open(res[0].Path)
	require.NoError(t, err)
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	require.NoError(t, err)
	assert.Equal(t, [][]string{{"id", "parent_id", "note"}, {"2", "99", "lost"}, {"3", "98", ""}}, recs)
	raw, _ := os.ReadFile(res[0].Path)
	assert.False(t, strings.Contains(string(raw), "s2"), "a column nobody configured is not exported")
}

// A plan naming a runbook query the first environment does not define is
// refused before anything changes.
func TestParsePlanRefusesAnUndefinedRunbookQuery(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, `CREATE TABLE parent (id int PRIMARY KEY); CREATE TABLE child (id int PRIMARY KEY, parent_id int);`)
	zero := "0"
	cfg := cfgWith(map[string]config.Environment{"staging": {DSN: db.DSN, Expect: expect.Config{
		Queries: []expect.Query{{Name: "known", SQL: "SELECT 0", ExpectValue: &zero}}}}})
	env, _ := newEnv(t, cfg)
	text := "expect: {queries: [known, unknown]}\nforeign_keys:\n  - {name: fk_child_parent, table: child, columns: [parent_id], references: parent}\n"
	_, err := env.ExecuteActivity(rollout.ActParsePlan, rollout.ParsePlanInput{Text: text, Format: "yaml", Environment: "staging"})
	require.Error(t, err)
	typ, nonRetryable := appErrType(t, err)
	assert.Equal(t, steps.ErrTypePlan, typ)
	assert.True(t, nonRetryable)
	assert.Contains(t, err.Error(), `expect.queries: "unknown" not defined in the worker configuration of environment staging (defined: known)`)

	v, err := env.ExecuteActivity(rollout.ActParsePlan, rollout.ParsePlanInput{Text: strings.Replace(text, ", unknown", "", 1), Format: "yaml", Environment: "staging"})
	require.NoError(t, err)
	var res rollout.ParsePlanResult
	require.NoError(t, v.Get(&res))
	require.NotNil(t, res.Plan.Expect)
	assert.Equal(t, []string{"known"}, res.Plan.Expect.Queries)
}
