package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/internal/policy"
	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/rollout"
	"github.com/fkrollout/fkrollout/workflows/steps"
)

// fleetKids is the test child registered as "FKRollout": each child takes
// an hour of workflow time and ends by its target's name: "fail-*" fails
// the workflow (an error, as FKRollout does for a failed rollout),
// "reject-*" ends in that state, "rolledback-*" and "aborted-*" close failed
// with their typed outcome and status (as FKRollout does), "oldrb-*"
// completes rolled back (as FKRollout did before), "debt-*" completes
// with debt, anything else completes.
type fleetKids struct {
	mu      sync.Mutex
	started []kidStart
	// result, when set, is the status a child ends with (scale_test.go).
	result func(id, env string) *rollout.Status
}

type kidStart struct {
	ID  string
	At  time.Time
	In  rollout.Input
	End time.Time
}

func (k *fleetKids) run(ctx workflow.Context, in rollout.Input) (*rollout.Status, error) {
	id := workflow.GetInfo(ctx).WorkflowExecution.ID
	k.mu.Lock()
	k.started = append(k.started, kidStart{ID: id, At: workflow.Now(ctx), In: in})
	k.mu.Unlock()
	if err := workflow.Sleep(ctx, time.Hour); err != nil {
		return nil, err
	}
	env := in.Environments[0].Name
	st := &rollout.Status{RolloutID: id, Requester: in.Requester, State: rollout.StateCompleted, Phase: rollout.PhaseDone, EnvironmentOrder: []string{env},
		Constraints: []rollout.ConstraintStatus{{Name: "fk_a", Environments: map[string]rollout.ConstraintEnvState{env: {State: rollout.CTested}}},
			{Name: "fk_b", Environments: map[string]rollout.ConstraintEnvState{env: {State: rollout.CValidated}}}}}
	if k.result != nil {
		return k.result(id, env), nil
	}
	prefix, _, _ := strings.Cut(env, "-")
	switch prefix {
	case "fail":
		return st, temporal.NewNonRetryableApplicationError("plan does not fit "+env+": table missing", steps.ErrTypePlan, nil)
	case "reject":
		st.State, st.Phase = rollout.StateRejected, rollout.PhaseDone
	case "rolledback", "oldrb":
		st.State, st.Phase, st.Error = rollout.StateRolledBack, rollout.PhaseDone, "monitor: latency"
		st.Constraints[0].Environments[env] = rollout.ConstraintEnvState{State: rollout.CRolledBack}
		if prefix == "rolledback" {
			return nil, temporal.NewNonRetryableApplicationError("rollout rolled-back", rollout.ErrTypeRolledBack, nil, *st)
		}
	case "aborted":
		st.State = rollout.StateAborted
		return nil, temporal.NewNonRetryableApplicationError("rollout aborted", rollout.ErrTypeAborted, nil, *st)
	case "debt":
		st.State = rollout.StateCompletedWithDebt
		st.Constraints[1].Environments[env] = rollout.ConstraintEnvState{State: rollout.CDebt}
	}
	return st, nil
}

func (k *fleetKids) list() []kidStart {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]kidStart(nil), k.started...)
}

func (k *fleetKids) byID(id string) (kidStart, bool) {
	for _, s := range k.list() {
		if s.ID == id {
			return s, true
		}
	}
	return kidStart{}, false
}

type fleetHarness struct {
	t        *testing.T
	env      *testsuite.TestWorkflowEnvironment
	kids     *fleetKids
	mu       sync.Mutex
	notes    []notify.Event
	reports  []rollout.ReportInput
	accepted map[string]approval.GateView
	rejected map[string]string
	updates  int
	policy   policy.Config
	// closedWith is the error an aborted fleet closed with.
	closedWith error
}

const fleetID = "fleet-test-1"

