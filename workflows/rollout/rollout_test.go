package rollout

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
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"github.com/uber-go/tally/v4"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	sdktally "go.temporal.io/sdk/contrib/tally"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/internal/policy"
	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/steps"
	"github.com/fkrollout/fkrollout/workflows/watch"
)

// fakeEngine is an in-memory stand-in for the databases, so the workflow's
// logic (gates, loops, windows, rollback) is tested with time skipping. The
// real engine runs in the end-to-end test.
type fakeEngine struct {
	mu sync.Mutex
	// orphans[env][fk] is the current orphan count.
	orphans map[string]map[string]int64
	// validateOrphans[env/fk] > 0: VALIDATE fails with 23503 that many times
	// (a row written before NOT VALID went in, missed by a racing audit).
	validateOrphans map[string]int
	constraints     map[string]string // env/fk → "not_valid" | "valid"
	calls           []string
	hookFailures    int
	// expectations[env] are CheckExpectations' answers, one per call
	// (the last one repeats).
	expectations map[string][][]ExpectationResult
	// exports are the ExportOrphans requests; exportFails fails them.
	exports       []ExportOrphansInput
	exportFails   bool
	notifications []notify.Event
	reports       []ReportInput
	now           func() time.Time
	// policy is the worker policy ResolvePolicy applies: development mode
	// (the input's rules) unless a test sets one.
	policy      policy.Config
	slackSigner string
	// failures["Apply staging/fk"] are errors an activity returns (first
	// one first) before it behaves.
	failures map[string][]error
	// impacts["staging/fk"] replaces the default impact (nothing else
	// touched, nullable).
	impacts map[string]Impact
	// quarantined[env] counts rows remediation removed.
	quarantined map[string]int64
	// partial["staging/fk"]: rows a failing remediation removed first.
	partial map[string]int64
	modes   []string
	// notOwned["staging/fk"]: the constraint exists but another run owns it.
	notOwned map[string]bool
	// droppedBehind["staging/fk"]: the constraint disappears just before
	// its VALIDATE.
	droppedBehind map[string]bool
	// backups are the backups asked for, in order.
	backups []BackupInput
	// hookRuns are the deploy hooks run, "env/name", in order.
	hookRuns []string
	// rollbackHooks[set] are the rollback hooks configured (every
	// environment); failingHook fails whenever it runs.
	rollbackHooks map[string][]string
	failingHook   string
	// shape, when set, makes the engine answer like a large real database
	// (scale_test.go): its plan, and results of realistic size.
	shape *scaleShape
}

// fail pops the next scripted failure of act for env/fk.
func (f *fakeEngine) fail(act, env, fk string) error {
	k := act + " " + env + "/" + fk
	if len(f.failures[k]) == 0 {
		return nil
	}
	err := f.failures[k][0]
	f.failures[k] = f.failures[k][1:]
	return err
}

func newFake() *fakeEngine {
	return &fakeEngine{orphans: map[string]map[string]int64{}, validateOrphans: map[string]int{},
		constraints: map[string]string{}, policy: policy.Config{TrustClientIdentity: true, AllowSkip: policy.Safeguards}, failures: map[string][]error{},
		impacts: map[string]Impact{}, quarantined: map[string]int64{}, partial: map[string]int64{}, notOwned: map[string]bool{}, droppedBehind: map[string]bool{}}
}

func (f *fakeEngine) record(act, env string, ctx context.Context) {
	f.calls = append(f.calls, act+" "+env)
}

func (f *fakeEngine) register(env *testsuite.TestWorkflowEnvironment) { f.registerOn(env, env.Now) }

// activityRegistry is where the fakes go: the test environment, or a
// worker of a dev server (scale_devserver_test.go).
type activityRegistry interface {
	RegisterActivityWithOptions(a any, options activity.RegisterOptions)
}

