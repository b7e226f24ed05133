package rollout

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/workflows/approval"
)

// A chain of keys: deleting the orphans alone is impossible (rows
// reference them), set-null too (NOT NULL); both are refused by the
// validator with the reason, delete-with-dependents goes through.
func TestImpossibleRemediationChoicesAreRefusedWithTheReason(t *testing.T) {
	script := func(h *harness, g approval.Gate) []approval.DecisionInput {
		if g.Kind == notify.GateRemediation {
			var out []approval.DecisionInput
			for _, c := range []string{approval.ChoiceDelete, approval.ChoiceSetNull} {
				out = append(out, approval.DecisionInput{GateID: g.ID, Choice: c, Actor: alice, Reason: "try", Via: "test"})
			}
			return append(out,
				approval.DecisionInput{GateID: g.ID, Choice: approval.ChoiceDeleteWithDependents, Actor: alice, Reason: "chain", Via: "test"},
				approval.DecisionInput{GateID: g.ID, Choice: approval.ChoiceDeleteWithDependents, Actor: bob, Reason: "agreed", Via: "test"})
		}
		return approveAll(h, g)
	}
	h := newHarness(t, script)
	h.fake.orphans["staging"] = map[string]int64{"fk_stages_instance": 3}
	h.fake.orphans["production"] = map[string]int64{}
	h.fake.impacts["staging/fk_stages_instance"] = Impact{FK: "fk_stages_instance", Orphans: 3,
		Dependents: []ImpactRow{{Table: "public.stage_logs", Constraint: "fk_logs_stage", Action: "NO ACTION", Rows: 5, Depth: 1}},
		Impossible: map[string]string{
			approval.ChoiceDelete:  "5 rows of public.stage_logs reference the orphans (NO ACTION blocks the delete)",
			approval.ChoiceSetNull: "workflow_instance_id is NOT NULL",
		}}
	st, err := func() (*Status, error) { h.drive(); return h.run(testInput()) }()
	require.NoError(t, err)
	assert.Equal(t, StateCompleted, st.State)

	var gate *approval.Gate
	for i := range st.Gates {
		if st.Gates[i].Kind == notify.GateRemediation {
			gate = &st.Gates[i]
			break
		}
	}
	require.NotNil(t, gate)
	assert.Contains(t, gate.Choices, approval.ChoiceDeleteWithDependents)
	assert.Contains(t, gate.Summary, "public.stage_logs via fk_logs_stage (NO ACTION): 5 rows")
	require.NotNil(t, gate.Detail)
	assert.Equal(t, int64(5), gate.Detail.Remediation.FKs[0].Dependents[0].Rows)

	del := h.rejected[gate.ID+" "+alice+" "+approval.ChoiceDelete]
	assert.Contains(t, del, "delete is impossible for fk_stages_instance: 5 rows of public.stage_logs")
	assert.Contains(t, h.rejected[gate.ID+" "+alice+" "+approval.ChoiceSetNull], "NOT NULL")
	assert.Equal(t, approval.ChoiceDeleteWithDependents, gate.Decision.Action)
	assert.Equal(t, []string{ModeDeleteWithDependents}, h.fake.modes, "only the possible choice ran")
	assert.Equal(t, 1, h.fake.count(ActRemediationImpact+" staging"), "impact computed for the one dirty constraint")
	// The environment's quarantine is in the report with how to restore.
	rep := st.Report()
	assert.Contains(t, rep, "### Quarantine: staging")
	assert.Contains(t, rep, "fkrollout restore --rollout-id rollout-test-1")
}

// A remediation that fails after some batches committed, then an abort:
// the report's after-remediation figures come from a re-audit, the phase
// says failed, and the quarantine shows the rows that did go.
func TestFailedRemediationReportsWhatTheDatabaseHolds(t *testing.T) {
	h := newHarness(t, choosing(approval.ChoiceAbort))
	h.fake.orphans["staging"] = map[string]int64{"fk_stages_instance": 3}
	h.fake.orphans["production"] = map[string]int64{}
	h.fake.failures[ActRemediate+" staging/fk_stages_instance"] = []error{deterministic("23503", "foreign key violation")}
	h.fake.partial["staging/fk_stages_instance"] = 2
	st, err := func() (*Status, error) { h.drive(); return h.run(testInput()) }()
	require.NoError(t, err)
	assert.Equal(t, StateAborted, st.State)
	env := st.Environments["staging"]
	var after int64 = -1
	for _, f := range env.LastAudit {
		if f.FK == "fk_stages_instance" {
			after = f.Orphans
		}
	}
	assert.Equal(t, int64(1), after, "re-audited after the stop, not the pre-remediation count")
	require.NotNil(t, env.Quarantine)
	assert.Equal(t, int64(2), env.Quarantine.Rows)
	rep := st.Report()
	assert.Contains(t, rep, "❌ failed (1 failed step(s), then abort)")
	assert.Contains(t, rep, "| 3 | 1 | ❌ ORPHANS |")
	assert.NotContains(t, rep, "remediation | ✅ done")
}

// A rollback after remediation drops the constraints and then puts the
// quarantined rows back; the report says so.
func TestRollbackPutsQuarantinedRowsBack(t *testing.T) {
	script := func(h *harness, g approval.Gate) []approval.DecisionInput {
		if g.Kind == notify.GateApproval && strings.Contains(g.Title, "deploy hook failed") {
			return []approval.DecisionInput{{GateID: g.ID, Choice: approval.ChoiceRollback, Actor: alice, Reason: "hook broke", Via: "test"}}
		}
		return approveAll(h, g)
	}
	h := newHarness(t, script)
	h.fake.orphans["staging"] = map[string]int64{"fk_stages_instance": 3}
	h.fake.orphans["production"] = map[string]int64{}
	h.fake.hookFailures = 1
	st, err := func() (*Status, error) { h.drive(); return h.run(testInput()) }()
	require.NoError(t, err)
	assert.Equal(t, StateRolledBack, st.State)
	require.NotNil(t, st.Environments["staging"].Restored)
	assert.Equal(t, int64(3), st.Environments["staging"].Restored.Restored)
	assert.Zero(t, h.fake.quarantined["staging"])
	assert.Nil(t, st.Environments["production"].Restored, "production remediated nothing: nothing to restore")
	assert.Contains(t, st.Report(), "The rollback put **3** quarantined rows back")
}
