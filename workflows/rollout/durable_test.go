package rollout

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/workflows/approval"
)

// promoteOnly approves promotions and leaves every other gate open.
func promoteOnly(h *harness, g approval.Gate) []approval.DecisionInput {
	if g.Kind != notify.GatePromotion {
		return nil
	}
	return approveAll(h, g)
}

func notificationsOf(h *harness, kind notify.Kind) []notify.Event {
	h.fake.mu.Lock()
	defer h.fake.mu.Unlock()
	var out []notify.Event
	for _, ev := range h.fake.notifications {
		if ev.Kind == kind {
			out = append(out, ev)
		}
	}
	return out
}

// A cancelled workflow closes its open gate (the Slack message says so),
// drops the NOT VALID constraints this run created, keeps the validated
// ones, writes its report and ends cancelled, not failed.
func TestCancelDropsNotValidKeepsValidatedAndClosesGates(t *testing.T) {
	h := newHarness(t, promoteOnly)
	h.fake.orphans["staging"] = map[string]int64{}
	h.fake.orphans["production"] = map[string]int64{"fk_stages_instance": 3}
	h.drive()
	// Day 2 at 10:00: staging validated, production's remediation gate open.
	h.env.RegisterDelayedCallback(func() {
		st := h.status()
		require.Len(t, st.OpenGates, 1)
		require.Equal(t, notify.GateRemediation, st.OpenGates[0].Kind)
		h.env.CancelWorkflow()
	}, 24*time.Hour)
	st, err := h.run(testInput())

	var ce *temporal.CanceledError
	require.ErrorAs(t, err, &ce, "the workflow ends cancelled: %v", err)
	out, ok := OutcomeStatus(err)
	require.True(t, ok, "the cancellation carries the status")
	assert.Equal(t, StateCancelled, out.State)
	assert.Equal(t, StateCancelled, st.State)

	for _, fk := range testPlan().ForeignKeys {
		assert.Equal(t, "valid", h.fake.constraints["staging/"+fk.Name], "validated in staging: kept")
		assert.NotContains(t, h.fake.constraints, "production/"+fk.Name, "NOT VALID in production: dropped")
	}
	require.NotNil(t, st.Rollback)
	assert.Equal(t, "cancel", st.Rollback.Trigger)
	assert.Len(t, st.Rollback.Dropped, 3)
	assert.Len(t, st.Rollback.Kept, 3)
	assert.Empty(t, st.Rollback.Failures)
	for fk, s := range stateIn(st, "production") {
		assert.Equal(t, CRolledBack, s, fk)
	}
	for fk, s := range stateIn(st, "staging") {
		assert.Equal(t, CTested, s, fk, "kept as it was")
	}

	var gate *approval.Gate
	for i := range st.Gates {
		if st.Gates[i].Kind == notify.GateRemediation {
			gate = &st.Gates[i]
		}
	}
	require.NotNil(t, gate)
	assert.Equal(t, approval.GateCancelled, gate.Status)
	var closed *notify.Event
	for _, ev := range notificationsOf(h, notify.KindGateDecided) {
		if ev.Gate != nil && ev.Gate.ID == gate.ID {
			closed = &ev
		}
	}
	require.NotNil(t, closed, "the gate's message is updated")
	assert.Equal(t, gate.Message, closed.Message, "in place: the message that had the buttons")
	assert.Equal(t, string(approval.GateCancelled), closed.Decision.Choice)
	assert.Zero(t, h.fake.count(ActRemediate+" production"), "nobody decided the gate")

	require.NotEmpty(t, h.fake.reports, "the report is written")
	last := h.fake.reports[len(h.fake.reports)-1]
	assert.Equal(t, string(StateCancelled), last.State)
	assert.Contains(t, last.Markdown, "Rollback")
	assert.Equal(t, 0, len(st.OpenGates))
}

// A step cancelled by the workflow's cancellation opens no failure gate.
func TestCancelDuringStepOpensNoFailureGate(t *testing.T) {
	h := newHarness(t, approveAll)
	h.fake.orphans["staging"] = map[string]int64{}
	in := testInput()
	in.Environments = in.Environments[:1]
	// The audit is still running when the cancellation comes.
	h.env.OnActivity(ActAudit, mock.Anything, mock.Anything).After(time.Hour).Return([]AuditFigure{}, nil)
	h.env.RegisterDelayedCallback(func() { h.env.CancelWorkflow() }, 10*time.Minute)
	st, err := h.run(in)
	var ce *temporal.CanceledError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, StateCancelled, st.State)
	assert.Empty(t, st.Gates, "no gate asked anyone about a cancelled step")
	assert.Zero(t, h.fake.count(ActRollback+" staging"), "nothing was touched, nothing to drop")
}

