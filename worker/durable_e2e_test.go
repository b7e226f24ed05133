package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enums "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/fkrollout/fkrollout/internal/testkit/devserver"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
	sqlassets "github.com/fkrollout/fkrollout/sql"
	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/rollout"
)

// closedWith waits for a rollout that did not complete: Temporal shows it
// failed with a typed, non-retryable error (RolledBack, Aborted,
// RollbackIncomplete), or cancelled, and the status travels with it.
func closedWith(t *testing.T, ctx context.Context, c client.Client, run client.WorkflowRun, want string) rollout.Status {
	t.Helper()
	err := run.Get(ctx, nil)
	require.Error(t, err, "a rollout that did not complete does not close as Completed")
	wantStatus := enums.WORKFLOW_EXECUTION_STATUS_FAILED
	if want == "cancelled" {
		var ce *temporal.CanceledError
		require.ErrorAs(t, err, &ce)
		wantStatus = enums.WORKFLOW_EXECUTION_STATUS_CANCELED
	} else {
		var ae *temporal.ApplicationError
		require.ErrorAs(t, err, &ae)
		assert.Equal(t, want, ae.Type())
		assert.True(t, ae.NonRetryable())
	}
	st, ok := rollout.OutcomeStatus(err)
	require.True(t, ok, "the status travels with the failure: %v", err)
	d, err := c.DescribeWorkflowExecution(ctx, run.GetID(), run.GetRunID())
	require.NoError(t, err)
	assert.Equal(t, wantStatus, d.WorkflowExecutionInfo.Status, "what the Temporal UI and lists show")
	// The status query still answers, the same as the details.
	q := queryStatusT(t, ctx, c, run.GetID())
	assert.Equal(t, st.State, q.State)
	assert.NotEmpty(t, st.ReportPath, "the report was written before the run closed")
	return *st
}

func fkCount(t *testing.T, db *pgtest.DB, validated bool) int64 {
	return db.Count(t, "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND convalidated = $1 AND conname LIKE 'fk_%'", validated)
}