func newFleetHarness(t *testing.T) *fleetHarness {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	env := s.NewTestWorkflowEnvironment()
	env.SetStartTime(start)
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: fleetID})
	env.SetTestTimeout(30 * time.Second)
	h := &fleetHarness{t: t, env: env, kids: &fleetKids{}, accepted: map[string]approval.GateView{}, rejected: map[string]string{},
		// The fleet tests turn the safeguards they do not test off (fleetInput's
		// skip): the worker lets them, as worker/e2e_test.go's testConfig does.
		policy: policy.Config{TrustClientIdentity: true, AllowSkip: policy.Safeguards, MinWatch: "1s"}}
	env.RegisterWorkflowWithOptions(Workflow, workflow.RegisterOptions{Name: WorkflowName})
	env.RegisterWorkflowWithOptions(h.kids.run, workflow.RegisterOptions{Name: rollout.WorkflowName})
	env.RegisterActivityWithOptions(func(ctx context.Context, in rollout.ParsePlanInput) (rollout.ParsePlanResult, error) {
		if strings.Contains(in.Text, "broken") {
			return rollout.ParsePlanResult{}, temporal.NewNonRetryableApplicationError("line 1: not a plan", steps.ErrTypePlan, nil)
		}
		return rollout.ParsePlanResult{Plan: testPlan()}, nil
	}, activity.RegisterOptions{Name: rollout.ActParsePlan})
	env.RegisterActivityWithOptions(func(ctx context.Context, req rollout.PolicyRequest) (*approval.EffectivePolicy, error) {
		eff, err := rollout.ResolvePolicy(h.policy, req, "", env.Now())
		if err != nil {
			return nil, temporal.NewNonRetryableApplicationError(err.Error(), rollout.ErrTypePolicy, nil)
		}
		return eff, nil
	}, activity.RegisterOptions{Name: rollout.ActResolvePolicy})
	env.RegisterActivityWithOptions(func(ctx context.Context, ev notify.Event) (notify.Receipt, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.notes = append(h.notes, ev)
		return notify.Receipt{Ref: notify.MessageRef{Channel: "C1", TS: fmt.Sprint(len(h.notes))}}, nil
	}, activity.RegisterOptions{Name: steps.ActNotify})
	env.RegisterActivityWithOptions(func(ctx context.Context, in rollout.ReportInput) (rollout.ReportResult, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.reports = append(h.reports, in)
		return rollout.ReportResult{Path: "/reports/" + in.RolloutID + ".md", Posted: true}, nil
	}, activity.RegisterOptions{Name: rollout.ActPublishReport})
	return h
}

// report is the one fleet report the worker was handed.
func (h *fleetHarness) report() rollout.ReportInput {
	h.mu.Lock()
	defer h.mu.Unlock()
	require.Len(h.t, h.reports, 1, "one fleet completion report")
	return h.reports[0]
}

func fleetInput(targets ...string) Input {
	return Input{
		Plan:      "foreign_keys: [...]",
		Requester: requester,
		Targets:   targets,
		Approval:  approval.Policy{Default: approval.GateRule{Approvers: []string{alice, bob, requester, "role:dba"}}},
		Skip:      slices.Clone(policy.Safeguards),
	}
}

// at runs fn at a workflow-time offset from the start.
func (h *fleetHarness) at(d time.Duration, fn func()) { h.env.RegisterDelayedCallback(fn, d) }

func (h *fleetHarness) decide(d approval.DecisionInput) {
	key := d.GateID + " " + d.Actor + " " + d.Choice
	h.updates++ // update ids must be unique; results are kept by key
	h.env.UpdateWorkflow(approval.UpdateDecide, fmt.Sprintf("%s #%d", key, h.updates), &testsuite.TestUpdateCallback{
		OnAccept: func() {},
		OnReject: func(err error) { h.rejected[key] = err.Error() },
		OnComplete: func(v any, err error) {
			if gv, ok := v.(approval.GateView); ok && err == nil {
				h.accepted[key] = gv
			}
		},
	}, d)
}

func (h *fleetHarness) abort(in approval.ControlInput) {
	key := "abort " + in.Actor
	h.env.UpdateWorkflow(approval.UpdateAbort, key, &testsuite.TestUpdateCallback{
		OnAccept: func() {}, OnReject: func(err error) { h.rejected[key] = err.Error() }, OnComplete: func(any, error) {},
	}, in)
}

func (h *fleetHarness) status() *Status {
	v, err := h.env.QueryWorkflow(rollout.QueryStatus)
	require.NoError(h.t, err)
	var st Status
	require.NoError(h.t, v.Get(&st))
	return &st
}

// approveEvery approves every open wave gate as alice each hour.
func (h *fleetHarness) approveEvery() {
	var tick func()
	sent := map[string]bool{}
	tick = func() {
		if h.env.IsWorkflowCompleted() {
			return
		}
		if g := h.status().OpenGate; g != nil && !sent[g.ID] {
			sent[g.ID] = true
			h.decide(approval.DecisionInput{GateID: g.ID, Choice: approval.ChoiceApprove, Actor: alice, Reason: "wave looks good"})
		}
		h.env.RegisterDelayedCallback(tick, 30*time.Minute)
	}
	h.env.RegisterDelayedCallback(tick, 30*time.Minute)
}

func (h *fleetHarness) run(in Input) (*Status, error) { return h.runArg(in) }

// runArg starts the fleet with arg as its input: an Input, or raw JSON.
func (h *fleetHarness) runArg(arg any) (*Status, error) {
	h.env.ExecuteWorkflow(WorkflowName, arg)
	require.True(h.t, h.env.IsWorkflowCompleted())
	err := h.env.GetWorkflowError()
	st := h.status()
	// An aborted fleet closes failed (Aborted), or cancelled when Temporal
	// cancelled it, with its status in the details; tests read the state
	// from the status and the closing error from h.closedWith.
	if st.State == rollout.StateAborted {
		var ae *temporal.ApplicationError
		var ce *temporal.CanceledError
		switch {
		case errors.As(err, &ae):
			require.Equal(h.t, rollout.ErrTypeAborted, ae.Type())
			require.True(h.t, ae.NonRetryable())
			var out Status
			require.NoError(h.t, ae.Details(&out))
			require.Equal(h.t, st.State, out.State)
		case errors.As(err, &ce):
		default:
			require.Fail(h.t, "an aborted fleet closes failed or cancelled", "got %v", err)
		}
		h.closedWith, err = err, nil
	}
	return st, err
}

