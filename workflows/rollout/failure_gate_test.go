package rollout

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/steps"
)

func deterministic(sqlstate, reason string) error {
	return temporal.NewNonRetryableApplicationError("ERROR: "+reason+" (SQLSTATE "+sqlstate+")", steps.ErrTypeDeterministic, nil,
		steps.DeterministicDetail{SQLState: sqlstate, Reason: reason})
}

// choosing answers failure gates with choice and everything else as
// approveAll does.
func choosing(choice string) func(h *harness, g approval.Gate) []approval.DecisionInput {
	return func(h *harness, g approval.Gate) []approval.DecisionInput {
		if g.Kind == notify.GateApproval && strings.Contains(g.Title, "a retry would fail the same way") {
			return []approval.DecisionInput{{GateID: g.ID, Choice: choice, Actor: alice, Reason: "seen", Via: "test"},
				{GateID: g.ID, Choice: choice, Actor: bob, Reason: "agreed", Via: "test"}}
		}
		return approveAll(h, g)
	}
}

func failureGate(st *Status) *approval.Gate {
	for i := range st.Gates {
		if strings.Contains(st.Gates[i].Title, "a retry would fail the same way") {
			return &st.Gates[i]
		}
	}
	return nil
}

// Each deterministic failure of a per-constraint step opens its gate on the
// first attempt (no retries), offers skip, and a skip records the
// constraint without stopping the rollout.
func TestDeterministicFailureOpensGateAtOnce(t *testing.T) {
	cases := []struct {
		name     string
		act      string
		sqlstate string
		reason   string
		want     ConstraintState
	}{
		{"apply: undefined column", ActApplyConstraint, "42703", "undefined column", CSkipped},
		{"apply: undefined table", ActApplyConstraint, "42P01", "undefined table", CSkipped},
		{"apply: no unique key", ActApplyConstraint, "42830", "invalid foreign key", CSkipped},
		{"apply: type mismatch", ActApplyConstraint, "42804", "datatype mismatch", CSkipped},
		{"apply: undefined object", ActApplyConstraint, "42704", "undefined object", CSkipped},
		{"remediate: blocked by dependents", ActRemediate, "23503", "foreign key violation", CDebt},
		{"remediate: not-null", ActRemediate, "23502", "not-null violation", CDebt},
		{"remediate: check", ActRemediate, "23514", "check violation", CDebt},
		{"validate: definition conflict", ActValidateConstraint, "", "definition conflict", CDebt},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, choosing(approval.ChoiceSkip))
			h.fake.orphans["staging"] = map[string]int64{"fk_stages_instance": 3}
			h.fake.orphans["production"] = map[string]int64{}
			h.fake.failures[c.act+" staging/fk_stages_instance"] = []error{deterministic(c.sqlstate, c.reason)}
			st, err := func() (*Status, error) { h.drive(); return h.run(testInput()) }()
			require.NoError(t, err)
			assert.Equal(t, StateCompletedWithDebt, st.State, "a skipped constraint is debt, not success")
			g := failureGate(st)
			require.NotNil(t, g, "a failure gate opened")
			assert.Equal(t, []string{approval.ChoiceSkip, approval.ChoiceRetry, approval.ChoiceRollback, approval.ChoiceAbort}, g.Choices)
			if c.sqlstate != "" {
				assert.Contains(t, g.Title, "SQLSTATE "+c.sqlstate)
			}
			assert.Equal(t, c.want, stateIn(st, "staging")["fk_stages_instance"])
			// The activity ran once for the failure: the test suite retries
			// retryable errors, so a second call would show a retry.
			failed := st.Environments["staging"].Failures
			require.Len(t, failed, 1)
			assert.Equal(t, approval.ChoiceSkip, failed[0].Outcome)
			report := st.Report()
			assert.Contains(t, report, "⚠️ partial (1 skipped after failure)")
		})
	}
}

// Retry at the gate runs the step again; the phase ends done, and the
// activity was not retried before the gate opened.
func TestDeterministicFailureRetry(t *testing.T) {
	h := newHarness(t, choosing(approval.ChoiceRetry))
	h.fake.orphans["staging"] = map[string]int64{}
	h.fake.orphans["production"] = map[string]int64{}
	h.fake.failures[ActApplyConstraint+" staging/fk_vendor_workspace"] = []error{deterministic("42P01", "undefined table")}
	st, err := func() (*Status, error) { h.drive(); return h.run(testInput()) }()
	require.NoError(t, err)
	assert.Equal(t, StateCompleted, st.State)
	// 3 constraints + 1 failed attempt: no automatic retries.
	assert.Equal(t, 4, h.fake.count(ActApplyConstraint+" staging"))
	assert.Equal(t, CTested, stateIn(st, "staging")["fk_vendor_workspace"])
	assert.Contains(t, st.Report(), "✅ done after 1 retried failure(s)")
}
