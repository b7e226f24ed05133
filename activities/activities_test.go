package activities

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/fkrollout/fkrollout/internal/config"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/monitor"
	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
	"github.com/fkrollout/fkrollout/workflows"
	"github.com/fkrollout/fkrollout/workflows/rollout"
	"github.com/fkrollout/fkrollout/workflows/steps"
)

func newEnv(t *testing.T, cfg *config.Config) (*testsuite.TestActivityEnvironment, *Activities) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	a := mustNew(t, cfg, nil, nil)
	t.Cleanup(a.Close)
	a.Register(env)
	return env, a
}

func cfgWith(envs map[string]config.Environment) *config.Config {
	return &config.Config{Environments: envs, BackupDir: "backups", Audit: config.AuditConfig{SampleLimit: 3, Parallelism: 1, RemediationBatch: 100}}
}

func appErrType(t *testing.T, err error) (string, bool) {
	t.Helper()
	var ae *temporal.ApplicationError
	require.True(t, errors.As(err, &ae), "want an application error, got %v", err)
	return ae.Type(), ae.NonRetryable()
}

func childParentFK() plan.ForeignKey {
	return plan.ForeignKey{Name: "fk_child_parent", Table: plan.TableName{Schema: "public", Name: "child"}, Columns: []string{"parent_id"},
		RefTable: plan.TableName{Schema: "public", Name: "parent"}, RefColumns: []string{"id"}, Priority: plan.PriorityHigh}
}

// VALIDATE hitting an orphan must come back as a non-retryable
// OrphansFound, which sends the workflow back to the remediation gate.
func TestValidateWithOrphansIsOrphansFound(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, `CREATE TABLE parent (id int PRIMARY KEY);
		CREATE TABLE child (id int PRIMARY KEY, parent_id int NOT NULL);
		INSERT INTO parent VALUES (1); INSERT INTO child VALUES (1, 1), (2, 99);`)
	env, _ := newEnv(t, cfgWith(map[string]config.Environment{"staging": {DSN: db.DSN}}))
	in := rollout.ConstraintInput{Environment: "staging", RolloutID: "r-1", FK: childParentFK()}

	v, err := env.ExecuteActivity(rollout.ActApplyConstraint, in)
	require.NoError(t, err)
	var applied rollout.ConstraintResult
	require.NoError(t, v.Get(&applied))
	assert.Equal(t, "fk_child_parent", applied.FK)

	_, err = env.ExecuteActivity(rollout.ActValidateConstraint, in)
	require.Error(t, err)
	typ, nonRetryable := appErrType(t, err)
	assert.Equal(t, steps.ErrTypeOrphans, typ)
	assert.True(t, nonRetryable)

	// The audit names the orphan; set-null is refused on a NOT NULL column.
	v, err = env.ExecuteActivity(rollout.ActAudit, rollout.AuditInput{Environment: "staging", FKs: []plan.ForeignKey{childParentFK()}})
	require.NoError(t, err)
	var figs []rollout.AuditFigure
	require.NoError(t, v.Get(&figs))
	require.Len(t, figs, 1)
	assert.Equal(t, int64(1), figs[0].Orphans)
	assert.False(t, figs[0].Nullable)
	require.NotEmpty(t, figs[0].Samples)
	assert.Contains(t, figs[0].Samples[0], "99")

	_, err = env.ExecuteActivity(rollout.ActRemediate, rollout.RemediateInput{Environment: "staging", RolloutID: "r-1", FK: childParentFK(), Mode: "set_null"})
	require.Error(t, err)
	typ, _ = appErrType(t, err)
	assert.Equal(t, steps.ErrTypeRemediation, typ)
	assert.Contains(t, err.Error(), "NOT NULL")

	// Delete quarantines first, then VALIDATE passes.
	v, err = env.ExecuteActivity(rollout.ActRemediate, rollout.RemediateInput{Environment: "staging", RolloutID: "r-1", FK: childParentFK(), Mode: "delete"})
	require.NoError(t, err)
	var rem rollout.RemediationResult
	require.NoError(t, v.Get(&rem))
	assert.Equal(t, int64(1), rem.Affected)
	assert.Equal(t, int64(1), db.Count(t, "SELECT count(*) FROM fkrollout.quarantine WHERE rollout_id = 'r-1'"))
	_, err = env.ExecuteActivity(rollout.ActValidateConstraint, in)
	require.NoError(t, err)
	assert.Equal(t, int64(1), db.Count(t, "SELECT count(*) FROM pg_constraint WHERE conname = 'fk_child_parent' AND convalidated"))
}

