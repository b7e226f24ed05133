package rollout

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/workflows/approval"
)

// A figure that does not hold opens the problem gate with target and
// actual; retry measures again; the report shows every expectation.
func TestFailedExpectationOpensTheProblemGate(t *testing.T) {
	tests := []struct {
		name    string
		choice  string
		answers [][]ExpectationResult
		state   RolloutState
		checks  int
	}{
		{"retry after the fix passes", approval.ChoiceRetry, [][]ExpectationResult{
			{{Name: "Validated foreign keys", Source: "plan", Target: "≥ 45", Actual: "44", Detail: "1 more NOT VALID"}, {Name: "Tables", Source: "plan", Target: "= 16", Actual: "16", OK: true}},
			{{Name: "Validated foreign keys", Source: "plan", Target: "≥ 45", Actual: "45", OK: true}, {Name: "Tables", Source: "plan", Target: "= 16", Actual: "16", OK: true}},
		}, StateCompleted, 2},
		{"abort stops the rollout", approval.ChoiceAbort, [][]ExpectationResult{
			{{Name: "Runbook query unpaid", Source: "worker configuration", Target: `value "0"`, Actual: `value "3"`}},
		}, StateAborted, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(h *harness, g approval.Gate) []approval.DecisionInput {
				choice := approval.ChoiceApprove
				if g.Kind == notify.GateApproval {
					choice = tc.choice
				}
				return []approval.DecisionInput{{GateID: g.ID, Choice: choice, Actor: alice, Reason: "checked", Via: "test"},
					{GateID: g.ID, Choice: choice, Actor: bob, Reason: "checked", Via: "test"}}
			})
			h.fake.orphans["staging"] = map[string]int64{}
			h.fake.expectations = map[string][][]ExpectationResult{"staging": tc.answers}
			in := testInput()
			in.Environments = in.Environments[:1]
			h.drive()
			st, err := h.run(in)
			require.NoError(t, err)
			assert.Equal(t, tc.state, st.State)
			assert.Equal(t, tc.checks, h.fake.count(ActCheckExpectations+" staging"))
			var gate *approval.Gate
			for i := range st.Gates {
				if strings.HasPrefix(st.Gates[i].Title, "expected figures not met in staging") {
					gate = &st.Gates[i]
				}
			}
			require.NotNil(t, gate, "the problem gate opened")
			first := tc.answers[0][0]
			assert.Contains(t, gate.Title, first.Name+": "+first.Target+" expected, "+first.Actual+" measured ("+first.Source+")")
			last := tc.answers[len(tc.answers)-1]
			assert.Equal(t, last, st.Environments["staging"].Expectations)
			md := st.Report()
			for _, r := range last {
				assert.Contains(t, md, r.Name)
			}
		})
	}
}

// Nothing expected: no gate, and the rollout runs as before.
func TestNoExpectationNoGate(t *testing.T) {
	h := newHarness(t, approveAll)
	h.fake.orphans["staging"] = map[string]int64{}
	in := testInput()
	in.Environments = in.Environments[:1]
	h.drive()
	st, err := h.run(in)
	require.NoError(t, err)
	assert.Equal(t, StateCompleted, st.State)
	assert.Equal(t, 1, h.fake.count(ActCheckExpectations+" staging"))
	for _, g := range st.Gates {
		assert.NotContains(t, g.Title, "expected figures")
	}
}

// The remediation gate links the full orphan list the worker wrote, in
// its summary and in the notification's data.
func TestRemediationGateLinksTheOrphanExport(t *testing.T) {
	h := newHarness(t, approveAll)
	h.fake.orphans["staging"] = map[string]int64{"fk_stages_instance": 3}
	in := testInput()
	in.Environments = in.Environments[:1]
	h.drive()
	st, err := h.run(in)
	require.NoError(t, err)
	assert.Equal(t, StateCompleted, st.State)
	require.Len(t, h.fake.exports, 1)
	assert.Equal(t, 2, h.fake.exports[0].Round, "the re-audit after ADD NOT VALID is round 2")
	require.Len(t, h.fake.exports[0].FKs, 1)
	assert.Equal(t, "fk_stages_instance", h.fake.exports[0].FKs[0].Name)
	path := "/backups/rollout-test-1/staging/orphans/round-2/fk_stages_instance.csv"
	var gate *approval.Gate
	for i := range st.Gates {
		if st.Gates[i].Kind == notify.GateRemediation {
			gate = &st.Gates[i]
		}
	}
	require.NotNil(t, gate)
	assert.Contains(t, gate.Summary, "full list: "+path+" (3 rows)")
	var linked bool
	for _, ev := range h.fake.notifications {
		if ev.Gate != nil && ev.Gate.Remediation != nil {
			for _, fk := range ev.Gate.Remediation.FKs {
				linked = linked || fk.Export == path+" (3 rows)"
			}
		}
	}
	assert.True(t, linked, "the gate notification carries the export")
	assert.Equal(t, path, st.Environments["staging"].OrphanExports[0].Path)
	assert.Contains(t, st.Report(), path)
}

// A failed export never holds the decision up: the gate opens with the
// samples and the timeline says why there is no file.
func TestFailedOrphanExportStillOpensTheGate(t *testing.T) {
	h := newHarness(t, approveAll)
	h.fake.orphans["staging"] = map[string]int64{"fk_stages_instance": 3}
	h.fake.exportFails = true
	in := testInput()
	in.Environments = in.Environments[:1]
	h.drive()
	st, err := h.run(in)
	require.NoError(t, err)
	assert.Equal(t, StateCompleted, st.State)
	assert.Len(t, h.fake.exports, 3, "three attempts, then the gate")
	var gate *approval.Gate
	for i := range st.Gates {
		if st.Gates[i].Kind == notify.GateRemediation {
			gate = &st.Gates[i]
		}
	}
	require.NotNil(t, gate)
	assert.Contains(t, gate.Summary, "fk_stages_instance: 3 orphans (e.g. id=orphan-1)")
	assert.NotContains(t, gate.Summary, "full list")
	var noted bool
	for _, e := range st.Timeline {
		noted = noted || strings.Contains(e.Message, "orphan export failed (the gate shows the samples only): backup dir: permission denied")
	}
	assert.True(t, noted, "the timeline says why there is no file")
	assert.Empty(t, st.Environments["staging"].OrphanExports)
}