func targetStates(st *Status) map[string]rollout.RolloutState {
	m := map[string]rollout.RolloutState{}
	for _, t := range st.Targets {
		m[t.Name] = t.State
	}
	return m
}

func TestFleetWaves(t *testing.T) {
	ts := []string{"a", "b", "c", "d", "e", "f", "g"}
	cases := []struct {
		canary, batch int
		want          [][]string
	}{
		{1, 5, [][]string{{"a"}, {"b", "c", "d", "e", "f"}, {"g"}}},
		{1, 3, [][]string{{"a"}, {"b", "c", "d"}, {"e", "f", "g"}}},
		{2, 10, [][]string{{"a", "b"}, {"c", "d", "e", "f", "g"}}},
		{7, 1, [][]string{ts}},
		{1, 1, [][]string{{"a"}, {"b"}, {"c"}, {"d"}, {"e"}, {"f"}, {"g"}}},
		{0, 1, nil},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("canary %d batch %d", tc.canary, tc.batch), func(t *testing.T) {
			assert.Equal(t, tc.want, Waves(ts, tc.canary, tc.batch))
		})
	}
}

// TestFleetCanaryThenBatches: waves run in order, each wave's databases at
// once, the next wave only after its gate is approved; every child gets a
// single-environment FKRollout input derived from the fleet's.
func TestFleetCanaryThenBatches(t *testing.T) {
	h := newFleetHarness(t)
	h.approveEvery()
	in := fleetInput("t1", "t2", "t3", "t4", "t5", "t6")
	in.BatchSize = 3
	in.MaintenanceWindow = &rollout.MaintenanceWindow{Start: "02:00", Duration: "2h", Timezone: "UTC"}
	in.Thresholds = rollout.Thresholds{MaxOverheadMS: 10}
	in.Monitor = rollout.MonitorInput{Enabled: true, Duration: "1h", Interval: "5m"}
	in.Perf = &rollout.PerfInput{Enabled: true, Workload: "demo", Duration: "10s"}
	in.DryRun = false
	st, err := h.run(in)
	require.NoError(t, err)

	assert.Equal(t, rollout.StateCompleted, st.State)
	assert.Equal(t, rollout.PhaseDone, st.Phase)
	assert.Equal(t, 6, st.Succeeded)
	assert.Zero(t, st.Failed)
	assert.Equal(t, 1, st.FailureBudget)
	require.Len(t, st.Waves, 3)
	assert.Equal(t, []string{"t1"}, st.Waves[0].Targets)
	assert.True(t, st.Waves[0].Canary)
	assert.Equal(t, []string{"t2", "t3", "t4"}, st.Waves[1].Targets)
	assert.Equal(t, []string{"t5", "t6"}, st.Waves[2].Targets)
	assert.Equal(t, "fleet/wave/1", st.Waves[0].Gate)
	assert.Equal(t, "fleet/wave/2", st.Waves[1].Gate)
	assert.Empty(t, st.Waves[2].Gate, "no gate after the last wave")
	require.Len(t, st.Gates, 2)
	for _, g := range st.Gates {
		assert.Equal(t, approval.GateDecided, g.Status)
		assert.Equal(t, alice, g.Decision.Actor)
	}
	require.Len(t, st.Decisions, 2)
	assert.Equal(t, "wave looks good", st.Decisions[0].Reason)

	kids := h.kids.list()
	require.Len(t, kids, 6)
	at := map[string]time.Time{}
	for _, k := range kids {
		at[k.ID] = k.At
		require.Len(t, k.In.Environments, 1)
		assert.Equal(t, fleetID+"/"+k.In.Environments[0].Name, k.ID, "child id is <fleet-id>/<target>")
		assert.Equal(t, "02:00", k.In.Environments[0].MaintenanceWindow.Start, "window applied to every target")
		assert.Equal(t, requester, k.In.Requester)
		assert.Equal(t, in.Plan, k.In.Plan)
		assert.Equal(t, in.Thresholds, k.In.Thresholds)
		assert.True(t, k.In.Monitor.Enabled)
		// Each child has the perf section for its own target; its skip
		// (the fleet's) decides whether it runs.
		require.NotNil(t, k.In.Perf, "the perf section goes to every child")
		assert.Equal(t, k.In.Environments[0].Name, k.In.Perf.Environment)
		assert.Equal(t, in.Skip, k.In.Skip, "every child gets the fleet's skip")
	}
	// Canary first; a wave's databases start together; the next wave starts
	// after the previous one ended and its gate was decided.
	c := func(n string) time.Time { return at[fleetID+"/"+n] }
	assert.Equal(t, start, c("t1"))
	assert.Equal(t, c("t2"), c("t3"))
	assert.Equal(t, c("t2"), c("t4"))
	assert.GreaterOrEqual(t, c("t2").Sub(c("t1")), time.Hour)
	assert.Equal(t, c("t5"), c("t6"))
	assert.GreaterOrEqual(t, c("t5").Sub(c("t2")), time.Hour)
	assert.True(t, st.Gates[0].Decision.Time.Before(c("t2")) || st.Gates[0].Decision.Time.Equal(c("t2")))

	for _, tg := range st.Targets {
		assert.Equal(t, fleetID+"/"+tg.Name, tg.ChildID)
		assert.Equal(t, rollout.StateCompleted, tg.State)
		assert.Equal(t, rollout.PhaseDone, tg.Phase)
		assert.Equal(t, 2, tg.Validated)
		assert.NotNil(t, tg.EndedAt)
		assert.NotEmpty(t, tg.RunID)
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	var kinds []notify.Kind
	for _, n := range h.notes {
		assert.Equal(t, fleetID, n.RolloutID)
		kinds = append(kinds, n.Kind)
	}
	assert.Equal(t, notify.KindStarted, kinds[0])
	assert.Contains(t, kinds, notify.KindGateOpened)
	assert.Contains(t, kinds, notify.KindGateDecided)
	assert.Equal(t, notify.KindCompleted, kinds[len(kinds)-1])
	h.mu.Unlock()

	// The fleet's completion report: handed to the worker, the same text
	// the report query gives, and its path in the status.
	rep := h.report()
	assert.Equal(t, fleetID, rep.RolloutID)
	assert.Equal(t, notify.MessageRef{Channel: "C1", TS: "1"}, rep.Thread, "posted in the fleet's thread")
	assert.Equal(t, "/reports/"+fleetID+".md", st.ReportPath)
	for _, want := range []string{
		"# ✅ FK Fleet Rollout", "**Status:** ✅ **COMPLETED** · 6 succeeded · 0 failed (budget 1)",
		"| 1 (canary) | t1 | completed | 1 | 0 |", "`fleet/wave/1`: approve by " + alice,
		"| 3 | t6 | ✅ completed | 2 | 0 | 0 |", "| 3 | t6 | ✅ completed | 2 | 0 | 0 | 1h 00m | `" + fleetID + "/t6` |",
		"| fleet/wave/2 | approve | " + alice, "| Databases Succeeded | 6 | 6 | ✅ PASS (100%) |",
		"| FK Constraints Validated (all databases) | 12 | 12 | ✅ PASS (100%, 0 as debt) |",
	} {
		assert.Contains(t, rep.Markdown, want)
	}
	v, err := h.env.QueryWorkflow(rollout.QueryReport)
	require.NoError(t, err)
	var md string
	require.NoError(t, v.Get(&md))
	assert.Equal(t, rep.Markdown, md, "the query answers the report the worker wrote")
	h.mu.Lock()
}

// TestFleetGateBlocksAndValidates: the gate holds the next wave until a
// decision that passes the validator: four-eyes, the approver list, known
// gates and choices, one vote per person, min_approvals. The status query
// shows the fleet meanwhile.
func TestFleetGateBlocksAndValidates(t *testing.T) {
	h := newFleetHarness(t)
	in := fleetInput("c1", "b1", "b2")
	in.BatchSize = 2
	in.Approval.Gates = map[string]approval.GateRule{"promotion/fleet": {Approvers: []string{alice, bob, requester}, MinApprovals: 2}}
	var during *Status
	h.at(5*time.Hour, func() {
		during = h.status()
		h.decide(approval.DecisionInput{GateID: "fleet/wave/1", Choice: approval.ChoiceApprove, Actor: requester})
		h.decide(approval.DecisionInput{GateID: "fleet/wave/1", Choice: approval.ChoiceApprove, Actor: mallory})
		h.decide(approval.DecisionInput{GateID: "fleet/wave/9", Choice: approval.ChoiceApprove, Actor: alice})
		h.decide(approval.DecisionInput{GateID: "c1/remediation/1", Choice: approval.ChoiceDelete, Actor: alice})
		h.decide(approval.DecisionInput{GateID: "fleet/wave/1", Choice: approval.ChoiceDelete, Actor: alice})
		h.decide(approval.DecisionInput{GateID: "fleet/wave/1", Choice: approval.ChoiceApprove, Actor: alice, Reason: "canary clean"})
	})
	h.at(6*time.Hour, func() {
		h.decide(approval.DecisionInput{GateID: "fleet/wave/1", Choice: approval.ChoiceReject, Actor: alice}) // second vote, other choice
		h.decide(approval.DecisionInput{GateID: "fleet/wave/1", Choice: approval.ChoiceApprove, Actor: "BOB@example.com", Reason: "ok", Via: "cli"})
	})
	h.at(6*time.Hour+time.Minute, func() {
		h.decide(approval.DecisionInput{GateID: "fleet/wave/1", Choice: approval.ChoiceApprove, Actor: alice})
	})
	st, err := h.run(in)
	require.NoError(t, err)
	assert.Equal(t, rollout.StateCompleted, st.State)

	require.NotNil(t, during)
	assert.Equal(t, rollout.StateWaitingForGate, during.State)
	assert.Equal(t, "wave-1/2", during.Phase)
	assert.Equal(t, 1, during.CurrentWave)
	require.NotNil(t, during.OpenGate)
	assert.Equal(t, "fleet/wave/1", during.OpenGate.ID)
	assert.Equal(t, []string{approval.ChoiceApprove, approval.ChoiceReject, approval.ChoiceAbort}, during.OpenGate.Choices)
	assert.Equal(t, 2, during.OpenGate.Rule.MinApprovals)
	assert.Contains(t, during.OpenGate.Title, "start wave 2 (2 databases: b1, b2)")
	assert.Equal(t, map[string]rollout.RolloutState{"c1": rollout.StateCompleted, "b1": rollout.StatePending, "b2": rollout.StatePending}, targetStates(during))
	assert.Equal(t, rollout.StateCompleted, during.Waves[0].State)
	assert.Equal(t, rollout.StatePending, during.Waves[1].State)
	assert.Equal(t, fleetID+"/b1", during.Targets[1].ChildID)
	assert.Equal(t, 1, during.FailureBudget)
	assert.Equal(t, start, during.StartedAt)
	assert.True(t, during.UpdatedAt.After(start))
	assert.NotEmpty(t, during.Timeline)

	assert.Contains(t, h.rejected["fleet/wave/1 "+requester+" approve"], "four-eyes")
	assert.Contains(t, h.rejected["fleet/wave/1 "+mallory+" approve"], "not an allowed approver")
	assert.Contains(t, h.rejected["fleet/wave/9 "+alice+" approve"], "unknown gate")
	assert.Contains(t, h.rejected["fleet/wave/9 "+alice+" approve"], "open gates: fleet/wave/1")
	assert.Contains(t, h.rejected["c1/remediation/1 "+alice+" delete"], "child workflow")
	assert.Contains(t, h.rejected["fleet/wave/1 "+alice+" delete"], "not offered")
	assert.Contains(t, h.rejected["fleet/wave/1 "+alice+" reject"], "already decided")
	assert.Equal(t, 1, h.accepted["fleet/wave/1 "+alice+" approve"].Waiting, "min_approvals 2: one more needed")
	assert.Equal(t, approval.GateDecided, h.accepted["fleet/wave/1 BOB@example.com approve"].Status)
	assert.Contains(t, h.rejected["fleet/wave/1 "+alice+" approve"], "closed", "a late vote on a decided gate")

	// Wave 2 started only when bob's vote closed the gate, at 6h.
	k, ok := h.kids.byID(fleetID + "/b1")
	require.True(t, ok)
	assert.Equal(t, start.Add(6*time.Hour), k.At)
	require.Len(t, st.Decisions, 2)
	assert.Equal(t, alice, st.Decisions[0].Actor)
	assert.Equal(t, "canary clean", st.Decisions[0].Reason)
	assert.Equal(t, "cli", st.Decisions[1].Via)
	assert.Equal(t, start.Add(6*time.Hour), st.Decisions[1].Time)
	require.Len(t, st.Gates[0].Votes, 2)
}

// TestFleetGateOutcomes: reject and abort at the gate (the requester may
// choose them), a role approver, the gate's timeout applying on_timeout,
// and the signal fallback with its refusal record.
func TestFleetGateOutcomes(t *testing.T) {
	cases := []struct {
		name      string
		gates     map[string]approval.GateRule
		decide    []approval.DecisionInput
		signal    []approval.DecisionInput
		wantState rollout.RolloutState
		wantKids  int
		wantGate  approval.GateStatus
		refusal   string
	}{
		{name: "requester rejects", decide: []approval.DecisionInput{{GateID: "fleet/wave/1", Choice: approval.ChoiceReject, Actor: requester, Reason: "canary slow"}},
			wantState: rollout.StateRejected, wantKids: 1, wantGate: approval.GateDecided},
		{name: "abort", decide: []approval.DecisionInput{{GateID: "fleet/wave/1", Choice: approval.ChoiceAbort, Actor: bob}},
			wantState: rollout.StateAborted, wantKids: 1, wantGate: approval.GateDecided},
		{name: "role approver", decide: []approval.DecisionInput{{GateID: "fleet/wave/1", Choice: approval.ChoiceApprove, Actor: "dana@example.com", Roles: []string{"DBA"}}},
			wantState: rollout.StateCompleted, wantKids: 3, wantGate: approval.GateDecided},
		{name: "timeout rejects by default", gates: map[string]approval.GateRule{"promotion": {Timeout: "3h"}},
			wantState: rollout.StateRejected, wantKids: 1, wantGate: approval.GateTimedOut},
		{name: "timeout approves when configured", gates: map[string]approval.GateRule{"promotion/fleet": {Timeout: "3h", OnTimeout: approval.ChoiceApprove}},
			wantState: rollout.StateCompleted, wantKids: 3, wantGate: approval.GateTimedOut},
		{name: "signal fallback", signal: []approval.DecisionInput{
			{GateID: "fleet/wave/1", Choice: approval.ChoiceApprove, Actor: requester},
			{GateID: "fleet/wave/1", Choice: approval.ChoiceApprove, Actor: alice}},
			wantState: rollout.StateCompleted, wantKids: 3, wantGate: approval.GateDecided, refusal: "four-eyes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newFleetHarness(t)
			in := fleetInput("c1", "b1", "b2")
			in.Approval.Gates = tc.gates
			h.at(2*time.Hour, func() {
				for _, d := range tc.decide {
					h.decide(d)
				}
				for _, d := range tc.signal {
					h.env.SignalWorkflow(approval.SignalDecide, d)
				}
			})
			st, err := h.run(in)
			require.NoError(t, err)
			assert.Equal(t, tc.wantState, st.State, st.Error)
			assert.Len(t, h.kids.list(), tc.wantKids)
			require.Len(t, st.Gates, 1)
			assert.Equal(t, tc.wantGate, st.Gates[0].Status)
			if tc.wantKids == 1 {
				assert.Equal(t, map[string]rollout.RolloutState{"c1": rollout.StateCompleted, "b1": rollout.StateSkipped, "b2": rollout.StateSkipped}, targetStates(st))
				assert.Equal(t, rollout.StateSkipped, st.Waves[1].State)
			}
			if tc.wantGate == approval.GateTimedOut {
				assert.Equal(t, "timeout", st.Gates[0].Decision.Actor)
				assert.Equal(t, start.Add(4*time.Hour), st.Gates[0].Decision.Time, "canary 1h, then the 3h timer")
			}
			if tc.refusal != "" {
				require.Len(t, st.Refusals, 1)
				assert.Equal(t, approval.SignalDecide, st.Refusals[0].Signal)
				assert.Contains(t, st.Refusals[0].Reason, tc.refusal)
				assert.Equal(t, "signal", st.Gates[0].Decision.Via)
			}
		})
	}
}