func TestConfigAndPlanErrorsAreNonRetryable(t *testing.T) {
	env, _ := newEnv(t, cfgWith(map[string]config.Environment{}))
	_, err := env.ExecuteActivity(rollout.ActCheckPlan, rollout.EnvInput{Environment: "qa"})
	require.Error(t, err)
	typ, nonRetryable := appErrType(t, err)
	assert.Equal(t, steps.ErrTypeConfig, typ)
	assert.True(t, nonRetryable)
	assert.Contains(t, err.Error(), `environment "qa" is not configured`)

	_, err = env.ExecuteActivity(rollout.ActParsePlan, rollout.ParsePlanInput{Text: "ALTER TABLE x ADD CONSTRAINT"})
	require.Error(t, err)
	typ, nonRetryable = appErrType(t, err)
	assert.Equal(t, steps.ErrTypePlan, typ)
	assert.True(t, nonRetryable)
}

func TestConnectionErrorsCarryNoPassword(t *testing.T) {
	env, _ := newEnv(t, cfgWith(map[string]config.Environment{"prod": {DSN: "postgres://app:sekret-pw@127.0.0.1:1/apms?connect_timeout=2"}}))
	_, err := env.ExecuteActivity(rollout.ActAudit, rollout.AuditInput{Environment: "prod", FKs: []plan.ForeignKey{childParentFK()}})
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "sekret-pw")
	assert.NotContains(t, err.Error(), "postgres://")
}

func TestDeployHooksCaptureOutputAndStopAtFailure(t *testing.T) {
	cfg := cfgWith(map[string]config.Environment{"production": {
		DSN: "postgres://app:hook-secret@db/apms",
		DeployHooks: []config.Hook{
			{Name: "generate", Command: []string{"sh", "-c", "echo generated client for $FKROLLOUT_ENVIRONMENT $FKROLLOUT_ROLLOUT_ID"}},
			{Name: "restart", Command: []string{"sh", "-c", "echo 'cannot reach postgres://app:hook-secret@db/apms' >&2; exit 3"}},
			{Name: "never", Command: []string{"sh", "-c", "echo should not run"}},
		},
	}})
	env, _ := newEnv(t, cfg)
	v, err := env.ExecuteActivity(rollout.ActRunDeployHooks, rollout.HooksInput{Environment: "production", RolloutID: "r-7"})
	require.NoError(t, err)
	var res []rollout.HookResult
	require.NoError(t, v.Get(&res))
	require.Len(t, res, 2, "hooks after a failure do not run")
	assert.True(t, res[0].OK)
	assert.Contains(t, res[0].Output, "generated client for production r-7")
	assert.False(t, res[1].OK)
	assert.Equal(t, 3, res[1].ExitCode)
	assert.Contains(t, res[1].Output, "cannot reach")
	assert.NotContains(t, res[1].Output, "hook-secret", "secrets are redacted from captured output")
}