// TestE2EDurableOutcomes runs, on a real dev server and PostgreSQL, the
// ways a rollout ends without completing, and records each history for the
// replay corpus (-record): a rollback closing as RolledBack, a
// cancellation (NOT VALID constraints dropped, validated ones kept, gates
// closed), and a rollback that fails until a human retries it at its gate.
func TestE2EDurableOutcomes(t *testing.T) {
	srv := devserver.Start(t, rollout.SearchAttributes())
	c := srv.Client()
	single := func(env string) rollout.Input {
		return rollout.Input{Plan: sqlassets.Migration, Requester: rita, Skip: skipAllBut(), Environments: []rollout.EnvironmentInput{{Name: env}},
			Approval: approval.Policy{Default: approval.GateRule{Approvers: []string{alice}}}}
	}

	t.Run("rolled back closes as RolledBack", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		staging := pgtest.New(t)
		seedDemo(t, staging, map[string]int{"fk_vendor_master_workspace": 2})
		before := staging.Count(t, "SELECT count(*) FROM pg_constraint WHERE contype = 'f'")
		tq := startRolloutWorker(t, c, "durable-rb", testConfig(t, map[string]string{"staging": staging.DSN}, nil), nil, discardLogger())
		id := "durable-rb-" + randHex(4)
		run := startRollout(t, ctx, c, tq, id, single("staging"))
		waitFor(t, ctx, c, id, func(st *rollout.Status) bool { return len(st.OpenGates) > 0 })
		var ack approval.Ack
		require.NoError(t, update(ctx, c, id, approval.UpdateRollback, approval.ControlInput{Actor: rita, Reason: "wrong plan"}, &ack))

		st := closedWith(t, ctx, c, run, rollout.ErrTypeRolledBack)
		assert.Equal(t, rollout.StateRolledBack, st.State)
		assert.Equal(t, before, staging.Count(t, "SELECT count(*) FROM pg_constraint WHERE contype = 'f'"))
		assert.Equal(t, approval.GateCancelled, st.Gates[0].Status)
		recordHistory(t, ctx, c, id, "history-durable-rolled-back.json")
	})

	t.Run("cancel drops NOT VALID, keeps validated", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		staging, production := pgtest.New(t), pgtest.New(t)
		seedDemo(t, staging, nil)
		seedDemo(t, production, map[string]int{"fk_vendor_master_workspace": 2})
		prodBefore := production.Count(t, "SELECT count(*) FROM pg_constraint WHERE contype = 'f'")
		stagingValidatedBefore := fkCount(t, staging, true)
		tq := startRolloutWorker(t, c, "durable-cancel", testConfig(t, map[string]string{"staging": staging.DSN, "production": production.DSN}, nil), nil, discardLogger())
		in := single("staging")
		in.Environments = append(in.Environments, rollout.EnvironmentInput{Name: "production"})
		id := "durable-cancel-" + randHex(4)
		run := startRollout(t, ctx, c, tq, id, in)
		st := waitFor(t, ctx, c, id, func(st *rollout.Status) bool { return len(st.OpenGates) > 0 })
		require.Equal(t, "promotion", string(st.OpenGates[0].Kind), st.Summary())
		var view approval.GateView
		require.NoError(t, update(ctx, c, id, approval.UpdateDecide, approval.DecisionInput{GateID: st.OpenGates[0].ID, Choice: approval.ChoiceApprove, Actor: alice, Reason: "ok"}, &view))
		waitFor(t, ctx, c, id, func(st *rollout.Status) bool {
			return len(st.OpenGates) > 0 && st.OpenGates[0].Environment == "production"
		})
		validated := fkCount(t, staging, true)
		require.Positive(t, validated)
		require.NoError(t, c.CancelWorkflow(ctx, id, ""))

		st2 := closedWith(t, ctx, c, run, "cancelled")
		assert.Equal(t, rollout.StateCancelled, st2.State)
		assert.Equal(t, validated, fkCount(t, staging, true), "validated constraints kept")
		assert.Equal(t, prodBefore, production.Count(t, "SELECT count(*) FROM pg_constraint WHERE contype = 'f'"), "NOT VALID ones dropped")
		require.NotNil(t, st2.Rollback)
		assert.Len(t, st2.Rollback.Kept, int(validated-stagingValidatedBefore), "this rollout's validated constraints")
		assert.NotEmpty(t, st2.Rollback.Dropped)
		for _, g := range st2.Gates {
			assert.NotEqual(t, approval.GateOpen, g.Status, g.ID)
		}
		recordHistory(t, ctx, c, id, "history-durable-cancel.json")
	})

	t.Run("failed rollback opens a gate, retry finishes it", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		staging := pgtest.New(t)
		seedDemo(t, staging, map[string]int{"fk_vendor_master_workspace": 2})
		before := staging.Count(t, "SELECT count(*) FROM pg_constraint WHERE contype = 'f'")
		cfg := testConfig(t, map[string]string{"staging": staging.DSN}, nil)
		// A held lock fails each attempt fast: no waiting it out first.
		cfg.Lock.Attempts, cfg.Lock.LockTimeout, cfg.Lock.BlockerWait = 1, "100ms", "off"
		tq := startRolloutWorker(t, c, "durable-rbgate", cfg, nil, discardLogger())
		id := "durable-rbgate-" + randHex(4)
		run := startRollout(t, ctx, c, tq, id, single("staging"))
		waitFor(t, ctx, c, id, func(st *rollout.Status) bool { return len(st.OpenGates) > 0 })

		// Someone holds a lock on a table the rollback must alter.
		tx, err := staging.Pool.Begin(ctx)
		require.NoError(t, err)
		defer func() { _ = tx.Rollback(context.Background()) }()
		_, err = tx.Exec(ctx, "LOCK TABLE vendor_master IN ACCESS EXCLUSIVE MODE")
		require.NoError(t, err)
		var ack approval.Ack
		require.NoError(t, update(ctx, c, id, approval.UpdateRollback, approval.ControlInput{Actor: rita, Reason: "wrong plan"}, &ack))

		st := waitFor(t, ctx, c, id, func(st *rollout.Status) bool {
			return len(st.OpenGates) > 0 && strings.HasPrefix(st.OpenGates[0].Title, "rollback incomplete")
		})
		g := st.OpenGates[0]
		var view approval.GateView
		err = update(ctx, c, id, approval.UpdateDecide, approval.DecisionInput{GateID: g.ID, Choice: approval.ChoiceAbort, Actor: alice}, &view)
		require.Error(t, err, "leaving constraints needs a reason")
		require.NoError(t, tx.Rollback(ctx)) // the lock goes away
		require.NoError(t, update(ctx, c, id, approval.UpdateDecide, approval.DecisionInput{GateID: g.ID, Choice: approval.ChoiceRetry, Actor: alice, Reason: "lock released"}, &view))

		final := closedWith(t, ctx, c, run, rollout.ErrTypeRolledBack)
		assert.Equal(t, rollout.StateRolledBack, final.State)
		assert.Empty(t, final.Rollback.Failures)
		assert.Equal(t, before, staging.Count(t, "SELECT count(*) FROM pg_constraint WHERE contype = 'f'"))
		recordHistory(t, ctx, c, id, "history-durable-rollback-gate.json")
	})
}