// TestFleetFailureBudget: failed, rolled-back, aborted and rejected
// children and child errors all count; once the budget is spent no
// further database starts and the fleet fails; within budget it goes on.
func TestFleetFailureBudget(t *testing.T) {
	cases := []struct {
		name      string
		targets   []string
		canary    int
		batch     int
		budget    int
		wantErr   string
		wantState rollout.RolloutState
		wantKids  []string
		failed    int
		succeeded int
	}{
		{name: "canary fails with the default budget", targets: []string{"fail-c", "ok1", "ok2"},
			wantErr: "failure budget exhausted: 1 of 1", wantState: rollout.StateFailed, wantKids: []string{"fail-c"}, failed: 1},
		{name: "budget 2 spent in wave 2 stops wave 3", targets: []string{"ok0", "fail-a", "rolledback-b", "ok1", "ok2"}, batch: 2, budget: 2,
			wantErr: "failure budget exhausted: 2 of 2", wantState: rollout.StateFailed, wantKids: []string{"ok0", "fail-a", "rolledback-b"}, failed: 2, succeeded: 1},
		{name: "within budget the fleet finishes", targets: []string{"ok0", "fail-a", "ok1", "ok2"}, batch: 2, budget: 2,
			wantState: rollout.StateCompletedWithFailures, wantKids: []string{"ok0", "fail-a", "ok1", "ok2"}, failed: 1, succeeded: 3},
		{name: "every failed outcome counts, debt does not", targets: []string{"fail-a", "reject-b", "rolledback-c", "aborted-d", "debt-e", "ok", "oldrb-f"},
			canary: 7, budget: 10, wantState: rollout.StateCompletedWithFailures, wantKids: []string{"fail-a", "reject-b", "rolledback-c", "aborted-d", "debt-e", "ok", "oldrb-f"}, failed: 5, succeeded: 2},
		{name: "all succeed with debt", targets: []string{"debt-a", "ok"}, canary: 2,
			wantState: rollout.StateCompletedWithDebt, wantKids: []string{"debt-a", "ok"}, succeeded: 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newFleetHarness(t)
			h.approveEvery()
			in := fleetInput(tc.targets...)
			in.Canary, in.BatchSize, in.FailureBudget = tc.canary, tc.batch, tc.budget
			st, err := h.run(in)
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				var ae *temporal.ApplicationError
				require.True(t, errors.As(err, &ae))
				assert.Equal(t, ErrTypeBudget, ae.Type())
			} else {
				require.NoError(t, err)
			}
			assert.Equal(t, tc.wantState, st.State)
			assert.Equal(t, tc.failed, st.Failed)
			assert.Equal(t, tc.succeeded, st.Succeeded)
			var ids []string
			for _, k := range h.kids.list() {
				ids = append(ids, strings.TrimPrefix(k.ID, fleetID+"/"))
			}
			assert.ElementsMatch(t, tc.wantKids, ids)
			rep := h.report().Markdown
			assert.Contains(t, rep, fmt.Sprintf("%d succeeded · %d failed", tc.succeeded, tc.failed))
			if tc.wantErr != "" {
				assert.Contains(t, rep, "**Error:** "+tc.wantErr)
				assert.Contains(t, rep, "| Failed Databases (budget) | < ")
				assert.Contains(t, rep, "| skipped |", "the databases never started are in the report")
			}
			if tc.failed > 0 {
				assert.Contains(t, rep, "What went wrong:")
			}
			for _, tg := range st.Targets {
				started := false
				for _, k := range tc.wantKids {
					started = started || k == tg.Name
				}
				if !started {
					assert.Equal(t, rollout.StateSkipped, tg.State, tg.Name)
					continue
				}
				prefix, _, _ := strings.Cut(tg.Name, "-")
				wantFailed := map[string]bool{"fail": true, "reject": true, "rolledback": true, "aborted": true, "oldrb": true}[prefix]
				assert.Equal(t, wantFailed, tg.Failed, tg.Name)
				if prefix == "fail" {
					assert.Equal(t, rollout.StateFailed, tg.State)
					assert.Contains(t, tg.Error, "plan does not fit "+tg.Name)
				}
				switch prefix {
				case "rolledback", "oldrb":
					// The child's RolledBack failure is its outcome, read
					// from the status it carries, not an infrastructure error.
					assert.Equal(t, rollout.StateRolledBack, tg.State, tg.Name)
					assert.Equal(t, "monitor: latency", tg.Error, tg.Name)
					assert.Equal(t, 1, tg.RolledBack, tg.Name)
				case "aborted":
					assert.Equal(t, rollout.StateAborted, tg.State, tg.Name)
				}
			}
		})
	}
}