func (f *fakeEngine) registerOn(env activityRegistry, now func() time.Time) {
	reg := func(fn any, name string) { env.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name}) }
	reg(func(ctx context.Context, req PolicyRequest) (*approval.EffectivePolicy, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.record(ActResolvePolicy, "", ctx)
		eff, err := ResolvePolicy(f.policy, req, f.slackSigner, now())
		if err != nil {
			return nil, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypePolicy, nil)
		}
		return eff, nil
	}, ActResolvePolicy)
	reg(func(ctx context.Context, in ParsePlanInput) (ParsePlanResult, error) {
		if !strings.Contains(in.Text, "foreign_keys") {
			return ParsePlanResult{}, temporal.NewNonRetryableApplicationError("plan: no foreign_keys", steps.ErrTypePlan, nil)
		}
		if f.shape != nil {
			return ParsePlanResult{Plan: f.shape.plan}, nil
		}
		return ParsePlanResult{Plan: testPlan()}, nil
	}, ActParsePlan)
	reg(func(ctx context.Context, in EnvInput) (CheckResult, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.record(ActCheckPlan, in.Environment, ctx)
		return CheckResult{}, nil
	}, ActCheckPlan)
	reg(func(ctx context.Context, in StatsInput) (StatsResult, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.record(ActTakeStats, in.Environment, ctx)
		if f.shape != nil {
			return f.shape.stats(), nil
		}
		return StatsResult{Snapshot: json.RawMessage(`{}`), TakenAt: time.Unix(0, 0)}, nil
	}, ActTakeStats)
	reg(func(ctx context.Context, in AuditInput) ([]AuditFigure, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.record(ActAudit, in.Environment, ctx)
		var out []AuditFigure
		for _, fk := range in.FKs {
			n := f.orphans[in.Environment][fk.Name]
			fig := AuditFigure{FK: fk.Name, Table: fk.Table.String(), References: fk.RefTable.String(), Orphans: n}
			if n > 0 {
				fig.Samples = []string{"id=orphan-1"}
			}
			if f.shape != nil {
				fig = f.shape.auditFigure(fk, n)
			}
			out = append(out, fig)
		}
		return out, nil
	}, ActAudit)
	reg(func(ctx context.Context, in BackupInput) (BackupResult, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.record(ActBackup, in.Environment, ctx)
		f.backups = append(f.backups, in)
		return BackupResult{Artifacts: []BackupArtifact{{Kind: "tables", Path: "/backups/x.dump"}}}, nil
	}, ActBackup)
	reg(func(ctx context.Context, in ConstraintInput) (ConstraintResult, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.record(ActApplyConstraint, in.Environment, ctx)
		if err := f.fail(ActApplyConstraint, in.Environment, in.FK.Name); err != nil {
			return ConstraintResult{}, err
		}
		k := in.Environment + "/" + in.FK.Name
		action := "exists"
		if _, ok := f.constraints[k]; !ok {
			f.constraints[k] = "not_valid"
			action = "created"
		}
		return ConstraintResult{FK: in.FK.Name, Action: action}, nil
	}, ActApplyConstraint)
	reg(func(ctx context.Context, in RemediateInput) (RemediationResult, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.record(ActRemediate, in.Environment, ctx)
		if err := f.fail(ActRemediate, in.Environment, in.FK.Name); err != nil {
			// Batches committed before the failure stay done.
			p := f.partial[in.Environment+"/"+in.FK.Name]
			f.orphans[in.Environment][in.FK.Name] -= p
			f.quarantined[in.Environment] += p
			return RemediationResult{}, err
		}
		f.modes = append(f.modes, in.Mode)
		n := f.orphans[in.Environment][in.FK.Name]
		f.orphans[in.Environment][in.FK.Name] = 0
		f.quarantined[in.Environment] += n
		return RemediationResult{FK: in.FK.Name, Mode: in.Mode, Quarantined: n, Affected: n, Batches: 1}, nil
	}, ActRemediate)
	reg(func(ctx context.Context, in ConstraintInput) (ConstraintResult, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.record(ActValidateConstraint, in.Environment, ctx)
		if err := f.fail(ActValidateConstraint, in.Environment, in.FK.Name); err != nil {
			return ConstraintResult{}, err
		}
		k := in.Environment + "/" + in.FK.Name
		if f.droppedBehind[k] {
			// Someone dropped it between ADD and VALIDATE.
			delete(f.droppedBehind, k)
			delete(f.constraints, k)
		}
		if _, ok := f.constraints[k]; !ok {
			return ConstraintResult{}, temporal.NewNonRetryableApplicationError("validate "+in.FK.Name+": constraint does not exist", steps.ErrTypeMissing, nil)
		}
		if f.validateOrphans[k] > 0 {
			f.validateOrphans[k]--
			f.orphans[in.Environment][in.FK.Name] += 2
			return ConstraintResult{}, temporal.NewNonRetryableApplicationError("VALIDATE "+in.FK.Name+": 23503", steps.ErrTypeOrphans, nil)
		}
		if f.orphans[in.Environment][in.FK.Name] > 0 {
			return ConstraintResult{}, temporal.NewNonRetryableApplicationError("VALIDATE "+in.FK.Name+": 23503", steps.ErrTypeOrphans, nil)
		}
		f.constraints[k] = "valid"
		return ConstraintResult{FK: in.FK.Name, Action: "validated"}, nil
	}, ActValidateConstraint)
	reg(func(ctx context.Context, in BehaviourInput) ([]BehaviourResult, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.record(ActRunBehaviourTests, in.Environment, ctx)
		var out []BehaviourResult
		for _, fk := range in.FKs {
			br := BehaviourResult{FK: fk.Name, Passed: true, Cases: []BehaviourCase{{Name: "reject invalid insert", Outcome: "pass", Passed: true}}}
			if f.shape != nil {
				br = f.shape.behaviour(fk)
			}
			out = append(out, br)
		}
		return out, nil
	}, ActRunBehaviourTests)
	reg(func(ctx context.Context, in RollbackInput) ([]ConstraintResult, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.record(ActRollback, in.Environment, ctx)
		if err := f.fail(ActRollback, in.Environment, ""); err != nil {
			return nil, err
		}
		var out []ConstraintResult
		for i := len(in.Plan.ForeignKeys) - 1; i >= 0; i-- {
			fk := in.Plan.ForeignKeys[i]
			k := in.Environment + "/" + fk.Name
			switch state, ok := f.constraints[k]; {
			case !ok:
				out = append(out, ConstraintResult{FK: fk.Name, Action: "absent"})
			case f.notOwned[k]:
				out = append(out, ConstraintResult{FK: fk.Name, Action: "not-owned"})
			case state == "valid" && in.KeepValidated:
				out = append(out, ConstraintResult{FK: fk.Name, Action: keptValidated})
			default:
				delete(f.constraints, k)
				out = append(out, ConstraintResult{FK: fk.Name, Action: "dropped"})
			}
		}
		return out, nil
	}, ActRollback)
	reg(func(ctx context.Context, in HooksInput) ([]HookResult, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if in.Set != "" {
			// Rollback hooks: rollbackHooks[set], recorded in the call log
			// so their order around the drop shows.
			for _, name := range f.rollbackHooks[in.Set] {
				if slices.Contains(in.Done, name) {
					continue
				}
				f.record("Hook "+in.Set+"/"+name, in.Environment, ctx)
				ok := name != f.failingHook
				return []HookResult{{Name: name, OK: ok, ExitCode: map[bool]int{true: 0, false: 3}[ok]}}, nil
			}
			return []HookResult{}, nil
		}
		f.record(ActRunDeployHooks, in.Environment, ctx)
		// Two hooks; restart-api fails hookFailures times in production.
		out := []HookResult{}
		for _, name := range []string{"prisma-generate", "restart-api"} {
			if slices.Contains(in.Done, name) {
				continue
			}
			f.hookRuns = append(f.hookRuns, in.Environment+"/"+name)
			if err := f.fail(ActRunDeployHooks, in.Environment, name); err != nil {
				return nil, err // the worker died during this hook: Temporal retries the activity
			}
			if name == "restart-api" && in.Environment == "production" && f.hookFailures > 0 {
				f.hookFailures--
				return append(out, HookResult{Name: name, OK: false, ExitCode: 1, Output: "boom"}), nil
			}
			out = append(out, HookResult{Name: name, OK: true})
			if in.One {
				break
			}
		}
		return out, nil
	}, ActRunDeployHooks)
	reg(func(ctx context.Context, in HooksInput) ([]SmokeResult, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.record(ActRunSmokeChecks, in.Environment, ctx)
		return []SmokeResult{{Name: "health", OK: true, Status: 200, Expected: 200}}, nil
	}, ActRunSmokeChecks)
	reg(func(ctx context.Context, in EnvInput) ([]Verification, error) { return nil, nil }, ActVerify)
	reg(func(ctx context.Context, in ImpactInput) (Impact, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.record(ActRemediationImpact, in.Environment, ctx)
		if imp, ok := f.impacts[in.Environment+"/"+in.FK.Name]; ok {
			return imp, nil
		}
		return Impact{FK: in.FK.Name, Orphans: f.orphans[in.Environment][in.FK.Name], Nullable: true,
			Impossible: map[string]string{approval.ChoiceDeleteWithDependents: "no row references the orphans; delete is enough"}}, nil
	}, ActRemediationImpact)
	reg(func(ctx context.Context, in QuarantineInput) (QuarantineResult, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.record(ActQuarantine, in.Environment, ctx)
		res := QuarantineResult{Rows: f.quarantined[in.Environment]}
		if res.Rows > 0 {
			res.Tables = []QuarantineCount{{Table: "public.workflow_stages", Action: "delete", Rows: res.Rows}}
		}
		if in.Restore {
			res.Restored, res.Rows, res.Tables = res.Rows, 0, nil
			f.quarantined[in.Environment] = 0
		}
		return res, nil
	}, ActQuarantine)
	reg(func(ctx context.Context, in ExpectInput) ([]ExpectationResult, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.record(ActCheckExpectations, in.Environment, ctx)
		answers := f.expectations[in.Environment]
		if len(answers) == 0 {
			return nil, nil
		}
		res := answers[0]
		if len(answers) > 1 {
			f.expectations[in.Environment] = answers[1:]
		}
		return res, nil
	}, ActCheckExpectations)
	reg(func(ctx context.Context, in ExportOrphansInput) ([]OrphanExport, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.exports = append(f.exports, in)
		if f.exportFails {
			return nil, errors.New("backup dir: permission denied")
		}
		var out []OrphanExport
		for _, fk := range in.FKs {
			n := f.orphans[in.Environment][fk.Name]
			out = append(out, OrphanExport{FK: fk.Name, Round: in.Round, Path: fmt.Sprintf("/backups/%s/%s/orphans/round-%d/%s.csv", in.RolloutID, in.Environment, in.Round, fk.Name),
				Rows: n, Orphans: n})
		}
		return out, nil
	}, ActExportOrphans)
	reg(func(ctx context.Context, ev notify.Event) (notify.Receipt, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.notifications = append(f.notifications, ev)
		return notify.Receipt{Ref: notify.MessageRef{Channel: "C1", TS: fmt.Sprint(len(f.notifications))}}, nil
	}, steps.ActNotify)
	reg(func(ctx context.Context, in ReportInput) (ReportResult, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.reports = append(f.reports, in)
		return ReportResult{Path: "/reports/" + in.RolloutID + ".md", Posted: true}, nil
	}, ActPublishReport)
}

