package main

import (
	"context"
	"github.com/fkrollout/fkrollout/internal/policy"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"

	"github.com/fkrollout/fkrollout/internal/monitor"
	"github.com/fkrollout/fkrollout/internal/testkit/devserver"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
	sqlassets "github.com/fkrollout/fkrollout/sql"
	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/rollout"
	"github.com/fkrollout/fkrollout/workflows/watch"
)

// TestE2EMonitorRollsBackOnRealServer: the worker as main.go builds it (the
// rollout, the monitor child, the monitor activities) on a real dev server
// and a real database. After validation the application starts failing its
// health check; the monitor's http source sees it, the matrix row fires
// after two failing checks, and the rollout drops exactly its constraints.
func TestE2EMonitorRollsBackOnRealServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	srv := devserver.Start(t, rollout.SearchAttributes())
	c := srv.Client()
	production := pgtest.New(t)
	seedDemo(t, production, nil)
	fksBefore := production.Count(t, "SELECT count(*) FROM pg_constraint WHERE contype = 'f'")

	var healthy atomic.Bool
	healthy.Store(true)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if healthy.Load() {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer app.Close()

	cfg := testConfig(t, map[string]string{"production": withPassword(production.DSN, "pw-"+randHex(8))}, nil)
	cfg.Monitor = monitor.Config{Sources: map[string]monitor.SourceConfig{
		"app-health": {Kind: monitor.KindHTTP, Environment: "production", Checks: []monitor.HTTPCheck{{Name: "health", URL: app.URL + "/health", ExpectStatus: 200}}},
	}}
	require.NoError(t, cfg.Validate())

	tq := startRolloutWorker(t, c, "e2e-monitor", cfg, nil, discardLogger(), withMonitorActivities)

	in := rollout.Input{
		Plan:         sqlassets.Migration,
		Requester:    rita,
		Environments: []rollout.EnvironmentInput{{Name: "production"}},
		Skip:         skipAllBut(policy.SafeguardMonitor),
		Approval:     approval.Policy{Default: approval.GateRule{Approvers: []string{alice, bob}}},
		Monitor: rollout.MonitorInput{Enabled: true, Duration: "10m", Interval: "1s", BaselinePeriod: "1s", Sources: []string{"app-health"},
			Rules: []monitor.Rule{{Name: "app-health-failing", Metric: monitor.MetricSmokeFailures, Op: ">", Threshold: 0, Action: monitor.ActionRollback, Persist: 2}}},
	}
	id := "e2e-monitor-" + randHex(4)
	run := startRollout(t, ctx, c, tq, id, in)

	// Once the watch runs and the constraints are in, the application breaks.
	require.Eventually(t, func() bool {
		st := queryStatusT(t, ctx, c, id)
		return st.Monitor != nil && st.Monitor.Status == rollout.MonitorWatching
	}, 2*time.Minute, 200*time.Millisecond)
	assert.Greater(t, production.Count(t, "SELECT count(*) FROM pg_constraint WHERE contype = 'f'"), fksBefore, "constraints applied before the watch")
	time.Sleep(3 * time.Second) // a few healthy checks first
	healthy.Store(false)

	st := closedWith(t, ctx, c, run, rollout.ErrTypeRolledBack)
	// The rollout and its watch child join the replay corpus (-record).
	recordHistory(t, ctx, c, id, "history-monitor-rollback.json")
	recordHistory(t, ctx, c, id+"/monitor-1", "history-monitor-child.json")
	assert.Equal(t, rollout.StateRolledBack, st.State, st.Summary())
	require.NotNil(t, st.Monitor)
	assert.Equal(t, rollout.MonitorRollback, st.Monitor.Status)
	assert.Equal(t, "app-health-failing", st.Monitor.Rule)
	require.NotEmpty(t, st.Monitor.Figures)
	assert.Equal(t, 1.0, st.Monitor.Figures[0].Value)
	assert.Contains(t, st.Monitor.Reason, "matrix row app-health-failing fired at")
	require.NotNil(t, st.Monitor.Baseline, "baseline measured before the deploy")
	order := map[string]int{}
	for i, e := range st.Timeline {
		if _, seen := order[e.Message]; !seen {
			order[e.Message] = i
		}
	}
	require.Contains(t, order, "phase "+rollout.PhaseBaseline)
	require.Contains(t, order, "phase "+rollout.PhaseApply)
	assert.Less(t, order["phase "+rollout.PhaseBaseline], order["phase "+rollout.PhaseApply], "baseline before ADD CONSTRAINT")
	assert.Equal(t, fksBefore, production.Count(t, "SELECT count(*) FROM pg_constraint WHERE contype = 'f'"), "exactly the rollout's constraints dropped")
	assert.Zero(t, production.Count(t, "SELECT count(*) FROM fkrollout.constraints WHERE rollout_id = $1", id), "ownership rows removed with the constraints")

	// The monitor ran as a child workflow that completed with the decision.
	d, err := c.DescribeWorkflowExecution(ctx, id+"/monitor-1", "")
	require.NoError(t, err)
	assert.Equal(t, enums.WORKFLOW_EXECUTION_STATUS_COMPLETED, d.WorkflowExecutionInfo.Status)
	assert.Equal(t, watch.WorkflowName, d.WorkflowExecutionInfo.Type.Name)
	// No secret in the rollout's or the monitor's history.
	text := decodedHistory(t, historyJSON(t, ctx, c, id)+historyJSON(t, ctx, c, id+"/monitor-1"))
	assert.Contains(t, text, `"rule":"app-health-failing"`, "the scan reads the child's decoded payloads")
	for _, s := range cfg.Secrets() {
		assert.NotContains(t, text, s)
	}
	assert.False(t, strings.Contains(text, "postgres://"), "no DSN in either history")
}