// TestFleetAbortLetsInFlightFinish: an abort during a wave starts nothing
// more but does not cancel the children in flight; a rollback abort is
// refused with the way to do it.
func TestFleetAbortLetsInFlightFinish(t *testing.T) {
	h := newFleetHarness(t)
	h.approveEvery()
	in := fleetInput("c1", "b1", "b2", "b3")
	in.BatchSize = 2
	h.at(time.Hour+45*time.Minute, func() {
		h.abort(approval.ControlInput{Actor: alice, Reason: "nope", Rollback: true})
		h.abort(approval.ControlInput{Actor: requester, Reason: "pager went off"})
	})
	st, err := h.run(in)
	require.NoError(t, err)
	assert.Contains(t, h.rejected["abort "+alice], "does not roll back")
	assert.Equal(t, rollout.StateAborted, st.State)
	assert.Equal(t, map[string]rollout.RolloutState{"c1": rollout.StateCompleted, "b1": rollout.StateCompleted, "b2": rollout.StateCompleted, "b3": rollout.StateSkipped}, targetStates(st))
	assert.Equal(t, approval.UpdateAbort, st.Decisions[len(st.Decisions)-1].Action)
}

// TestFleetInputValidation: every problem is named, and an invalid fleet
// fails before it starts any child.
// TestFleetMisspelledKeysAreRefused: a key no field takes fails the fleet
// at start, naming it, before any child starts.
func TestFleetMisspelledKeysAreRefused(t *testing.T) {
	h := newFleetHarness(t)
	raw := json.RawMessage(`{"plan":"foreign_keys: [...]","requester":"rita@example.com","targets":["t1","t2"],"canary_size":1,"dryrun":true}`)
	st, err := h.runArg(raw)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `dryrun (did you mean "dry_run"?)`)
	assert.Contains(t, err.Error(), "canary_size")
	assert.Equal(t, rollout.StateFailed, st.State)
	assert.Empty(t, h.kids.list(), "no child started")
}