func (f *fakeEngine) count(call string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if c == call {
			n++
		}
	}
	return n
}

func testPlan() plan.Plan {
	t := func(n string) plan.TableName { return plan.TableName{Schema: "public", Name: n} }
	return plan.Plan{Name: "demo", ForeignKeys: []plan.ForeignKey{
		{Name: "fk_stages_instance", Table: t("workflow_stages"), Columns: []string{"workflow_instance_id"}, RefTable: t("workflow_instances"), RefColumns: []string{"id"}, Priority: plan.PriorityHigh},
		{Name: "fk_instances_workspace", Table: t("workflow_instances"), Columns: []string{"workspace_id"}, RefTable: t("workspaces"), RefColumns: []string{"id"}, Priority: plan.PriorityCritical},
		{Name: "fk_vendor_workspace", Table: t("vendor_master"), Columns: []string{"workspace_id"}, RefTable: t("workspaces"), RefColumns: []string{"id"}, Priority: plan.PriorityMedium},
	}}
}

const (
	requester = "rita@example.com"
	alice     = "alice@example.com"
	bob       = "bob@example.com"
	mallory   = "mallory@example.com"
)

// testInput: staging, then production with a daily 02:00 UTC window;
// promotion to production needs alice and bob. It skips every safeguard
// (the fake worker's policy allows it; the window is kept): tests of one
// take it out of Skip.
func testInput() Input {
	return Input{
		Plan:      "foreign_keys: [...]",
		Requester: requester,
		Skip:      slices.Clone(policy.Safeguards),
		Environments: []EnvironmentInput{
			{Name: "staging"},
			{Name: "production", MaintenanceWindow: &MaintenanceWindow{Start: "02:00", Duration: "2h", Timezone: "UTC", NotifyBefore: "30m"}},
		},
		Approval: approval.Policy{
			Default: approval.GateRule{Approvers: []string{alice, bob, requester}},
			Gates: map[string]approval.GateRule{
				"promotion/production": {Approvers: []string{alice, bob, requester}, MinApprovals: 2},
			},
		},
	}
}

// start is 2026-03-02 10:00 UTC: the production window opens at 02:00 next day.
var start = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

type harness struct {
	t    *testing.T
	env  *testsuite.TestWorkflowEnvironment
	fake *fakeEngine
	// script decides open gates; it returns the decisions to send.
	script func(h *harness, g approval.Gate) []approval.DecisionInput
	sent   map[string]bool
	// results of updates, by "gate actor choice".
	accepted map[string]approval.GateView
	rejected map[string]string
	// metrics records what the workflow emitted through the SDK's handler.
	metrics tally.TestScope
	// closedWith is the typed failure a stopped rollout closed with.
	closedWith error
	// at registers a one-off callback at a test time offset.
}

func newHarness(t *testing.T, script func(h *harness, g approval.Gate) []approval.DecisionInput) *harness {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	metrics := tally.NewTestScope("", nil)
	s.SetMetricsHandler(sdktally.NewMetricsHandler(metrics))
	env := s.NewTestWorkflowEnvironment()
	env.SetStartTime(start)
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: "rollout-test-1"})
	env.SetTestTimeout(30 * time.Second)
	env.RegisterWorkflowWithOptions(Workflow, workflow.RegisterOptions{Name: WorkflowName})
	env.RegisterWorkflowWithOptions(watch.Workflow, workflow.RegisterOptions{Name: watch.WorkflowName})
	h := &harness{t: t, env: env, fake: newFake(), script: script, sent: map[string]bool{},
		accepted: map[string]approval.GateView{}, rejected: map[string]string{}, metrics: metrics}
	h.fake.register(env)
	return h
}

