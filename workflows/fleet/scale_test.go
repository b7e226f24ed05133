package fleet

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/workflow"

	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/internal/testkit/historymeter"
	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/rollout"
)

// Size bounds a large fleet must stay within (Temporal refuses a payload
// over 2 MB and ends a run whose history passes 50 MB).
const (
	scaleMaxPayload = 1 << 20
	scaleMaxHistory = 10 << 20
)

// scaleChildStatus is the whole status a rollout of fks constraints in one
// database ends with: every constraint tested, half of them remediated,
// audit samples, behaviour cases, a full timeline.
func scaleChildStatus(id, env string, fks int) *rollout.Status {
	now := start
	st := &rollout.Status{RolloutID: id, Requester: requester, State: rollout.StateCompleted, Phase: rollout.PhaseDone,
		EnvironmentOrder: []string{env}, PlanName: "scale", Environments: map[string]rollout.EnvReport{}, StartedAt: now, UpdatedAt: now,
		ReportPath: "/reports/" + strings.ReplaceAll(id, "/", "_") + ".md"}
	rep := rollout.EnvReport{Name: env, Phase: rollout.PhaseDone, Done: true, AuditRounds: 2}
	for i := range fks {
		name := fmt.Sprintf("fk_order_lines_%03d_order", i)
		st.Constraints = append(st.Constraints, rollout.ConstraintStatus{Name: name, Table: fmt.Sprintf("public.order_lines_%03d", i),
			References: fmt.Sprintf("public.orders_%03d", i), Priority: "high",
			Environments: map[string]rollout.ConstraintEnvState{env: {State: rollout.CTested, Since: now}}})
		fig := rollout.AuditFigure{FK: name, Table: fmt.Sprintf("public.order_lines_%03d", i), References: fmt.Sprintf("public.orders_%03d", i),
			Columns: []string{"order_id", "tenant_id"}, DurationMS: 1840}
		if i%2 == 0 {
			fig.Orphans, fig.Nullable = int64(10+i), true
			for j := range 5 {
				fig.Samples = append(fig.Samples, fmt.Sprintf("id=%d, order_id=%d, tenant_id=%d", 9_000_000+j, 4_000_000+j*7, 1000+j))
			}
			rep.Remediations = append(rep.Remediations, rollout.RemediationResult{FK: name, Mode: rollout.ModeDelete, Quarantined: fig.Orphans, Affected: fig.Orphans, Batches: 1})
		}
		rep.FirstAudit = append(rep.FirstAudit, fig)
		fig.Orphans, fig.Samples = 0, nil
		rep.LastAudit = append(rep.LastAudit, fig)
		rep.Applied = append(rep.Applied, rollout.ConstraintResult{FK: name, Table: fig.Table, Action: "created", Attempts: 1, DurationMS: 12})
		rep.Validated = append(rep.Validated, rollout.ConstraintResult{FK: name, Table: fig.Table, Action: "validated", Attempts: 1, DurationMS: 3400})
		br := rollout.BehaviourResult{FK: name, Passed: true}
		for _, c := range []string{"reject orphan insert", "reject orphan update", "protect parent delete", "protect parent update", "null key allowed"} {
			br.Cases = append(br.Cases, rollout.BehaviourCase{Name: c, Outcome: "passed", Passed: true,
				Detail: fmt.Sprintf("row with (order_id, tenant_id)=(-1, -1) rejected with 23503 by %s", name)})
		}
		rep.Behaviour = append(rep.Behaviour, br)
	}
	st.Environments[env] = rep
	for i := range 300 {
		st.Timeline = append(st.Timeline, rollout.TimelineEntry{Time: now, Environment: env, Phase: rollout.PhaseValidate,
			Message: fmt.Sprintf("VALIDATE CONSTRAINT fk_order_lines_%03d_order done in 3.4s", i%fks)})
	}
	g := approval.Gate{ID: env + "/remediation/1", Kind: notify.GateRemediation, Environment: env, Title: "orphans", Status: approval.GateDecided,
		Summary: strings.Repeat("fk_order_lines_000_order: 10 orphans (e.g. id=9000000, order_id=4000000, tenant_id=1000)\n", fks/2)}
	st.Gates = []approval.Gate{g}
	return st
}

type scaleRun struct{ runs, events, largest, history, maxHistory int }