// Rollback counts only what it dropped: another run's constraint and one
// already gone are reported, never counted as dropped.
func TestRollbackCountsOnlyWhatItDropped(t *testing.T) {
	h := newHarness(t, func(h *harness, g approval.Gate) []approval.DecisionInput { return nil })
	h.fake.orphans["staging"] = map[string]int64{"fk_stages_instance": 1}
	h.fake.notOwned["staging/fk_vendor_workspace"] = true
	h.env.RegisterDelayedCallback(func() {
		delete(h.fake.constraints, "staging/fk_instances_workspace") // gone behind our back
		h.control(approval.UpdateRollback, approval.ControlInput{Actor: requester, Reason: "wrong plan"})
	}, time.Hour)
	st, err := h.run(testInput())
	require.NoError(t, err)
	require.Equal(t, StateRolledBack, st.State)
	assert.Equal(t, []string{"staging:fk_stages_instance"}, st.Rollback.Dropped)
	states := stateIn(st, "staging")
	assert.Equal(t, CRolledBack, states["fk_stages_instance"])
	assert.NotEqual(t, CRolledBack, states["fk_vendor_workspace"], "not ours: not rolled back")
	assert.NotEqual(t, CRolledBack, states["fk_instances_workspace"], "absent: not rolled back")
	rb := notificationsOf(h, notify.KindRolledBack)
	require.Len(t, rb, 1)
	assert.Equal(t, []string{"staging:fk_stages_instance"}, rb[0].Rollback.Constraints)
	assert.Contains(t, st.Report(), "staging:fk_stages_instance")
	assert.NotContains(t, strings.Join(st.Rollback.Dropped, ","), "fk_vendor_workspace")
}

// A rollback that fails after its retries opens a gate: retry runs it
// again; abort needs a reason and leaves the rest in place, closing the
// run as RollbackIncomplete.
func TestFailedRollbackOpensGate(t *testing.T) {
	transient := errors.New("connection refused")
	cases := []struct {
		name   string
		choice string
		reason string
		want   RolloutState
		typ    string
	}{
		{"retry drops them", approval.ChoiceRetry, "db is back", StateRolledBack, ErrTypeRolledBack},
		{"abort leaves them with a reason", approval.ChoiceAbort, "will drop by hand in the window", StateFailed, ErrTypeRollbackIncomplete},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var rollbackGate *approval.Gate
			h := newHarness(t, func(h *harness, g approval.Gate) []approval.DecisionInput {
				if !strings.HasPrefix(g.Title, "rollback incomplete") {
					return nil
				}
				rollbackGate = &g
				// Leaving constraints needs a reason: the first vote without one is refused.
				return []approval.DecisionInput{{GateID: g.ID, Choice: tc.choice, Actor: alice, Via: "test"},
					{GateID: g.ID, Choice: tc.choice, Actor: alice, Reason: tc.reason, Via: "test"},
					{GateID: g.ID, Choice: tc.choice, Actor: bob, Reason: tc.reason, Via: "test"}}
			})
			h.fake.orphans["staging"] = map[string]int64{"fk_stages_instance": 1}
			// Six attempts (the DDL retry policy) fail, then the database is back.
			for range 6 {
				h.fake.failures[ActRollback+" staging/"] = append(h.fake.failures[ActRollback+" staging/"], transient)
			}
			h.drive()
			h.env.RegisterDelayedCallback(func() {
				h.control(approval.UpdateRollback, approval.ControlInput{Actor: requester, Reason: "wrong plan"})
			}, time.Hour)
			in := testInput()
			in.Environments = in.Environments[:1]
			st, err := h.run(in)
			require.NotNil(t, rollbackGate, "the failed rollback asked a human")
			assert.Equal(t, tc.want, st.State)
			if tc.want == StateRolledBack {
				require.NoError(t, err) // the harness checked the RolledBack failure
				assert.Equal(t, 7, h.fake.count(ActRollback+" staging"), "six attempts, then the retry")
				assert.Empty(t, h.fake.constraints)
				assert.Empty(t, st.Rollback.Failures)
			} else {
				var ae *temporal.ApplicationError
				require.ErrorAs(t, err, &ae)
				assert.Equal(t, tc.typ, ae.Type())
				assert.True(t, ae.NonRetryable())
				out, ok := OutcomeStatus(err)
				require.True(t, ok)
				require.NotNil(t, out.Rollback.Left)
				assert.Equal(t, tc.reason, out.Rollback.Left.Reason)
				assert.Len(t, h.fake.constraints, 3, "left in place")
				assert.Contains(t, st.Error, "left in place by")
				assert.Equal(t, 6, h.fake.count(ActRollback+" staging"))
			}
			var refused bool
			for k, msg := range h.rejected {
				if strings.HasPrefix(k, rollbackGate.ID) && strings.Contains(msg, "needs a reason") {
					refused = true
				}
			}
			assert.Equal(t, tc.choice == approval.ChoiceAbort, refused, "an abort without a reason is refused: %v", h.rejected)
		})
	}
}