// drive polls the status every 10 minutes of workflow time and lets the
// script decide open gates, like an approver watching Slack.
func (h *harness) drive() {
	var tick func()
	tick = func() {
		if h.env.IsWorkflowCompleted() {
			return
		}
		st := h.status()
		for _, g := range st.OpenGates {
			for _, d := range h.script(h, g) {
				key := g.ID + " " + d.Actor + " " + d.Choice
				if h.sent[key] {
					continue
				}
				h.sent[key] = true
				h.decide(d)
			}
		}
		h.env.RegisterDelayedCallback(tick, 10*time.Minute)
	}
	h.env.RegisterDelayedCallback(tick, 10*time.Minute)
}

func (h *harness) decide(d approval.DecisionInput) {
	key := d.GateID + " " + d.Actor + " " + d.Choice
	h.env.UpdateWorkflow(approval.UpdateDecide, key, &testsuite.TestUpdateCallback{
		OnAccept: func() {},
		OnReject: func(err error) { h.rejected[key] = err.Error() },
		OnComplete: func(v any, err error) {
			if err == nil {
				if gv, ok := v.(approval.GateView); ok {
					h.accepted[key] = gv
				}
			}
		},
	}, d)
}

// control sends a control update; a rejection lands in h.rejected under
// "name actor" (the test environment answers asynchronously).
func (h *harness) control(name string, in approval.ControlInput) {
	key := name + " " + in.Actor
	h.env.UpdateWorkflow(name, key, &testsuite.TestUpdateCallback{
		OnAccept:   func() {},
		OnReject:   func(err error) { h.rejected[key] = err.Error() },
		OnComplete: func(any, error) {},
	}, in)
}

func (h *harness) status() *Status {
	v, err := h.env.QueryWorkflow(QueryStatus)
	require.NoError(h.t, err)
	var st Status
	require.NoError(h.t, v.Get(&st))
	return &st
}

func (h *harness) run(in Input) (*Status, error) {
	return h.runArg(enabledNotSkipped(in))
}

// enabledNotSkipped lets a test ask for the perf phase or the watch the
// way its input configures them (enabled: true): the safeguard leaves
// Skip. The workflow itself only reads Skip.
func enabledNotSkipped(in Input) Input {
	if in.Perf != nil && in.Perf.Enabled {
		in.Skip = without(in.Skip, policy.SafeguardPerf)
	}
	if in.Monitor.Enabled {
		in.Skip = without(in.Skip, policy.SafeguardMonitor)
	}
	return in
}

// runArg starts the workflow with arg as its input: an Input, or raw JSON
// as someone pasted it into the UI.
func (h *harness) runArg(arg any) (*Status, error) {
	h.env.ExecuteWorkflow(WorkflowName, arg)
	require.True(h.t, h.env.IsWorkflowCompleted())
	var st Status
	err := h.env.GetWorkflowError()
	if err == nil {
		require.NoError(h.t, h.env.GetWorkflowResult(&st))
	} else {
		v, qerr := h.env.QueryWorkflow(QueryStatus)
		require.NoError(h.t, qerr)
		require.NoError(h.t, v.Get(&st))
	}
	// A stopped rollout closes failed, typed by its outcome, with the same
	// status in the failure's details as the query answers; the tests see
	// it through h.closedWith and read the state from the status.
	if want, stopped := stopErrType[st.State]; stopped {
		h.t.Helper()
		var ae *temporal.ApplicationError
		require.ErrorAs(h.t, err, &ae, "a %s rollout closes failed", st.State)
		require.Equal(h.t, want, ae.Type())
		require.True(h.t, ae.NonRetryable(), "the outcome is not retried")
		out, ok := OutcomeStatus(err)
		require.True(h.t, ok, "the failure carries the status")
		require.Equal(h.t, st.State, out.State)
		require.Equal(h.t, st.ReportPath, out.ReportPath, "the report was written before the run closed")
		h.closedWith, err = err, nil
	}
	return &st, err
}

// stopErrType is the error type each stopped state closes with.
var stopErrType = map[RolloutState]string{StateRolledBack: ErrTypeRolledBack, StateAborted: ErrTypeAborted}

// approveAll: alice and bob approve every gate (delete for remediation).
func approveAll(h *harness, g approval.Gate) []approval.DecisionInput {
	choice := approval.ChoiceApprove
	switch g.Kind {
	case notify.GateRemediation:
		choice = approval.ChoiceDelete
	case notify.GateApproval:
		choice = approval.ChoiceRetry
	}
	return []approval.DecisionInput{
		{GateID: g.ID, Choice: choice, Actor: alice, Reason: "looks right", Via: "test"},
		{GateID: g.ID, Choice: choice, Actor: bob, Reason: "agreed", Via: "test"},
	}
}

// phaseTime is the workflow time the environment entered phase.
func phaseTime(st *Status, env, phase string) time.Time {
	for _, e := range st.Timeline {
		if e.Environment == env && e.Message == "phase "+phase {
			return e.Time
		}
	}
	return time.Time{}
}

func stateIn(st *Status, env string) map[string]ConstraintState {
	m := map[string]ConstraintState{}
	for _, c := range st.Constraints {
		m[c.Name] = c.Environments[env].State
	}
	return m
}