func TestSmokeChecks(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/health":
			w.WriteHeader(http.StatusOK)
		case r.Method == http.MethodPost && strings.Contains(r.URL.Path, "workflow-instances"):
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"invalid config version"}`))
		default:
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	cfg := cfgWith(map[string]config.Environment{"production": {DSN: "postgres://x@y/z", SmokeChecks: []config.SmokeCheck{
		{Name: "health", URL: srv.URL + "/health"},
		{Name: "invalid data is 400", Method: "POST", URL: srv.URL + "/api/v1/workflow-instances", Body: `{"configVersionId":"invalid"}`, ExpectStatus: 400},
		{Name: "broken", URL: srv.URL + "/broken"},
	}}})
	env, _ := newEnv(t, cfg)
	v, err := env.ExecuteActivity(rollout.ActRunSmokeChecks, rollout.HooksInput{Environment: "production"})
	require.NoError(t, err)
	var res []rollout.SmokeResult
	require.NoError(t, v.Get(&res))
	require.Len(t, res, 3)
	assert.True(t, res[0].OK)
	assert.True(t, res[1].OK)
	assert.False(t, res[2].OK)
	assert.Equal(t, 500, res[2].Status)
}

// registered records the names activities register under.
type registered map[string]bool

func (r registered) RegisterActivityWithOptions(_ any, o activity.RegisterOptions) { r[o.Name] = true }

// Every activity any workflow schedules is registered by the worker's two
// activity sets, under the name the workflow uses.
func TestEveryWorkflowActivityIsRegistered(t *testing.T) {
	a := mustNew(t, cfgWith(nil), nil, nil)
	names := registered{}
	a.Register(names)
	NewMonitorActivities(a, monitor.Config{}).Register(names)
	for _, n := range workflows.ActivityNames() {
		assert.True(t, names[n], "%s is not registered", n)
	}
}

// A worker serving a fleet holds few connections per database: at most 4,
// handed back after a minute idle (a finished or gated rollout does not
// keep its database's connection slots).
func TestEnvironmentPoolGivesIdleConnectionsBack(t *testing.T) {
	db := pgtest.New(t)
	a := mustNew(t, cfgWith(map[string]config.Environment{"tenant_a": {DSN: db.DSN}}), nil, nil)
	defer a.Close()
	p, err := a.pool(context.Background(), "tenant_a")
	require.NoError(t, err)
	assert.Equal(t, int32(4), p.Config().MaxConns)
	assert.Equal(t, time.Minute, p.Config().MaxConnIdleTime)
	again, err := a.pool(context.Background(), "tenant_a")
	require.NoError(t, err)
	assert.Same(t, p, again, "one pool per environment")
}

// The workflow's run id reaches ownership: a later run of the same rollout
// id neither owns nor rolls back what an earlier run created, and its
// remediation's quarantine rows carry its own run id.
func TestActivitiesBindOwnershipToRun(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, `CREATE TABLE parent (id int PRIMARY KEY);
		CREATE TABLE child (id int PRIMARY KEY, parent_id int NOT NULL);
		INSERT INTO parent VALUES (1); INSERT INTO child VALUES (1, 1), (2, 99);`)
	env, _ := newEnv(t, cfgWith(map[string]config.Environment{"prod": {DSN: db.DSN}}))
	p := plan.Plan{ForeignKeys: []plan.ForeignKey{childParentFK()}}
	constraint := func(run string) rollout.ConstraintInput {
		return rollout.ConstraintInput{Environment: "prod", RolloutID: "r-1", RunID: run, FK: childParentFK()}
	}
	do := func(act string, in, out any) {
		t.Helper()
		v, err := env.ExecuteActivity(act, in)
		require.NoError(t, err)
		require.NoError(t, v.Get(out))
	}

	var cr rollout.ConstraintResult
	do(rollout.ActApplyConstraint, constraint("run-a"), &cr)
	assert.Equal(t, "created", cr.Action)
	var rem rollout.RemediationResult
	do(rollout.ActRemediate, rollout.RemediateInput{Environment: "prod", RolloutID: "r-1", RunID: "run-a", FK: childParentFK(), Mode: "delete"}, &rem)
	assert.Equal(t, int64(1), db.Count(t, `SELECT count(*) FROM fkrollout.quarantine WHERE rollout_id = 'r-1' AND run_id = 'run-a'`))
	do(rollout.ActValidateConstraint, constraint("run-a"), &cr)
	assert.Equal(t, "validated", cr.Action)
	assert.Equal(t, int64(1), db.Count(t, `SELECT count(*) FROM fkrollout.constraints WHERE rollout_id = 'r-1' AND run_id = 'run-a'`))

	do(rollout.ActApplyConstraint, constraint("run-b"), &cr)
	assert.Equal(t, "exists-same", cr.Action)
	var vs []rollout.Verification
	do(rollout.ActVerify, rollout.EnvInput{Environment: "prod", RolloutID: "r-1", RunID: "run-b", Plan: p}, &vs)
	require.Len(t, vs, 1)
	assert.False(t, vs[0].Owned)
	assert.Equal(t, "r-1", vs[0].OwnerRollout)

	var rb []rollout.ConstraintResult
	do(rollout.ActRollback, rollout.RollbackInput{Environment: "prod", RolloutID: "r-1", RunID: "run-b", Plan: p}, &rb)
	require.Len(t, rb, 1)
	assert.Equal(t, "not-owned", rb[0].Action)
	assert.Equal(t, int64(1), db.Count(t, "SELECT count(*) FROM pg_constraint WHERE conname = 'fk_child_parent' AND convalidated"))

	do(rollout.ActRollback, rollout.RollbackInput{Environment: "prod", RolloutID: "r-1", RunID: "run-a", Plan: p}, &rb)
	require.Len(t, rb, 1)
	assert.Equal(t, "dropped", rb[0].Action)
	assert.Zero(t, db.Count(t, "SELECT count(*) FROM pg_constraint WHERE conname = 'fk_child_parent'"))
}

// mustNew is New for tests, whose configurations are valid.
func mustNew(t testing.TB, cfg *config.Config, n notify.Notifier, log *slog.Logger) *Activities {
	t.Helper()
	a, err := New(cfg, n, log)
	require.NoError(t, err)
	return a
}