// A VALIDATE that finds its constraint dropped behind the rollout's back
// asks a human; retry applies it again, then validates it.
func TestRetryAfterMissingConstraintAppliesItAgain(t *testing.T) {
	h := newHarness(t, approveAll)
	h.fake.orphans["staging"] = map[string]int64{}
	h.fake.droppedBehind["staging/fk_vendor_workspace"] = true
	in := testInput()
	in.Environments = in.Environments[:1]
	h.drive()
	st, err := h.run(in)
	require.NoError(t, err)
	assert.Equal(t, StateCompleted, st.State)
	assert.Equal(t, "valid", h.fake.constraints["staging/fk_vendor_workspace"])
	assert.Equal(t, 4, h.fake.count(ActApplyConstraint+" staging"), "three applies and the one again")
	var asked bool
	for _, g := range st.Gates {
		if strings.Contains(g.Title, "retry adds it again NOT VALID") {
			asked = true
			assert.Equal(t, approval.ChoiceRetry, g.Decision.Action)
		}
	}
	assert.True(t, asked)
	assert.Equal(t, CTested, stateIn(st, "staging")["fk_vendor_workspace"])
}

// Skipping a constraint found missing records it as skipped (it is not in
// the database), not as NOT VALID debt.
func TestSkipAfterMissingConstraintIsSkipped(t *testing.T) {
	h := newHarness(t, func(h *harness, g approval.Gate) []approval.DecisionInput {
		if strings.Contains(g.Title, "retry adds it again NOT VALID") {
			return []approval.DecisionInput{{GateID: g.ID, Choice: approval.ChoiceSkip, Actor: alice, Reason: "dropped on purpose", Via: "test"},
				{GateID: g.ID, Choice: approval.ChoiceSkip, Actor: bob, Reason: "agreed", Via: "test"}}
		}
		return approveAll(h, g)
	})
	h.fake.orphans["staging"] = map[string]int64{}
	h.fake.droppedBehind["staging/fk_vendor_workspace"] = true
	in := testInput()
	in.Environments = in.Environments[:1]
	h.drive()
	st, err := h.run(in)
	require.NoError(t, err)
	assert.Equal(t, CSkipped, stateIn(st, "staging")["fk_vendor_workspace"])
	assert.Equal(t, StateCompletedWithDebt, st.State)
	assert.NotContains(t, h.fake.constraints, "staging/fk_vendor_workspace")
}

// A gate a stop request cancels is closed in Slack too: its message is
// updated in place and says it closed without a decision.
func TestStopClosesTheOpenGateMessage(t *testing.T) {
	h := newHarness(t, func(h *harness, g approval.Gate) []approval.DecisionInput { return nil })
	h.fake.orphans["staging"] = map[string]int64{"fk_stages_instance": 1}
	h.env.RegisterDelayedCallback(func() {
		h.control(approval.UpdateAbort, approval.ControlInput{Actor: requester, Reason: "wrong window"})
	}, time.Hour)
	st, err := h.run(testInput())
	require.NoError(t, err) // the harness checked the Aborted failure
	require.Equal(t, StateAborted, st.State)
	var ae *temporal.ApplicationError
	require.ErrorAs(t, h.closedWith, &ae)
	assert.Equal(t, ErrTypeAborted, ae.Type())
	g := st.Gates[0]
	require.Equal(t, approval.GateCancelled, g.Status)
	var closed bool
	for _, ev := range notificationsOf(h, notify.KindGateDecided) {
		if ev.Gate != nil && ev.Gate.ID == g.ID && ev.Message == g.Message && ev.Decision.Choice == string(approval.GateCancelled) {
			closed = true
		}
	}
	assert.True(t, closed, "the gate's message no longer offers buttons")
}