func TestRolloutHappyPathWithRemediationPromotionAndWindow(t *testing.T) {
	h := newHarness(t, nil)
	h.fake.orphans["staging"] = map[string]int64{"fk_stages_instance": 3}
	h.fake.orphans["production"] = map[string]int64{}
	h.script = func(h *harness, g approval.Gate) []approval.DecisionInput {
		if g.Kind == notify.GatePromotion {
			// The requester tries first (four-eyes), mallory is not allowed,
			// alice approves twice (second vote refused), then bob.
			return []approval.DecisionInput{
				{GateID: g.ID, Choice: approval.ChoiceApprove, Actor: requester},
				{GateID: g.ID, Choice: approval.ChoiceApprove, Actor: mallory},
				{GateID: g.ID, Choice: approval.ChoiceApprove, Actor: alice, Reason: "staging is clean"},
				{GateID: g.ID, Choice: approval.ChoiceApprove, Actor: "ALICE@example.com"},
				{GateID: g.ID, Choice: approval.ChoiceApprove, Actor: bob, Reason: "ok"},
			}
		}
		return approveAll(h, g)[:1]
	}
	h.drive()
	st, err := h.run(testInput())
	require.NoError(t, err)

	assert.Equal(t, StateCompleted, st.State)
	for _, env := range []string{"staging", "production"} {
		for fk, s := range stateIn(st, env) {
			assert.Equal(t, CTested, s, "%s %s", env, fk)
		}
		assert.Equal(t, "valid", h.fake.constraints[env+"/fk_stages_instance"])
	}
	// Remediation: audit found 3 orphans, alice chose delete, re-audit clean.
	require.Len(t, st.Environments["staging"].Remediations, 1)
	assert.Equal(t, int64(3), st.Environments["staging"].Remediations[0].Affected)
	assert.Equal(t, "delete", st.Environments["staging"].Remediations[0].Mode)
	assert.Equal(t, 0, h.fake.count(ActRemediate+" production"))

	// Promotion policy.
	prom := "production/promotion/2"
	assert.Contains(t, h.rejected[prom+" "+requester+" approve"], "four-eyes")
	assert.Contains(t, h.rejected[prom+" "+mallory+" approve"], "not an allowed approver")
	assert.Contains(t, h.rejected[prom+" ALICE@example.com approve"], "already decided")
	assert.Equal(t, 1, h.accepted[prom+" "+alice+" approve"].Waiting, "first approval waits for a second")
	assert.Equal(t, approval.GateDecided, h.accepted[prom+" "+bob+" approve"].Status)

	// Production work waited for the 02:00 window; staging did not.
	prodBackup := phaseTime(st, "production", PhaseBackup)
	assert.True(t, !prodBackup.Before(time.Date(2026, 3, 3, 2, 0, 0, 0, time.UTC)), "production backup at %s, before the window", prodBackup)
	assert.True(t, phaseTime(st, "staging", PhaseBackup).Before(time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)))
	var sawNotice bool
	for _, ev := range h.fake.notifications {
		if ev.Phase == PhaseWindow && strings.Contains(ev.Text, "opens at") {
			sawNotice = true
		}
	}
	assert.True(t, sawNotice, "notification before the window opens")

	// Validation in priority order: CRITICAL first.
	var validated []string
	for _, r := range st.Environments["staging"].Validated {
		validated = append(validated, r.FK)
	}
	assert.Equal(t, []string{"fk_instances_workspace", "fk_stages_instance", "fk_vendor_workspace"}, validated)

	// Every decision recorded with actor, time, reason.
	require.NotEmpty(t, st.Decisions)
	for _, d := range st.Decisions {
		assert.NotEmpty(t, d.Actor)
		assert.False(t, d.Time.IsZero())
	}
	assert.Equal(t, MonitorSkipped, st.Monitor.Status)
	assert.Empty(t, st.OpenGates)
	assert.Contains(t, st.Markdown(), "completed")
}

func TestGateTimeoutAppliesDefault(t *testing.T) {
	h := newHarness(t, func(h *harness, g approval.Gate) []approval.DecisionInput { return nil })
	h.fake.orphans["staging"] = map[string]int64{}
	in := testInput()
	in.Approval.Gates["promotion/production"] = approval.GateRule{Approvers: []string{alice, bob}, MinApprovals: 2, Timeout: "4h", OnTimeout: approval.ChoiceReject}
	h.drive()
	st, err := h.run(in)
	require.NoError(t, err)
	assert.Equal(t, StateRejected, st.State)
	require.Len(t, st.Gates, 1)
	g := st.Gates[0]
	assert.Equal(t, approval.GateTimedOut, g.Status)
	require.NotNil(t, g.Decision)
	assert.Equal(t, "timeout", g.Decision.Actor)
	assert.Equal(t, approval.ChoiceReject, g.Decision.Action)
	assert.Equal(t, 4*time.Hour, g.Decision.Time.Sub(g.OpenedAt))
	assert.Zero(t, h.fake.count(ActApplyConstraint+" production"), "nothing applied in production after a rejected promotion")
}

// A default rule covers every kind of gate. Its on_timeout "approve" suits
// the promotion gate, but the remediation gate never offers it: there the
// timeout applies the conservative abort instead of slipping past.
func TestGateTimeoutFallsBackWhenDefaultNotOffered(t *testing.T) {
	h := newHarness(t, func(h *harness, g approval.Gate) []approval.DecisionInput { return nil })
	h.fake.orphans["staging"] = map[string]int64{"fk_stages_instance": 1}
	in := testInput()
	in.Approval.Default = approval.GateRule{Approvers: []string{alice, bob}, Timeout: "1h", OnTimeout: approval.ChoiceApprove}
	h.drive()
	st, err := h.run(in)
	require.NoError(t, err)
	assert.Equal(t, StateAborted, st.State)
	require.NotEmpty(t, st.Gates)
	g := st.Gates[0]
	assert.Equal(t, notify.GateRemediation, g.Kind)
	assert.Equal(t, approval.GateTimedOut, g.Status)
	require.NotNil(t, g.Decision)
	assert.Equal(t, approval.ChoiceAbort, g.Decision.Action)
	assert.Contains(t, g.Decision.Reason, `on_timeout "approve" is not offered by this gate, so the conservative "abort" applies`)
	assert.Zero(t, h.fake.count(ActRemediate+" staging"), "no orphan row touched by a timeout")
}

func TestOnTimeoutMustBeOfferedByTheGateKind(t *testing.T) {
	h := newHarness(t, nil)
	in := testInput()
	in.Approval.Gates["promotion/production"] = approval.GateRule{Timeout: "72h", OnTimeout: approval.ChoiceDelete}
	in.Approval.Gates["investigate"] = approval.GateRule{Timeout: "1h", OnTimeout: approval.ChoiceRollback}
	st, err := h.run(in)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `approval.gates[promotion/production].on_timeout "delete": a promotion gate offers approve, reject, abort`)
	assert.NotContains(t, err.Error(), "investigate", "rollback is an investigate choice")
	assert.Equal(t, StateFailed, st.State)
	assert.Empty(t, h.fake.calls)
}