// TestScaleFleetStaysWithinTemporalLimits runs a fleet of 200 databases
// with a 100-constraint plan (canary 1, batches of 5) and checks the
// sizes Temporal limits, run by run (the fleet continues as new when a
// run's history grows large).
//
//	go test ./workflows/fleet -run TestScale -v
//
// FKROLLOUT_SCALE_WHOLE_STATUS=1 makes each child return its whole status
// and keeps the fleet in one run: how fleets behaved before children
// returned bounded results.
func TestScaleFleetStaysWithinTemporalLimits(t *testing.T) {
	const targets, fks = 200, 100
	whole := os.Getenv("FKROLLOUT_SCALE_WHOLE_STATUS") != ""
	var names []string
	for i := range targets {
		names = append(names, fmt.Sprintf("tenant_%03d", i))
	}
	in := fleetInput(names...)
	in.FailureBudget = targets
	var plan strings.Builder
	plan.WriteString("foreign_keys:\n")
	for i := range fks {
		fmt.Fprintf(&plan, "  - {name: fk_order_lines_%03d_order, table: order_lines_%03d, columns: [order_id, tenant_id], references: orders_%03d, ref_columns: [id, tenant_id], priority: high}\n", i, i, i)
	}
	in.Plan = plan.String()

	var sum scaleRun
	var carried *Carried
	var final *Status
	for run := 1; ; run++ {
		require.Less(t, run, 100, "the fleet keeps continuing as new")
		h := newFleetHarness(t)
		h.env.SetTestTimeout(5 * time.Minute)
		h.kids.result = func(id, env string) *rollout.Status {
			st := scaleChildStatus(id, env, fks)
			if whole {
				return st
			}
			return st.Bounded(rollout.StatusLimitsResult)
		}
		meter := historymeter.Attach(h.env)
		if carried != nil {
			h.env.SetContinuedExecutionRunID(fmt.Sprintf("run-%d", run-1))
		}
		// An approver every half hour; the server's view of the history
		// size, which the fleet checks between waves.
		sent := map[string]bool{}
		resumed := carried != nil
		var tick func()
		tick = func() {
			if h.env.IsWorkflowCompleted() {
				return
			}
			if resumed {
				// The new run answers the status query with what the
				// previous runs did, before its own first wave ends.
				st := h.status()
				assert.Equal(t, carried.Status.Succeeded, st.Succeeded)
				require.GreaterOrEqual(t, len(st.Gates), len(carried.Status.Gates), "the carried gates, then this run's first")
				for i, g := range carried.Status.Gates {
					assert.Equal(t, g.ID, st.Gates[i].ID)
					assert.Equal(t, approval.GateDecided, st.Gates[i].Status)
				}
				resumed = false
			}
			if r := meter.Run(fleetID); !whole {
				h.env.SetCurrentHistoryLength(r.Events)
				h.env.SetCurrentHistorySize(r.HistoryBytes())
			}
			if g := h.status().OpenGate; g != nil && !sent[g.ID] {
				sent[g.ID] = true
				h.decide(approval.DecisionInput{GateID: g.ID, Choice: approval.ChoiceApprove, Actor: alice, Reason: "wave looks good"})
			}
			h.env.RegisterDelayedCallback(tick, 30*time.Minute)
		}
		h.env.RegisterDelayedCallback(tick, 30*time.Minute)
		if carried == nil {
			h.env.ExecuteWorkflow(WorkflowName, in)
		} else {
			h.env.ExecuteWorkflow(WorkflowName, in, carried)
		}
		require.True(t, h.env.IsWorkflowCompleted())
		r := meter.Run(fleetID)
		sum.runs++
		sum.events += r.Events
		sum.history += r.HistoryBytes()
		sum.maxHistory = max(sum.maxHistory, r.HistoryBytes())
		sum.largest = max(sum.largest, r.Largest)
		t.Logf("run %d: history ≈ %.2f MB in %d events; largest payload %.1f KB (%s)", run, float64(r.HistoryBytes())/(1<<20), r.Events, float64(r.Largest)/1024, r.LargestWhat)
		err := h.env.GetWorkflowError()
		var can *workflow.ContinueAsNewError
		if errors.As(err, &can) {
			var next Input
			carried = nil
			require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next, &carried))
			require.NotNil(t, carried)
			in = next
			continue
		}
		require.NoError(t, err)
		final = h.status()
		break
	}
	t.Logf("fleet of %d databases, %d constraints each: %d run(s); largest run history ≈ %.2f MB, all runs ≈ %.2f MB in %d events; largest payload %.1f KB",
		targets, fks, sum.runs, float64(sum.maxHistory)/(1<<20), float64(sum.history)/(1<<20), sum.events, float64(sum.largest)/1024)

	assert.Equal(t, rollout.StateCompleted, final.State)
	assert.Equal(t, targets, final.Succeeded)
	require.Len(t, final.Targets, targets)
	for _, tg := range final.Targets {
		assert.Equal(t, fks, tg.Planned, tg.Name)
		assert.Equal(t, fks, tg.Validated, tg.Name)
	}
	assert.Len(t, final.Gates, len(final.Waves)-1, "every wave gate, across runs")
	assert.Less(t, sum.largest, scaleMaxPayload)
	assert.Less(t, sum.maxHistory, scaleMaxHistory)
}

// TestCarriedStateIsRefusedFromAClient: state handed over by continue-as-new
// holds decided gates; a client passing it to a new fleet would skip them.
func TestCarriedStateIsRefusedFromAClient(t *testing.T) {
	h := newFleetHarness(t)
	in := fleetInput("a", "b", "c")
	h.env.ExecuteWorkflow(WorkflowName, in, &Carried{NextWave: 2, Status: Status{Waves: []Wave{{Number: 1}, {Number: 2}, {Number: 3}}}})
	require.True(t, h.env.IsWorkflowCompleted())
	err := h.env.GetWorkflowError()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "only from the fleet's own continue-as-new")
	assert.Empty(t, h.kids.list(), "no database started")
}
