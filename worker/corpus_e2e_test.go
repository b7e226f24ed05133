package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enums "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/fkrollout/fkrollout/internal/monitor"
	"github.com/fkrollout/fkrollout/internal/policy"
	"github.com/fkrollout/fkrollout/internal/testkit/devserver"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
	sqlassets "github.com/fkrollout/fkrollout/sql"
	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/fleet"
	"github.com/fkrollout/fkrollout/workflows/rollout"
	"github.com/fkrollout/fkrollout/workflows/watch"
)

// TestE2ECorpusPaths runs, on a real dev server and PostgreSQL, the paths
// of a rollout the other end-to-end tests do not reach, and records each
// history for the replay corpus (-record): a gate timing out into its
// on_timeout choice, a wait for a maintenance window, an operator's abort,
// watches ending clean and inconclusive, and a fleet whose failure budget
// runs out.
func TestE2ECorpusPaths(t *testing.T) {
	srv := devserver.Start(t, rollout.SearchAttributes())
	c := srv.Client()
	single := func(env string, keep ...string) rollout.Input {
		return rollout.Input{Plan: sqlassets.Migration, Requester: rita, Skip: skipAllBut(keep...),
			Environments: []rollout.EnvironmentInput{{Name: env}},
			Approval:     approval.Policy{Default: approval.GateRule{Approvers: []string{alice}}}}
	}

	// A remediation gate nobody answers times out after 2 s. Its on_timeout
	// (accept-debt) proceeds, so it applies only where the worker's policy
	// lists it in timeout_may_proceed; elsewhere the conservative abort does.
	for _, tc := range []struct {
		name, file  string
		mayProceed  bool
		want        rollout.RolloutState
		action, why string
	}{
		{"gate times out into on_timeout", "history-corpus-gate-timeout.json", true, rollout.StateCompletedWithDebt, approval.ChoiceAcceptDebt, "no decision within 2s"},
		{"gate times out into the conservative fallback", "history-corpus-gate-timeout-fallback.json", false, rollout.StateAborted, approval.ChoiceAbort, "is not offered by this gate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			staging := pgtest.New(t)
			seedDemo(t, staging, map[string]int{"fk_vendor_master_workspace": 2})
			cfg := testConfig(t, map[string]string{"staging": staging.DSN}, nil)
			if tc.mayProceed {
				cfg.Policy.Environments = map[string]policy.Environment{"staging": {Approvers: []string{alice}, TimeoutMayProceed: []string{approval.ChoiceAcceptDebt}}}
			}
			tq := startRolloutWorker(t, c, "corpus-timeout", cfg, nil, discardLogger())
			in := single("staging")
			in.Approval.Gates = map[string]approval.GateRule{"remediation": {Approvers: []string{alice}, Timeout: "2s", OnTimeout: approval.ChoiceAcceptDebt}}
			id := "corpus-timeout-" + randHex(4)
			run := startRollout(t, ctx, c, tq, id, in)

			var st rollout.Status
			if tc.want == rollout.StateCompletedWithDebt {
				require.NoError(t, run.Get(ctx, &st))
			} else {
				st = closedWith(t, ctx, c, run, rollout.ErrTypeAborted)
			}
			assert.Equal(t, tc.want, st.State, st.Summary())
			var timedOut []approval.Gate
			for _, g := range st.Gates {
				if g.Status == approval.GateTimedOut {
					timedOut = append(timedOut, g)
				}
			}
			require.Len(t, timedOut, 1, "the remediation gate timed out")
			require.NotNil(t, timedOut[0].Decision)
			assert.Equal(t, tc.action, timedOut[0].Decision.Action)
			assert.Equal(t, "timeout", timedOut[0].Decision.Actor)
			assert.Contains(t, timedOut[0].Decision.Reason, tc.why)
			assert.Equal(t, int64(2), staging.Count(t, "SELECT count(*) FROM vendor_master v LEFT JOIN workspaces w ON w.id = v.workspace_id WHERE w.id IS NULL"),
				"no orphan touched without a person")
			recordHistory(t, ctx, c, id, tc.file)
		})
	}

	t.Run("waits for the maintenance window, then proceeds", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		production := pgtest.New(t)
		seedDemo(t, production, nil)
		before := fkCount(t, production, true)
		tq := startRolloutWorker(t, c, "corpus-window", testConfig(t, map[string]string{"production": production.DSN}, nil), nil, discardLogger())
		// Windows open on the minute: the next one far enough away that the
		// rollout reaches its wait first.
		opens := time.Now().UTC().Add(10 * time.Second).Truncate(time.Minute).Add(time.Minute)
		in := single("production", policy.SafeguardWindow)
		in.Environments[0].MaintenanceWindow = &rollout.MaintenanceWindow{Start: opens.Format("15:04"), Duration: "1h", NotifyBefore: "0s"}
		id := "corpus-window-" + randHex(4)
		run := startRollout(t, ctx, c, tq, id, in)

		waiting := waitFor(t, ctx, c, id, func(st *rollout.Status) bool { return st.State == rollout.StateWaitingForWindow })
		require.NotNil(t, waiting.Environments["production"].WindowOpens)
		assert.True(t, opens.Equal(*waiting.Environments["production"].WindowOpens), "waits for %s, not %s", opens, waiting.Environments["production"].WindowOpens)
		if time.Now().Before(opens) {
			assert.Equal(t, before, fkCount(t, production, true), "nothing validated before the window opens")
		}
		var st rollout.Status
		require.NoError(t, run.Get(ctx, &st))
		assert.Equal(t, rollout.StateCompleted, st.State, st.Summary())
		assert.Greater(t, fkCount(t, production, true), before)
		var waited bool
		for _, e := range st.Timeline {
			waited = waited || strings.Contains(e.Message, "window")
		}
		assert.True(t, waited, "the timeline shows the wait")
		recordHistory(t, ctx, c, id, "history-corpus-window-wait.json")
	})

	t.Run("operator aborts at a gate", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		staging := pgtest.New(t)
		seedDemo(t, staging, map[string]int{"fk_vendor_master_workspace": 2})
		tq := startRolloutWorker(t, c, "corpus-abort", testConfig(t, map[string]string{"staging": staging.DSN}, nil), nil, discardLogger())
		id := "corpus-abort-" + randHex(4)
		run := startRollout(t, ctx, c, tq, id, single("staging"))
		waitFor(t, ctx, c, id, func(st *rollout.Status) bool { return len(st.OpenGates) > 0 })
		notValid := fkCount(t, staging, false)
		require.Positive(t, notValid)
		var ack approval.Ack
		require.NoError(t, update(ctx, c, id, approval.UpdateAbort, approval.ControlInput{Actor: rita, Reason: "wrong day"}, &ack))
		assert.True(t, ack.Accepted)

		st := closedWith(t, ctx, c, run, rollout.ErrTypeAborted)
		assert.Equal(t, rollout.StateAborted, st.State)
		assert.Equal(t, notValid, fkCount(t, staging, false), "an abort without rollback leaves the constraints as they are")
		assert.Equal(t, approval.GateCancelled, st.Gates[0].Status)
		recordHistory(t, ctx, c, id, "history-corpus-abort.json")
	})

	healthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }))
	defer healthy.Close()
	watched := func(t *testing.T, queue string, rules []monitor.Rule) (client.WorkflowRun, string, *pgtest.DB) {
		production := pgtest.New(t)
		seedDemo(t, production, nil)
		cfg := testConfig(t, map[string]string{"production": production.DSN}, nil)
		cfg.Monitor = monitor.Config{Sources: map[string]monitor.SourceConfig{
			"app": {Kind: monitor.KindHTTP, Environment: "production", Checks: []monitor.HTTPCheck{{Name: "health", URL: healthy.URL + "/health", ExpectStatus: 200}}},
		}}
		require.NoError(t, cfg.Validate())
		tq := startRolloutWorker(t, c, queue, cfg, nil, discardLogger(), withMonitorActivities)
		in := single("production", policy.SafeguardMonitor)
		in.Monitor = rollout.MonitorInput{Enabled: true, Duration: "6s", Interval: "1s", BaselinePeriod: "1s", Sources: []string{"app"}, Rules: rules}
		id := queue + "-" + randHex(4)
		return startRollout(t, context.Background(), c, tq, id, in), id, production
	}

	t.Run("watch ends clean", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		run, id, production := watched(t, "corpus-watch-clean", []monitor.Rule{
			{Name: "app-health-failing", Metric: monitor.MetricSmokeFailures, Op: ">", Threshold: 0, Action: monitor.ActionRollback, Persist: 2}})
		var st rollout.Status
		require.NoError(t, run.Get(ctx, &st))
		assert.Equal(t, rollout.StateCompleted, st.State, st.Summary())
		require.NotNil(t, st.Monitor)
		assert.Equal(t, rollout.MonitorPassed, st.Monitor.Status, st.Monitor.Reason)
		assert.Zero(t, fkCount(t, production, false), "every constraint validated and kept")
		recordHistory(t, ctx, c, id, "history-corpus-watch-clean.json")
		recordHistory(t, ctx, c, id+"/monitor-1", "history-corpus-watch-clean-child.json")
	})

	t.Run("watch without data is inconclusive", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		// A relative rule over a baseline of 0 failures has no figure to
		// judge: every check lacks data for it.
		run, id, _ := watched(t, "corpus-watch-nodata", []monitor.Rule{
			{Name: "failures-up", Metric: monitor.MetricSmokeFailures, Op: ">", Threshold: 50, Basis: monitor.BasisRelative, Action: monitor.ActionRollback, Persist: 1}})
		// No data is not a pass: a gate asks a person; continuing keeps the constraints.
		st := waitFor(t, ctx, c, id, func(st *rollout.Status) bool { return len(st.OpenGates) > 0 })
		g := st.OpenGates[0]
		require.Contains(t, g.Choices, approval.ChoiceContinue, "%s: %v", g.ID, g.Choices)
		var view approval.GateView
		require.NoError(t, update(ctx, c, id, approval.UpdateDecide, approval.DecisionInput{GateID: g.ID, Choice: approval.ChoiceContinue, Actor: alice, Reason: "latency checked by hand"}, &view))
		var final rollout.Status
		require.NoError(t, run.Get(ctx, &final))
		assert.Equal(t, rollout.StateCompleted, final.State, final.Summary())
		require.NotNil(t, final.Monitor)
		require.NotEmpty(t, final.Monitor.Rounds)
		assert.Equal(t, watch.OutcomeInconclusive, final.Monitor.Rounds[0].Status, final.Monitor.Rounds[0].Reason)
		assert.True(t, strings.HasPrefix(final.Monitor.Rounds[0].Decision, approval.ChoiceContinue+" by "+alice), final.Monitor.Rounds[0].Decision)
		recordHistory(t, ctx, c, id, "history-corpus-watch-inconclusive.json")
		recordHistory(t, ctx, c, id+"/monitor-1", "history-corpus-watch-inconclusive-child.json")
	})

	t.Run("fleet stops when its failure budget runs out", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		// The canary's database has none of the plan's tables.
		broken, good := pgtest.New(t), pgtest.New(t)
		seedDemo(t, good, nil)
		tq := startRolloutWorker(t, c, "corpus-budget", testConfig(t, map[string]string{"tenant_broken": broken.DSN, "tenant_good": good.DSN}, nil), nil, discardLogger())
		id := "corpus-budget-" + randHex(4)
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: tq}, fleet.WorkflowName, fleet.Input{
			Plan: sqlassets.Migration, Requester: rita, Targets: []string{"tenant_broken", "tenant_good"}, Canary: 1, BatchSize: 1, FailureBudget: 1, Skip: skipAllBut(),
			Approval: approval.Policy{Default: approval.GateRule{Approvers: []string{alice}}},
		})
		require.NoError(t, err)
		err = run.Get(ctx, nil)
		var ae *temporal.ApplicationError
		require.True(t, errors.As(err, &ae), "fleet closes failed: %v", err)
		assert.Equal(t, fleet.ErrTypeBudget, ae.Type())
		var st fleet.Status
		v, err := c.QueryWorkflow(ctx, id, "", rollout.QueryStatus)
		require.NoError(t, err)
		require.NoError(t, v.Get(&st))
		assert.Equal(t, 1, st.Failed)
		assert.Zero(t, st.Succeeded)
		require.Len(t, st.Targets, 2)
		assert.NotEqual(t, rollout.StateCompleted, st.Targets[0].State)
		assert.Equal(t, rollout.StateSkipped, st.Targets[1].State, "no target started after the budget ran out")
		assert.Zero(t, good.Count(t, "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND conname LIKE 'fk_%' AND NOT convalidated"))
		recordHistory(t, ctx, c, id, "history-corpus-fleet-budget.json")
	})
}