// A rollout started before the on_timeout check existed, with a rule the
// check now refuses, keeps running when its history is replayed: the check
// applies only to histories that record it (GetVersion), and a timeout at
// such a gate applies the conservative choice instead.
func TestOnTimeoutCheckSparesRolloutsStartedBeforeIt(t *testing.T) {
	h := newHarness(t, nil)
	h.env.OnGetVersion(offeredTimeoutsVersion, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	in := testInput()
	in.DryRun = true // the input's acceptance is what is under test
	in.Approval.Gates["promotion/production"] = approval.GateRule{Approvers: []string{alice, bob}, OnTimeout: approval.ChoiceDelete}
	st, err := h.run(in)
	require.NoError(t, err)
	assert.Equal(t, StateDryRunDone, st.State)

	t.Run("a new rollout with the same rule is refused", func(t *testing.T) {
		assert.ErrorContains(t, ValidateInput(in), `approval.gates[promotion/production].on_timeout "delete": a promotion gate offers`)
	})
}

func TestValidateOrphansReopenRemediationGate(t *testing.T) {
	h := newHarness(t, approveAll)
	h.fake.orphans["staging"] = map[string]int64{}
	h.fake.orphans["production"] = map[string]int64{}
	h.fake.validateOrphans["staging/fk_vendor_workspace"] = 1
	in := testInput()
	in.Environments = in.Environments[:1]
	h.drive()
	st, err := h.run(in)
	require.NoError(t, err)
	assert.Equal(t, StateCompleted, st.State)
	var remGates []approval.Gate
	for _, g := range st.Gates {
		if g.Kind == notify.GateRemediation {
			remGates = append(remGates, g)
		}
	}
	require.Len(t, remGates, 1, "VALIDATE's 23503 reopened the remediation gate")
	assert.Contains(t, remGates[0].Summary, "fk_vendor_workspace: 2 orphans")
	assert.Equal(t, 4, h.fake.count(ActValidateConstraint+" staging"), "three validations plus the retry after remediation")
	assert.Equal(t, CTested, stateIn(st, "staging")["fk_vendor_workspace"])
}

func TestAcceptAsDebtLeavesConstraintNotValid(t *testing.T) {
	h := newHarness(t, func(h *harness, g approval.Gate) []approval.DecisionInput {
		if g.Kind == notify.GateRemediation {
			return []approval.DecisionInput{{GateID: g.ID, Choice: approval.ChoiceAcceptDebt, Actor: alice, Reason: "legacy rows, ticket DATA-12", Constraints: []string{"fk_vendor_workspace"}}}
		}
		return approveAll(h, g)
	})
	h.fake.orphans["staging"] = map[string]int64{"fk_vendor_workspace": 7}
	in := testInput()
	in.Environments = in.Environments[:1]
	h.drive()
	st, err := h.run(in)
	require.NoError(t, err)
	assert.Equal(t, StateCompletedWithDebt, st.State)
	s := stateIn(st, "staging")
	assert.Equal(t, CDebt, s["fk_vendor_workspace"])
	assert.Equal(t, CTested, s["fk_instances_workspace"])
	assert.Equal(t, "not_valid", h.fake.constraints["staging/fk_vendor_workspace"])
	assert.Zero(t, h.fake.count(ActRemediate+" staging"))
}

func TestAbortWithRollbackAtRemediationGate(t *testing.T) {
	h := newHarness(t, func(h *harness, g approval.Gate) []approval.DecisionInput { return nil })
	h.fake.orphans["staging"] = map[string]int64{"fk_stages_instance": 1}
	h.env.RegisterDelayedCallback(func() {
		// The requester may abort their own rollout; an unknown gate is refused.
		h.decide(approval.DecisionInput{GateID: "staging/remediation/9", Choice: approval.ChoiceDelete, Actor: alice})
		h.control(approval.UpdateRollback, approval.ControlInput{Actor: alice})
		h.control(approval.UpdateAbort, approval.ControlInput{Actor: requester, Reason: "wrong plan", Rollback: true})
	}, time.Hour)
	st, err := h.run(testInput())
	require.NoError(t, err)
	assert.Equal(t, "a rollback needs a reason", h.rejected[approval.UpdateRollback+" "+alice])
	assert.NotContains(t, h.rejected, approval.UpdateAbort+" "+requester)
	assert.Contains(t, h.rejected["staging/remediation/9 "+alice+" delete"], "unknown gate")
	assert.Equal(t, StateRolledBack, st.State)
	for fk, s := range stateIn(st, "staging") {
		assert.Equal(t, CRolledBack, s, fk)
	}
	for fk, s := range stateIn(st, "production") {
		assert.Equal(t, CPlanned, s, fk)
	}
	assert.Empty(t, h.fake.constraints)
	assert.Equal(t, approval.GateCancelled, st.Gates[0].Status)
	assert.Zero(t, h.fake.count(ActRollback+" production"), "production was never touched")
}

func TestManualRollbackDuringMonitor(t *testing.T) {
	h := newHarness(t, approveAll)
	h.fake.orphans["staging"] = map[string]int64{}
	h.fake.orphans["production"] = map[string]int64{}
	in := testInput()
	// No watcher here: its gate stays open past the complaint.
	in.Monitor = MonitorInput{Enabled: true, Duration: "24h", InvestigateTimeout: "48h"}
	h.drive()
	// Day 2 at 10:00: production validated at 02:00, monitor running.
	h.env.RegisterDelayedCallback(func() {
		st := h.status()
		require.Equal(t, PhaseMonitor, st.Phase)
		h.control(approval.UpdateRollback, approval.ControlInput{Actor: bob, Reason: "critical user complaints: checkout fails"})
	}, 24*time.Hour)
	st, err := h.run(in)
	require.NoError(t, err)
	assert.Equal(t, StateRolledBack, st.State)
	assert.Empty(t, h.fake.constraints, "constraints dropped in both environments")
	// Reverse order: production first.
	var order []string
	for _, c := range h.fake.calls {
		if strings.HasPrefix(c, ActRollback) {
			order = append(order, c)
		}
	}
	assert.Equal(t, []string{ActRollback + " production", ActRollback + " staging"}, order)
	var rb *notify.Event
	for i := range h.fake.notifications {
		if h.fake.notifications[i].Kind == notify.KindRolledBack {
			rb = &h.fake.notifications[i]
		}
	}
	require.NotNil(t, rb)
	assert.Equal(t, bob, rb.Rollback.Actor)
	assert.Len(t, rb.Rollback.Constraints, 6)
}

func TestPauseHoldsBeforeNextStep(t *testing.T) {
	h := newHarness(t, approveAll)
	h.fake.orphans["staging"] = map[string]int64{"fk_stages_instance": 1}
	in := testInput()
	in.Environments = in.Environments[:1]
	// Pause while the remediation gate is open, decide it, resume 5h later.
	h.env.RegisterDelayedCallback(func() {
		h.control(approval.UpdatePause, approval.ControlInput{Actor: alice, Reason: "incident"})
		h.control(approval.UpdatePause, approval.ControlInput{Actor: bob})
		h.decide(approval.DecisionInput{GateID: "staging/remediation/1", Choice: approval.ChoiceDelete, Actor: bob})
	}, 5*time.Minute)
	h.env.RegisterDelayedCallback(func() {
		st := h.status()
		assert.Equal(t, StatePaused, st.State)
		assert.Zero(t, h.fake.count(ActRemediate+" staging"), "nothing runs while paused")
		h.control(approval.UpdateResume, approval.ControlInput{Actor: alice})
	}, 5*time.Hour)
	st, err := h.run(in)
	require.NoError(t, err)
	assert.NotContains(t, h.rejected, approval.UpdatePause+" "+alice)
	assert.Contains(t, h.rejected[approval.UpdatePause+" "+bob], "already paused")
	assert.NotContains(t, h.rejected, approval.UpdateResume+" "+alice)
	assert.Equal(t, StateCompleted, st.State)
	assert.Equal(t, 1, h.fake.count(ActRemediate+" staging"))
	assert.True(t, !phaseTime(st, "staging", PhaseValidate).Before(start.Add(5*time.Hour)), "validation ran after resume")
}

func TestSignalsAreValidatedAndRefusalsRecorded(t *testing.T) {
	h := newHarness(t, nil)
	h.fake.orphans["staging"] = map[string]int64{"fk_stages_instance": 1}
	in := testInput()
	in.Environments = in.Environments[:1]
	h.script = func(h *harness, g approval.Gate) []approval.DecisionInput { return nil }
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflow(approval.SignalDecide, approval.DecisionInput{GateID: "staging/remediation/1", Choice: approval.ChoiceDelete, Actor: requester})
		h.env.SignalWorkflow(approval.SignalDecide, approval.DecisionInput{GateID: "staging/remediation/1", Choice: "drop-table", Actor: alice})
	}, time.Hour)
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflow(approval.SignalDecide, approval.DecisionInput{GateID: "staging/remediation/1", Choice: approval.ChoiceDelete, Actor: alice})
	}, 2*time.Hour)
	st, err := h.run(in)
	require.NoError(t, err)
	assert.Equal(t, StateCompleted, st.State)
	require.Len(t, st.Refusals, 2)
	assert.Contains(t, st.Refusals[0].Reason, "four-eyes")
	assert.Contains(t, st.Refusals[1].Reason, "not offered")
	require.NotNil(t, st.Gates[0].Decision)
	assert.Equal(t, alice, st.Gates[0].Decision.Actor)
	assert.Equal(t, "signal", st.Gates[0].Decision.Via)
}