func TestFleetInputValidation(t *testing.T) {
	cases := []struct {
		name string
		edit func(in *Input)
		want []string
	}{
		{"no targets", func(in *Input) { in.Targets = nil }, []string{"targets: name at least one"}},
		{"duplicate target", func(in *Input) { in.Targets = []string{"a", "b", "A"} }, []string{`target "A" is listed twice`}},
		{"empty and odd names", func(in *Input) { in.Targets = []string{"a", " ", "x/y"} }, []string{"targets[1] is empty", `target "x/y"`}},
		{"batch size", func(in *Input) { in.BatchSize = -1 }, []string{"batch_size -1"}},
		{"budget", func(in *Input) { in.FailureBudget = -2 }, []string{"failure_budget -2"}},
		{"canary negative", func(in *Input) { in.Canary = -1 }, []string{"canary -1"}},
		{"canary above targets", func(in *Input) { in.Canary = 4 }, []string{"canary 4 is more than the 3 targets"}},
		{"too many", func(in *Input) {
			in.Targets = nil
			for i := 0; i <= MaxTargets; i++ {
				in.Targets = append(in.Targets, fmt.Sprintf("t%d", i))
			}
		}, []string{fmt.Sprintf("at most %d", MaxTargets)}},
		{"wave gate timeout choice", func(in *Input) {
			in.Approval.Gates = map[string]approval.GateRule{"promotion/fleet": {Timeout: "1h", OnTimeout: approval.ChoiceDelete}}
		}, []string{`wave gate on_timeout "delete"`}},
		{"perf environment", func(in *Input) { in.Perf = &rollout.PerfInput{Enabled: true, Environment: "staging"} }, []string{`perf.environment "staging" is not one of the targets`}},
		{"child input problems", func(in *Input) {
			in.Plan, in.Requester = " ", ""
			in.MaintenanceWindow = &rollout.MaintenanceWindow{Start: "25:00", Duration: "2h"}
			in.Approval.Gates = map[string]approval.GateRule{"bogus": {}}
		}, []string{"plan is empty", "requester is required", `approval.gates key "bogus"`, "25:00"}},
		{"all at once", func(in *Input) {
			in.Targets = []string{"a", "a"}
			in.BatchSize, in.FailureBudget, in.Canary = -1, -1, 3
		}, []string{"listed twice", "batch_size -1", "failure_budget -1", "canary 3 is more than the 2 targets"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := fleetInput("a", "b", "c")
			tc.edit(&in)
			err := in.Validate()
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
	require.NoError(t, fleetInput("a").Validate())

	t.Run("the workflow fails before any child", func(t *testing.T) {
		h := newFleetHarness(t)
		in := fleetInput("a", "a", "b")
		in.BatchSize = -3
		st, err := h.run(in)
		require.Error(t, err)
		var ae *temporal.ApplicationError
		require.True(t, errors.As(err, &ae))
		assert.Equal(t, ErrTypeInput, ae.Type())
		assert.Contains(t, err.Error(), `target "a" is listed twice`)
		assert.Contains(t, err.Error(), "batch_size -3")
		assert.Empty(t, h.kids.list())
		assert.Equal(t, rollout.StateFailed, st.State)
		assert.Empty(t, h.notes, "nothing announced")
	})
	t.Run("a broken plan fails before any child", func(t *testing.T) {
		h := newFleetHarness(t)
		in := fleetInput("a", "b")
		in.Plan = "broken"
		_, err := h.run(in)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "not a plan")
		assert.Empty(t, h.kids.list())
	})
}

// TestFleetDryRunHasNoGates: a dry run changes nothing, so its waves run
// back to back.
func TestFleetDryRunHasNoGates(t *testing.T) {
	h := newFleetHarness(t)
	in := fleetInput("a", "b", "c")
	in.BatchSize = 1
	in.DryRun = true
	st, err := h.run(in)
	require.NoError(t, err)
	assert.Equal(t, rollout.StateDryRunDone, st.State)
	assert.Empty(t, st.Gates)
	for _, k := range h.kids.list() {
		assert.True(t, k.In.DryRun)
	}
	assert.Len(t, h.kids.list(), 3)
}

// TestFleetCancelNeverCancelsChildren: cancelling the fleet while a wave
// runs leaves its children to finish (they are on a disconnected context
// and abandoned); nothing further starts and the fleet ends aborted.
func TestFleetCancelNeverCancelsChildren(t *testing.T) {
	h := newFleetHarness(t)
	h.approveEvery()
	in := fleetInput("c1", "b1", "b2")
	in.BatchSize = 1
	h.at(90*time.Minute+5*time.Minute, func() { h.env.CancelWorkflow() })
	st, err := h.run(in)
	require.NoError(t, err)
	assert.Equal(t, rollout.StateAborted, st.State)
	var ce *temporal.CanceledError
	assert.ErrorAs(t, h.closedWith, &ce, "a cancelled fleet ends cancelled")
	assert.Equal(t, map[string]rollout.RolloutState{"c1": rollout.StateCompleted, "b1": rollout.StateCompleted, "b2": rollout.StateSkipped}, targetStates(st))
	assert.Len(t, h.kids.list(), 2)
}