// TestE2ECorpusFleetContinuesAsNew: a dev server that suggests continuing
// as new after a few events makes a three-wave fleet hand over between
// waves; the fleet still completes every target, and both the run that
// continued and the run it continued as join the replay corpus.
func TestE2ECorpusFleetContinuesAsNew(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	srv := devserver.StartWithDynamicConfig(t, rollout.SearchAttributes(), "limit.historyCount.suggestContinueAsNew=10")
	c := srv.Client()
	targets := []string{"tenant_a", "tenant_b", "tenant_c"}
	dsns := map[string]string{}
	for _, name := range targets {
		db := pgtest.New(t)
		seedDemo(t, db, nil)
		dsns[name] = db.DSN
	}
	tq := startRolloutWorker(t, c, "corpus-can", testConfig(t, dsns, nil), nil, discardLogger())
	id := "corpus-can-" + randHex(4)
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: tq}, fleet.WorkflowName, fleet.Input{
		Plan: sqlassets.Migration, Requester: rita, Targets: targets, Canary: 1, BatchSize: 1, Skip: skipAllBut(),
		Approval: approval.Policy{Default: approval.GateRule{Approvers: []string{alice}}},
	})
	require.NoError(t, err)
	first := run.GetRunID() // Get follows the fleet into later runs

	// Approve each wave gate as it opens, in whichever run holds it.
	var st fleet.Status
	decided := map[string]bool{}
	for {
		require.NoError(t, ctx.Err(), "fleet did not finish: %s %s", st.State, st.Phase)
		v, err := c.QueryWorkflow(ctx, id, "", rollout.QueryStatus)
		if err == nil && v.Get(&st) == nil {
			if st.Terminal() {
				break
			}
			if g := st.OpenGate; g != nil && !decided[g.ID] {
				var view approval.GateView
				if update(ctx, c, id, approval.UpdateDecide, approval.DecisionInput{GateID: g.ID, Choice: approval.ChoiceApprove, Actor: alice, Reason: "wave clean"}, &view) == nil {
					decided[g.ID] = true
				}
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	// The run handle follows the fleet into the run it continued as.
	require.NoError(t, run.Get(ctx, &st))
	d, err := c.DescribeWorkflowExecution(ctx, id, "")
	require.NoError(t, err)
	assert.Equal(t, enums.WORKFLOW_EXECUTION_STATUS_COMPLETED, d.WorkflowExecutionInfo.Status)
	assert.Equal(t, rollout.StateCompleted, st.State, st.Error)
	assert.Equal(t, 3, st.Succeeded)
	assert.Equal(t, map[string]bool{"fleet/wave/1": true, "fleet/wave/2": true}, decided, "each wave gate decided once, across runs")
	assert.NotEqual(t, first, d.WorkflowExecutionInfo.Execution.RunId, "the fleet finished in a later run")

	// The first run ended by continuing as new.
	it := c.GetWorkflowHistory(ctx, id, first, false, enums.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT)
	require.True(t, it.HasNext())
	closeEv, err := it.Next()
	require.NoError(t, err)
	require.Equal(t, enums.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW, closeEv.GetEventType(), "the first run continued as new")
	second := closeEv.GetWorkflowExecutionContinuedAsNewEventAttributes().GetNewExecutionRunId()
	require.NotEmpty(t, second)
	recordRunHistory(t, ctx, c, id, first, "history-corpus-fleet-continued.json")
	recordRunHistory(t, ctx, c, id, second, "history-corpus-fleet-continuation.json")
}

// recordRunHistory is recordHistory for one run of a workflow that
// continued as new.
func recordRunHistory(t *testing.T, ctx context.Context, c client.Client, id, runID, file string) {
	t.Helper()
	if !*record {
		return
	}
	b, err := devserver.RunHistoryJSON(ctx, c, id, runID)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile("../workflows/testdata/"+file, b, 0o644))
	require.NoError(t, os.WriteFile("../workflows/testdata/"+strings.TrimSuffix(file, ".json")+".workflow-id", []byte(id), 0o644))
}