func TestHookFailureAsksAndRetries(t *testing.T) {
	h := newHarness(t, approveAll)
	h.fake.orphans["staging"] = map[string]int64{}
	h.fake.orphans["production"] = map[string]int64{}
	h.fake.hookFailures = 1
	st, err := func() (*Status, error) { h.drive(); return h.run(testInput()) }()
	require.NoError(t, err)
	assert.Equal(t, StateCompleted, st.State)
	// One activity per hook; the retry resumes at the failed hook.
	assert.Equal(t, []string{"production/prisma-generate", "production/restart-api", "production/restart-api"}, slices.DeleteFunc(slices.Clone(h.fake.hookRuns), func(r string) bool { return strings.HasPrefix(r, "staging/") }),
		"prisma-generate succeeded before the failure: it never runs again")
	assert.Equal(t, 4, h.fake.count(ActRunDeployHooks+" production"), "prisma-generate, restart-api (failed), restart-api, none left")
	hooks := st.Environments["production"].Hooks
	require.Len(t, hooks, 2)
	assert.True(t, hooks[0].OK && hooks[1].OK, "the report lists both hooks as succeeded")
	var hookGate *approval.Gate
	for i := range st.Gates {
		if strings.Contains(st.Gates[i].Title, "deploy hook failed") {
			hookGate = &st.Gates[i]
		}
	}
	require.NotNil(t, hookGate)
	assert.Equal(t, approval.ChoiceRetry, hookGate.Decision.Action)
}

func TestDryRunChangesNothing(t *testing.T) {
	h := newHarness(t, approveAll)
	h.fake.orphans["staging"] = map[string]int64{"fk_stages_instance": 4}
	h.fake.orphans["production"] = map[string]int64{}
	in := testInput()
	in.DryRun = true
	st, err := h.run(in)
	require.NoError(t, err)
	assert.Equal(t, StateDryRunDone, st.State)
	assert.Empty(t, h.fake.constraints)
	assert.Zero(t, h.fake.count(ActBackup+" staging"))
	assert.Equal(t, int64(4), st.Environments["staging"].FirstAudit[0].Orphans+st.Environments["staging"].FirstAudit[1].Orphans+st.Environments["staging"].FirstAudit[2].Orphans)
}

func TestBadInputFailsWithReason(t *testing.T) {
	h := newHarness(t, nil)
	in := testInput()
	in.Requester = ""
	in.Environments[1].MaintenanceWindow.Start = "25:00"
	in.Approval.Gates["promotoin"] = approval.GateRule{}
	st, err := h.run(in)
	require.Error(t, err)
	for _, want := range []string{"requester is required", "25:00", "promotoin"} {
		assert.Contains(t, err.Error(), want)
	}
	assert.Equal(t, StateFailed, st.State)
	assert.Empty(t, h.fake.calls)
}

// TestMisspelledInputKeysAreRefused: keys no field takes (pasted into the
// UI, sent by a raw client) fail the rollout before anything runs, naming
// each with what it probably meant, instead of silently meaning the
// default (a "dryrun" that is not a dry run).
func TestMisspelledInputKeysAreRefused(t *testing.T) {
	h := newHarness(t, nil)
	b, err := json.Marshal(testInput())
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(b, &doc))
	doc["dryrun"] = true
	doc["aproval"] = map[string]any{"default": map[string]any{}}
	doc["environments"].([]any)[1].(map[string]any)["maintenance_window"].(map[string]any)["strat"] = "03:00"
	raw, err := json.Marshal(doc)
	require.NoError(t, err)

	st, err := h.runArg(json.RawMessage(raw))
	require.Error(t, err)
	for _, want := range []string{`aproval (did you mean "approval"?)`, `dryrun (did you mean "dry_run"?)`,
		`environments[1].maintenance_window.strat (did you mean "start"?)`} {
		assert.Contains(t, err.Error(), want)
	}
	assert.Equal(t, StateFailed, st.State)
	assert.Empty(t, h.fake.calls, "nothing ran, not even the policy check")

	t.Run("the same input without the misspellings runs", func(t *testing.T) {
		var in Input
		require.NoError(t, json.Unmarshal(b, &in))
		assert.Empty(t, in.UnknownKeys())
		assert.NoError(t, ValidateInput(in))
	})
}

func TestPlanErrorFailsWithoutRetry(t *testing.T) {
	h := newHarness(t, nil)
	in := testInput()
	in.Plan = "ALTER TABLE nonsense"
	_, err := h.run(in)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no foreign_keys")
}

// Validation that outlasts the window continues in the next one: three
// constraints of 90 minutes each in a 2-hour window.
func TestValidationContinuesInNextWindow(t *testing.T) {
	h := newHarness(t, approveAll)
	h.fake.orphans["production"] = map[string]int64{}
	h.env.OnActivity(ActValidateConstraint, mock.Anything, mock.Anything).
		Return(func(ctx context.Context, in ConstraintInput) (ConstraintResult, error) {
			return ConstraintResult{FK: in.FK.Name, Action: "validated"}, nil
		}).After(90 * time.Minute)
	in := testInput()
	in.Environments = in.Environments[1:]
	st, err := h.run(in)
	require.NoError(t, err)
	assert.Equal(t, StateCompleted, st.State)
	var waits []time.Time
	var validated []time.Time
	for _, e := range st.Timeline {
		if e.Environment == "production" && strings.HasPrefix(e.Message, "maintenance window open until") {
			waits = append(waits, e.Time)
		}
		if e.Environment == "production" && e.Message == "phase "+PhaseBehaviour {
			validated = append(validated, e.Time)
		}
	}
	day2 := time.Date(2026, 3, 3, 2, 0, 0, 0, time.UTC)
	require.Len(t, waits, 2, "the window opened twice: %v", waits)
	assert.Equal(t, day2, waits[0])
	assert.Equal(t, day2.Add(24*time.Hour), waits[1], "the third constraint waited for the next window")
	require.Len(t, validated, 1)
	assert.Equal(t, day2.Add(24*time.Hour+90*time.Minute), validated[0])
	for fk, s := range stateIn(st, "production") {
		assert.Equal(t, CTested, s, fk)
	}
}

// counter sums a counter the workflow emitted with the given tags (a subset).
func (h *harness) counter(name string, tags map[string]string) int64 {
	var n int64
	for _, c := range h.metrics.Snapshot().Counters() {
		if c.Name() != name {
			continue
		}
		match := true
		for k, v := range tags {
			if c.Tags()[k] != v {
				match = false
			}
		}
		if match {
			n += c.Value()
		}
	}
	return n
}

// TestRolloutMetrics: an SRE's dashboard counts gates, decisions, constraint
// transitions, rollbacks by trigger and rollouts by final state.
func TestRolloutMetrics(t *testing.T) {
	h := newHarness(t, func(h *harness, g approval.Gate) []approval.DecisionInput { return nil })
	h.fake.orphans["staging"] = map[string]int64{"fk_stages_instance": 1}
	h.env.RegisterDelayedCallback(func() {
		h.control(approval.UpdateAbort, approval.ControlInput{Actor: requester, Reason: "wrong plan", Rollback: true, Via: "cli"})
	}, time.Hour)
	st, err := h.run(testInput())
	require.NoError(t, err)
	require.Equal(t, StateRolledBack, st.State)
	n := int64(len(testPlan().ForeignKeys))

	assert.Equal(t, int64(1), h.counter(MetricGatesOpened, map[string]string{"kind": "remediation", "environment": "staging"}))
	assert.Zero(t, h.counter(MetricGateDecisions, nil), "the gate was cancelled by the abort, not decided")
	assert.Equal(t, n, h.counter(MetricConstraintTransitions, map[string]string{"environment": "staging", "state": string(CApplied)}))
	assert.Equal(t, n, h.counter(MetricConstraintTransitions, map[string]string{"environment": "staging", "state": string(CRolledBack)}))
	assert.Zero(t, h.counter(MetricConstraintTransitions, map[string]string{"environment": "production"}))
	assert.Equal(t, int64(1), h.counter(MetricRollbacks, map[string]string{"trigger": approval.UpdateAbort}))
	assert.Equal(t, int64(1), h.counter(MetricRolloutsFinished, map[string]string{"state": string(StateRolledBack)}))
	assert.Equal(t, int64(1), h.counter(MetricRolloutsFinished, nil), "counted once")
}

// TestGateDecisionMetrics: decisions are counted by kind, choice and channel,
// and the time a gate waited for people is recorded.
func TestGateDecisionMetrics(t *testing.T) {
	h := newHarness(t, approveAll)
	h.fake.orphans["staging"] = map[string]int64{}
	h.fake.orphans["production"] = map[string]int64{}
	h.drive()
	st, err := h.run(testInput())
	require.NoError(t, err)
	require.True(t, st.State == StateCompleted || st.State == StateCompletedWithDebt, st.State)
	assert.Equal(t, int64(1), h.counter(MetricGatesOpened, map[string]string{"kind": "promotion"}))
	assert.Equal(t, int64(1), h.counter(MetricGateDecisions, map[string]string{"kind": "promotion", "choice": approval.ChoiceApprove}))
	var waited int
	for _, tm := range h.metrics.Snapshot().Timers() {
		if tm.Name() == MetricGateWait && tm.Tags()["kind"] == "promotion" {
			waited += len(tm.Values())
			for _, v := range tm.Values() {
				assert.Positive(t, v, "the promotion gate waited for the approvers")
			}
		}
	}
	assert.Equal(t, 1, waited)
	assert.Equal(t, int64(1), h.counter(MetricRolloutsFinished, map[string]string{"state": string(st.State)}))
	assert.Zero(t, h.counter(MetricRollbacks, nil))
}

// without is skip minus one safeguard.
func without(skip []string, safeguard string) []string {
	return slices.DeleteFunc(slices.Clone(skip), func(s string) bool { return s == safeguard })
}
