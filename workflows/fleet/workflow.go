package fleet

// The fleet rollout: one plan over many databases that share a schema
// (tenants, shards, regions). FKFleetRollout starts one FKRollout child per
// target database, in waves: a canary wave, then batches. A gate between
// waves asks a human to go on; a failure budget stops the fleet. See
// docs/FLEET.md.

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/fkrollout/fkrollout/internal/identity"
	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/rollout"
	"github.com/fkrollout/fkrollout/workflows/steps"
)

// withDefaults fills the zero sizes.
func (in Input) withDefaults() Input {
	if in.Canary == 0 {
		in.Canary = DefaultCanary
	}
	if in.BatchSize == 0 {
		in.BatchSize = DefaultBatch
	}
	if in.FailureBudget == 0 {
		in.FailureBudget = DefaultFailureBudget
	}
	return in
}

// waveRule is the policy of the wave gates.
func (in Input) waveRule() approval.GateRule {
	return in.Approval.Rule(notify.GatePromotion, GateEnvironment)
}

// unknownKeysVersion marks histories in which keys of the input that no
// field takes fail the fleet before anything runs.
const unknownKeysVersion = "input-unknown-keys"

// waveChoices are what a wave gate offers.
func waveChoices() []string {
	return []string{approval.ChoiceApprove, approval.ChoiceReject, approval.ChoiceAbort}
}

// Validate names every problem of the input: the fleet's own fields and
// whatever FKRollout would refuse in a child's input (plan, requester,
// approval policy, window, monitor, perf). The workflow runs it before it
// starts any child; the CLI runs it before it starts the workflow.
func (in Input) Validate() error {
	in = in.withDefaults()
	var errs []string
	if len(in.Targets) == 0 {
		errs = append(errs, `targets: name at least one database (environment names from the worker configuration), e.g. ["tenant_a","tenant_b"]`)
	}
	if len(in.Targets) > MaxTargets {
		errs = append(errs, fmt.Sprintf("targets: %d targets, at most %d per fleet (split it into several fleets)", len(in.Targets), MaxTargets))
	}
	seen := map[string]bool{}
	for i, t := range in.Targets {
		switch {
		case strings.TrimSpace(t) == "":
			errs = append(errs, fmt.Sprintf("targets[%d] is empty", i))
			continue
		case strings.ContainsAny(t, "/ \t\n"):
			errs = append(errs, fmt.Sprintf("target %q: a name has no '/' or spaces (it names an environment of the worker configuration)", t))
		}
		k := strings.ToLower(t)
		if seen[k] {
			errs = append(errs, fmt.Sprintf("target %q is listed twice", t))
		}
		seen[k] = true
	}
	if in.Canary < 0 {
		errs = append(errs, fmt.Sprintf("canary %d: want 1 or more (0: default %d)", in.Canary, DefaultCanary))
	} else if len(in.Targets) > 0 && in.Canary > len(in.Targets) {
		errs = append(errs, fmt.Sprintf("canary %d is more than the %d targets", in.Canary, len(in.Targets)))
	}
	if in.BatchSize < 0 {
		errs = append(errs, fmt.Sprintf("batch_size %d: want 1 or more (0: default %d)", in.BatchSize, DefaultBatch))
	}
	if in.FailureBudget < 0 {
		errs = append(errs, fmt.Sprintf("failure_budget %d: want 1 or more (0: default %d)", in.FailureBudget, DefaultFailureBudget))
	}
	if r := in.waveRule(); !slices.Contains(waveChoices(), r.OnTimeout) {
		errs = append(errs, fmt.Sprintf("wave gate on_timeout %q: a wave gate offers %s", r.OnTimeout, strings.Join(waveChoices(), ", ")))
	}
	if in.Perf != nil && in.Perf.Enabled && in.Perf.Environment != "" && !slices.Contains(in.Targets, in.Perf.Environment) {
		errs = append(errs, fmt.Sprintf("perf.environment %q is not one of the targets", in.Perf.Environment))
	}
	// What each child would refuse, checked once on a representative child.
	probe := "target"
	if len(in.Targets) > 0 && strings.TrimSpace(in.Targets[0]) != "" {
		probe = in.Targets[0]
	}
	child := in.childInput(probe, true, false)
	if child.Perf != nil {
		child.Perf.Environment = ""
	}
	if err := rollout.ValidateInput(child); err != nil {
		errs = append(errs, strings.TrimPrefix(err.Error(), "invalid rollout input: "))
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid fleet input: %s", strings.Join(errs, "; "))
	}
	return nil
}

// PolicyInput is the fleet as the worker's policy sees it: every target
// is an environment whose policy must exist (the CLI's lint checks it too).
func (in Input) PolicyInput() rollout.Input {
	envs := make([]rollout.EnvironmentInput, 0, len(in.Targets))
	for _, t := range in.Targets {
		envs = append(envs, rollout.EnvironmentInput{Name: t})
	}
	return rollout.Input{Plan: in.Plan, Requester: in.Requester, Environments: envs, Approval: in.Approval,
		Perf: in.Perf, DryRun: in.DryRun, RequesterProof: in.RequesterProof}
}

// SafeguardInput is the fleet as the worker's policy checks it at start
// with the safeguards: every target an environment with the fleet's
// window, the skip and the watch, through the rollout's safe defaults.
func (in Input) SafeguardInput() rollout.Input {
	p := in.PolicyInput()
	p.Skip, p.Monitor = slices.Clone(in.Skip), in.Monitor
	if in.MaintenanceWindow != nil {
		for i := range p.Environments {
			w := *in.MaintenanceWindow
			p.Environments[i].MaintenanceWindow = &w
		}
	}
	return rollout.WithSafeDefaults(p)
}

// PolicyRequest is what the fleet asks the worker's policy at start; the
// CLI's lint asks the same. safeguards: the fleet's children run them.
func (in Input) PolicyRequest(workflowID string, safeguards bool) rollout.PolicyRequest {
	req := rollout.PolicyRequest{WorkflowID: workflowID, Input: in.PolicyInput(), GateEnvironments: []string{GateEnvironment}}
	if safeguards {
		req.Input, req.Safeguards, req.FleetTargets = in.SafeguardInput(), true, true
	}
	return req
}

// safeguardsVersion marks fleets whose children run the safeguards unless
// the fleet's skip turns them off (allowed by policy.allow_skip, checked
// at the fleet's start), each child running its own perf phase; fleets
// before it ran perf only where perf.environment (or the canary) said.
const safeguardsVersion = "fleetsafe-fleet-safeguards"

// childInput is one target's FKRollout input: a single environment.
// safeguards: every child gets the perf section for its own target (the
// child's safe defaults run it unless skipped); before, only the canary
// or perf.environment did.
func (in Input) childInput(target string, canary, safeguards bool) rollout.Input {
	child := rollout.Input{
		Plan:         in.Plan,
		PlanFormat:   in.PlanFormat,
		Requester:    in.Requester,
		Environments: []rollout.EnvironmentInput{{Name: target}},
		Approval:     in.Approval,
		Thresholds:   in.Thresholds,
		Monitor:      in.Monitor,
		DryRun:       in.DryRun,
		Skip:         slices.Clone(in.Skip),
	}
	if in.RequesterProof != nil {
		child.RequesterProof = in.RequesterProof
		child.FleetScope = &rollout.FleetScope{Targets: in.Targets}
	}
	if in.MaintenanceWindow != nil {
		w := *in.MaintenanceWindow
		child.Environments[0].MaintenanceWindow = &w
	}
	if p := in.Perf; safeguards && !in.DryRun {
		var pc rollout.PerfInput
		if p != nil {
			pc = *p
		}
		pc.Environment = target
		child.Perf = &pc
	} else if p != nil && p.Enabled && (p.Environment == target || (p.Environment == "" && canary)) {
		pc := *p
		pc.Environment = target
		child.Perf = &pc
	}
	return child
}

// fleet is the workflow's state; handlers and the story share it on the
// SDK's single workflow thread.
type fleet struct {
	approval.Board
	in Input
	id string
	st Status
	// stop is a pending abort (update, signal or the gate's abort choice).
	stop     *approval.Decision
	thread   notify.MessageRef
	finished bool
	// runs counts the runs this fleet continued as new from (carry.go).
	runs int
	// safeguards: the children run the safeguards unless the fleet's skip
	// turns them off (safeguardsVersion).
	safeguards bool
	pub        struct {
		phase     string
		state     rollout.RolloutState
		requester bool
	}
}

// Workflow is the FKFleetRollout workflow. The fleet id is the workflow id.
// carried is nil when a fleet starts; a run that continued as new gets the
// previous run's state in it (carry.go).
func Workflow(ctx workflow.Context, raw Input, carried *Carried) (*Status, error) {
	in := raw.withDefaults()
	f := &fleet{in: in, id: workflow.GetInfo(ctx).WorkflowExecution.ID}
	f.Board = approval.Board{WorkflowID: f.id, Requester: in.Requester, Subject: "fleet rollout",
		Log: func(ctx workflow.Context, _, _, msg string) { f.event(ctx, f.st.Phase, msg) }}
	now := workflow.Now(ctx)
	f.st = Status{FleetID: f.id, Requester: in.Requester, DryRun: in.DryRun, State: rollout.StateRunning, Phase: rollout.PhaseStarting,
		FailureBudget: in.FailureBudget, StartedAt: now, Waves: []Wave{}, Targets: []Target{}}
	if err := f.setupHandlers(ctx); err != nil {
		return nil, err
	}
	err := validateRecorded(ctx, raw)
	// Histories recorded before unknown keys were refused replay as they ran.
	if len(raw.UnknownKeys()) > 0 && workflow.GetVersion(ctx, unknownKeysVersion, workflow.DefaultVersion, 1) == 1 {
		err = errors.Join(errors.New(rollout.UnknownKeysProblem(raw.UnknownKeys())), err)
	}
	if err != nil {
		f.finished = true
		f.st.State, f.st.Error = rollout.StateFailed, err.Error()
		f.event(ctx, rollout.PhaseStarting, err.Error())
		f.publish(ctx)
		return f.snapshot(), temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInput, nil)
	}
	if carried != nil {
		if err := f.restore(ctx, carried); err != nil {
			return nil, err
		}
		return f.finishRun(ctx, f.run(ctx, carried.NextWave))
	}
	if !in.DryRun && workflow.GetVersion(ctx, safeguardsVersion, workflow.DefaultVersion, 1) == 1 {
		f.safeguards = true
		f.st.SafeguardsOff = rollout.SafeguardsOff(in.SafeguardInput())
	}
	pol, err := rollout.ResolvePolicyRequest(ctx, in.PolicyRequest(f.id, f.safeguards))
	f.Policy = pol
	if err != nil {
		f.finished = true
		f.st.State, f.st.Error = rollout.StateFailed, err.Error()
		f.event(ctx, rollout.PhaseStarting, err.Error())
		f.publish(ctx)
		return f.snapshot(), temporal.NewNonRetryableApplicationError(err.Error(), rollout.ErrTypePolicy, nil)
	}
	for i, wave := range Waves(in.Targets, in.Canary, in.BatchSize) {
		f.st.Waves = append(f.st.Waves, Wave{Number: i + 1, Canary: i == 0, Targets: wave, State: rollout.StatePending})
		for _, t := range wave {
			f.st.Targets = append(f.st.Targets, Target{Name: t, Wave: i + 1, ChildID: f.childID(t), State: rollout.StatePending})
		}
	}
	return f.finishRun(ctx, f.run(ctx, 0))
}

// finishRun ends a run: the fleet's end, or its continue-as-new.
func (f *fleet) finishRun(ctx workflow.Context, err error) (*Status, error) {
	if isContinue(err) {
		return nil, err
	}
	f.finished = true
	for i := range f.st.Waves {
		if f.st.Waves[i].State == rollout.StatePending {
			f.st.Waves[i].State = rollout.StateSkipped
		}
	}
	for i := range f.st.Targets {
		if f.st.Targets[i].State == rollout.StatePending {
			f.st.Targets[i].State = rollout.StateSkipped
		}
	}
	f.st.Phase = rollout.PhaseDone
	f.publish(ctx)
	if err != nil {
		f.st.State, f.st.Error = rollout.StateFailed, err.Error()
		f.event(ctx, rollout.PhaseDone, "fleet failed: "+err.Error())
		f.publish(ctx)
		f.notify(ctx, notify.Event{Kind: notify.KindFailed, Phase: rollout.PhaseDone, Text: err.Error()})
		f.publishReport(ctx)
		f.publish(ctx)
		return f.snapshot(), err
	}
	f.publishReport(ctx)
	f.publish(ctx)
	_ = workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) })
	if f.st.State == rollout.StateAborted && workflow.GetVersion(ctx, stopClosesFailedVersion, workflow.DefaultVersion, 1) == 1 {
		// An aborted fleet closes failed (a cancelled one, cancelled), so
		// Temporal's lists and alerts do not count it a success; the status
		// travels in the details.
		if ctx.Err() != nil {
			return f.snapshot(), temporal.NewCanceledError(*f.snapshot())
		}
		msg := "fleet aborted"
		if f.stop != nil {
			msg = fmt.Sprintf("fleet aborted by %s (%s)", f.stop.Actor, approval.OrNoReason(f.stop.Reason))
		}
		return f.snapshot(), temporal.NewNonRetryableApplicationError(msg, rollout.ErrTypeAborted, nil, *f.snapshot())
	}
	return f.snapshot(), nil
}

// stopClosesFailedVersion: an aborted fleet closes as a failed workflow
// (Aborted), a cancelled one as cancelled; histories before it completed.
const stopClosesFailedVersion = "durable-fleet-stop-closes-failed"

// validateVersion: the input check's verdict is recorded in the history
// (a side effect), so a later change to Validate cannot change how a
// running fleet replays. Histories before it ran Validate on replay.
const validateVersion = "durable-fleet-validate-recorded"

// validateRecorded runs raw.Validate once and records its verdict.
func validateRecorded(ctx workflow.Context, raw Input) error {
	if workflow.GetVersion(ctx, validateVersion, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return raw.Validate()
	}
	var problem string
	enc := workflow.SideEffect(ctx, func(workflow.Context) any {
		if err := raw.Validate(); err != nil {
			return err.Error()
		}
		return ""
	})
	if err := enc.Get(&problem); err != nil {
		return fmt.Errorf("read the recorded input check: %w", err)
	}
	if problem != "" {
		return errors.New(problem)
	}
	return nil
}

func (f *fleet) childID(target string) string { return f.id + "/" + target }

// story: parse the plan once, then wave, gate, wave, ... until done,
// stopped or out of budget. A run continued as new starts at wave start.
func (f *fleet) run(ctx workflow.Context, start int) error {
	if start > 0 {
		return f.waves(ctx, start)
	}
	f.publish(ctx)
	f.st.Phase = rollout.PhaseParse
	var parsed rollout.ParsePlanResult
	actx := workflow.WithActivityOptions(ctx, steps.WithSummary(steps.Short(), "parse and lint the plan once for the fleet"))
	if err := workflow.ExecuteActivity(actx, rollout.ActParsePlan, rollout.ParsePlanInput{Text: f.in.Plan, Format: f.in.PlanFormat}).Get(actx, &parsed); err != nil {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("plan: %v", steps.RootCause(err)), steps.ErrTypePlan, err)
	}
	f.st.PlanName, f.st.ConstraintCount = parsed.Plan.Name, len(parsed.Plan.ForeignKeys)
	r := f.notify(ctx, notify.Event{Kind: notify.KindStarted,
		Text: fmt.Sprintf("fleet rollout of %d constraints over %d databases in %d waves started by %s", f.st.ConstraintCount, len(f.in.Targets), len(f.st.Waves), f.in.Requester),
		Start: &notify.StartInfo{PlanSummary: rollout.PlanSummary(parsed.Plan), Constraints: f.st.ConstraintCount, Environments: slices.Clone(f.in.Targets),
			Requester: f.in.Requester, DryRun: f.in.DryRun}})
	f.thread = r.Ref
	name := f.st.PlanName
	if name == "" {
		name = "(unnamed)"
	}
	f.event(ctx, rollout.PhaseParse, fmt.Sprintf("plan %s: %d constraints; %d targets in %d waves (canary %d, batches of %d), failure budget %d",
		name, f.st.ConstraintCount, len(f.in.Targets), len(f.st.Waves), f.in.Canary, f.in.BatchSize, f.in.FailureBudget))
	f.publish(ctx)
	return f.waves(ctx, 0)
}

// waves runs the waves from start on, with the gates between them.
func (f *fleet) waves(ctx workflow.Context, start int) error {
	for i := start; i < len(f.st.Waves); i++ {
		if i > 0 {
			if f.budgetSpent() {
				break
			}
			if f.stop != nil {
				break
			}
			// A large fleet hands over to a new run between waves.
			if i > start && f.shouldContinue(ctx) {
				return f.continueAsNew(ctx, i)
			}
			if !f.in.DryRun {
				d, err := f.waveGate(ctx, i)
				if err != nil {
					return err
				}
				if d.Action != approval.ChoiceApprove {
					if f.stop == nil {
						f.stop = &d
					}
					break
				}
			}
			if f.stop != nil {
				break
			}
		}
		f.runWave(ctx, i)
	}
	return f.finish(ctx)
}

func (f *fleet) budgetSpent() bool { return f.st.Failed >= f.in.FailureBudget }

// finish sets the final state and notifies.
func (f *fleet) finish(ctx workflow.Context) error {
	skipped := 0
	for _, t := range f.st.Targets {
		if t.State == rollout.StatePending {
			skipped++
		}
	}
	var text string
	state := rollout.StateCompleted
	switch {
	case f.budgetSpent():
		f.st.Error = fmt.Sprintf("failure budget exhausted: %d of %d allowed databases failed (%s); %d not started",
			f.st.Failed, f.in.FailureBudget, strings.Join(f.failedNames(), ", "), skipped)
		return temporal.NewNonRetryableApplicationError(f.st.Error, ErrTypeBudget, nil)
	case f.stop != nil && f.stop.Action == approval.ChoiceReject:
		state = rollout.StateRejected
		text = fmt.Sprintf("fleet rejected at %s by %s (%s): %d databases not started", f.stop.GateID, f.stop.Actor, approval.OrNoReason(f.stop.Reason), skipped)
	case f.stop != nil:
		state = rollout.StateAborted
		text = fmt.Sprintf("fleet aborted by %s (%s): %d databases not started", f.stop.Actor, approval.OrNoReason(f.stop.Reason), skipped)
	case f.st.Failed > 0:
		state = rollout.StateCompletedWithFailures
	case f.in.DryRun:
		state = rollout.StateDryRunDone
	default:
		for _, t := range f.st.Targets {
			if t.State == rollout.StateCompletedWithDebt {
				state = rollout.StateCompletedWithDebt
			}
		}
	}
	if text == "" {
		text = fmt.Sprintf("fleet %s: %d of %d databases succeeded, %d failed", state, f.st.Succeeded, len(f.st.Targets), f.st.Failed)
	}
	f.st.State = state
	f.event(ctx, rollout.PhaseDone, text)
	kind := notify.KindCompleted
	if state != rollout.StateCompleted && state != rollout.StateCompletedWithDebt && state != rollout.StateDryRunDone {
		kind = notify.KindFailed
	}
	f.notify(ctx, notify.Event{Kind: kind, Phase: rollout.PhaseDone, Text: text})
	return nil
}

func (f *fleet) failedNames() []string {
	var n []string
	for _, t := range f.st.Targets {
		if t.Failed {
			n = append(n, t.Name)
		}
	}
	return n
}

func (f *fleet) target(name string) *Target {
	for i := range f.st.Targets {
		if f.st.Targets[i].Name == name {
			return &f.st.Targets[i]
		}
	}
	return nil
}

// runWave starts every target of wave i at once and waits until each child
// has ended. The children run on a disconnected context and are abandoned
// if the fleet closes: nothing the fleet does (or a cancellation or
// termination of the fleet) stops a child mid-VALIDATE.
func (f *fleet) runWave(ctx workflow.Context, i int) {
	wave := &f.st.Waves[i]
	now := workflow.Now(ctx)
	wave.State, wave.StartedAt = rollout.StateRunning, &now
	f.st.CurrentWave = wave.Number
	f.st.Phase = fmt.Sprintf("wave-%d/%d", wave.Number, len(f.st.Waves))
	kind := "batch"
	if wave.Canary {
		kind = "canary"
	}
	f.event(ctx, f.st.Phase, fmt.Sprintf("wave %d (%s) starts: %s", wave.Number, kind, strings.Join(wave.Targets, ", ")))
	f.publish(ctx)
	f.notify(ctx, notify.Event{Kind: notify.KindPhase, Phase: f.st.Phase, Text: fmt.Sprintf("wave %d/%d (%s) starts: %s", wave.Number, len(f.st.Waves), kind, strings.Join(wave.Targets, ", "))})

	dctx, _ := workflow.NewDisconnectedContext(ctx)
	running := 0
	for _, name := range wave.Targets {
		t := f.target(name)
		cctx := workflow.WithChildOptions(dctx, workflow.ChildWorkflowOptions{
			WorkflowID:        t.ChildID,
			ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_ABANDON,
			StaticSummary:     fmt.Sprintf("fkrollout of %s (fleet %s, wave %d/%d)", name, f.id, wave.Number, len(f.st.Waves)),
		})
		fut := workflow.ExecuteChildWorkflow(cctx, rollout.WorkflowName, f.in.childInput(name, wave.Canary, f.safeguards))
		started := workflow.Now(ctx)
		t.State, t.StartedAt = rollout.StateRunning, &started
		running++
		workflow.Go(dctx, func(g workflow.Context) {
			defer func() { running-- }()
			var exec workflow.Execution
			if err := fut.GetChildWorkflowExecution().Get(g, &exec); err != nil {
				f.childEnded(g, wave, t, nil, fmt.Errorf("child did not start: %w", err))
				return
			}
			t.RunID = exec.RunID
			f.event(g, f.st.Phase, fmt.Sprintf("%s: child %s started", name, t.ChildID))
			f.publish(g)
			var st rollout.Status
			if err := fut.Get(g, &st); err != nil {
				// A rolled-back, aborted or cancelled child closes failed
				// with its final status: that status is the outcome.
				if out, ok := rollout.OutcomeStatus(err); ok {
					f.childEnded(g, wave, t, out, nil)
					return
				}
				f.childEnded(g, wave, t, nil, err)
				return
			}
			f.childEnded(g, wave, t, &st, nil)
		})
	}
	_ = workflow.Await(dctx, func() bool { return running == 0 })
	end := workflow.Now(ctx)
	wave.State, wave.EndedAt = rollout.StateCompleted, &end
	f.event(ctx, f.st.Phase, fmt.Sprintf("wave %d done: %d succeeded, %d failed (fleet: %d failed of budget %d)",
		wave.Number, wave.Succeeded, wave.Failed, f.st.Failed, f.in.FailureBudget))
	f.publish(ctx)
}

// childFailed is the failure budget's definition of a failed database.
func childFailed(s rollout.RolloutState) bool {
	switch s {
	case rollout.StateCompleted, rollout.StateCompletedWithDebt, rollout.StateDryRunDone:
		return false
	}
	return true
}

// childEnded records a child's outcome: its final Status, or the error it
// (or its start) ended with.
func (f *fleet) childEnded(ctx workflow.Context, wave *Wave, t *Target, st *rollout.Status, err error) {
	now := workflow.Now(ctx)
	t.EndedAt = &now
	if st != nil {
		t.State, t.Phase, t.Error, t.ReportPath = st.State, st.Phase, st.Error, st.ReportPath
		t.Planned, t.Validated, t.Debt, t.RolledBack = childTally(st, t.Name)
	} else {
		t.State = rollout.StateFailed
		t.Error = childError(err)
	}
	t.Failed = childFailed(t.State)
	if t.Failed {
		f.st.Failed++
		wave.Failed++
		msg := fmt.Sprintf("%s %s", t.Name, t.State)
		if t.Error != "" {
			msg += ": " + t.Error
		}
		f.event(ctx, f.st.Phase, fmt.Sprintf("%s (failed %d of budget %d)", msg, f.st.Failed, f.in.FailureBudget))
		if f.budgetSpent() {
			f.event(ctx, f.st.Phase, "failure budget exhausted: no further database will be started; databases in flight finish on their own")
		}
	} else {
		f.st.Succeeded++
		wave.Succeeded++
		f.event(ctx, f.st.Phase, fmt.Sprintf("%s %s: %d validated, %d debt", t.Name, t.State, t.Validated, t.Debt))
	}
	f.publish(ctx)
}

// childError is the child's own failure message, without the SDK's wrapping.
func childError(err error) string {
	var ce *temporal.ChildWorkflowExecutionError
	if errors.As(err, &ce) {
		if u := errors.Unwrap(ce); u != nil {
			return u.Error()
		}
	}
	return err.Error()
}

// waveGate opens fleet/wave/<i> after wave i (1-based, the wave that just
// ended) and waits for a decision, its timeout or an abort.
func (f *fleet) waveGate(ctx workflow.Context, next int) (approval.Decision, error) {
	prev := f.st.Waves[next-1]
	rule := f.in.waveRule()
	if f.Policy != nil {
		rule = f.Policy.Approval.Rule(notify.GatePromotion, GateEnvironment)
	}
	id := fmt.Sprintf("%s/wave/%d", GateEnvironment, prev.Number)
	nw := f.st.Waves[next]
	title := fmt.Sprintf("wave %d/%d done (%d succeeded, %d failed): start wave %d (%d databases: %s)?",
		prev.Number, len(f.st.Waves), prev.Succeeded, prev.Failed, nw.Number, len(nw.Targets), strings.Join(nw.Targets, ", "))
	summary := fmt.Sprintf("fleet %s: %d of %d databases done, %d failed (budget %d). Databases of wave %d: %s",
		f.id, f.st.Succeeded+f.st.Failed, len(f.st.Targets), f.st.Failed, f.in.FailureBudget, prev.Number, f.waveLine(prev))
	g := f.Open(ctx, approval.GateSpec{ID: id, Kind: notify.GatePromotion, Environment: GateEnvironment, Title: title, Summary: summary,
		Choices: waveChoices(), Rule: rule})
	f.st.Waves[next-1].Gate = id
	f.st.State = rollout.StateWaitingForGate
	f.publish(ctx)
	g.Message = f.notify(ctx, approval.OpenedEvent(g, f.st.Phase)).Ref

	err := f.Await(ctx, g, func() bool { return f.stop != nil })
	if err != nil {
		// The fleet was cancelled: the gate closes and nothing more starts.
		g.Status = approval.GateCancelled
		d := approval.Decision{GateID: id, Action: approval.ChoiceAbort, Actor: "temporal", Via: "cancel", Reason: "fleet workflow cancelled", Time: workflow.Now(ctx)}
		f.stop = &d
		return d, nil
	}
	if g.Status == approval.GateOpen {
		if f.stop != nil {
			g.Status = approval.GateCancelled
			f.event(ctx, f.st.Phase, fmt.Sprintf("gate %s cancelled: fleet is stopping", id))
			f.st.State = rollout.StateRunning
			return *f.stop, nil
		}
		f.TimeOut(ctx, g, false)
	}
	f.st.State = rollout.StateRunning
	d := *g.Decision
	f.publish(ctx)
	f.notify(ctx, approval.DecidedEvent(g, d, f.st.Phase))
	return d, nil
}

// waveLine is "a completed, b failed: reason" for a wave.
func (f *fleet) waveLine(w Wave) string {
	parts := make([]string, 0, len(w.Targets))
	for _, name := range w.Targets {
		t := f.target(name)
		s := fmt.Sprintf("%s %s", name, t.State)
		if t.Error != "" {
			s += " (" + t.Error + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

// validateDecision is the decide validator: the rollout's rules (known open
// gate, offered choice, four-eyes, allowed approver, one vote per person).
func (f *fleet) validateDecision(ctx workflow.Context, in approval.DecisionInput) error {
	hint := ""
	if !strings.HasPrefix(in.GateID, GateEnvironment+"/") {
		hint = "a database's own gates are decided on its child workflow, <fleet-id>/<target>"
	}
	in, g, err := f.Admit(ctx, in, hint)
	if err != nil {
		return err
	}
	if err := approval.CheckChoice(g, in); err != nil {
		return err
	}
	if len(in.Constraints) > 0 {
		return fmt.Errorf("gate %s is a wave gate: constraints apply to a database's remediation gate, on its child workflow", g.ID)
	}
	return f.CheckVoter(g, in)
}

// applyDecision records a validated vote; a conservative choice or
// MinApprovals agreeing votes close the gate.
func (f *fleet) applyDecision(ctx workflow.Context, in approval.DecisionInput, defaultVia string) approval.GateView {
	_, _, view := f.Apply(ctx, in, defaultVia)
	f.publish(ctx)
	return view
}

// validateAbort checks a fleet abort: the requester or an operator, while
// the fleet runs, never with rollback (children roll back one by one).
func (f *fleet) validateAbort(ctx workflow.Context, in approval.ControlInput) error {
	in, roles, err := f.AdmitControl(ctx, f.id, approval.UpdateAbort, in)
	if err != nil {
		return err
	}
	if f.finished {
		return fmt.Errorf("fleet is already finishing (%s)", f.st.State)
	}
	if f.Strict() {
		if err := f.MayControl(approval.UpdateAbort, false, in.Actor, roles, f.in.Requester, append(slices.Clone(f.in.Targets), GateEnvironment)); err != nil {
			return err
		}
	} else if ops := f.in.Approval.Operators; len(ops) > 0 && !strings.EqualFold(in.Actor, f.in.Requester) &&
		!slices.ContainsFunc(ops, func(o string) bool { return strings.EqualFold(o, in.Actor) }) {
		return fmt.Errorf("%s may not abort this fleet (operators: %s, and the requester)", in.Actor, strings.Join(ops, ", "))
	}
	if in.Rollback {
		return fmt.Errorf("a fleet abort does not roll back: it starts no more databases; roll a database back on its child (fkrollout abort <fleet-id>/<target> --rollback)")
	}
	if f.stop != nil {
		return fmt.Errorf("fleet is already stopping (%s by %s)", f.stop.Action, f.stop.Actor)
	}
	return nil
}

func (f *fleet) applyAbort(ctx workflow.Context, in approval.ControlInput, defaultVia string) approval.Ack {
	in, _, _ = f.AdmitControl(ctx, f.id, approval.UpdateAbort, in) // validated: this only puts in the proven actor
	f.Remember(in.Proof, workflow.Now(ctx))
	in.Via = cmp.Or(in.Via, defaultVia)
	d := approval.Decision{Action: approval.UpdateAbort, Actor: strings.TrimSpace(in.Actor), Reason: in.Reason, Via: in.Via, Time: workflow.Now(ctx)}
	f.Decisions = append(f.Decisions, d)
	f.stop = &d
	f.event(ctx, f.st.Phase, fmt.Sprintf("abort requested by %s (%s): no further database will be started", d.Actor, approval.OrNoReason(in.Reason)))
	f.publish(ctx)
	return approval.Ack{Accepted: true, Message: "stopping: no further database will be started; databases in flight finish on their own (abort them on <fleet-id>/<target>)"}
}

// setupHandlers: the status query, decide and abort updates (validated),
// their signal equivalents, and the refusal record.
func (f *fleet) setupHandlers(ctx workflow.Context) error {
	if err := workflow.SetQueryHandlerWithOptions(ctx, rollout.QueryStatus, func() (*Status, error) { return f.snapshot(), nil },
		workflow.QueryHandlerOptions{Description: "The fleet's status: waves, targets and their child workflow ids, gates, decisions"}); err != nil {
		return err
	}
	if err := workflow.SetQueryHandlerWithOptions(ctx, rollout.QueryReport, func() (string, error) { return f.snapshot().Report(), nil },
		workflow.QueryHandlerOptions{Description: "The fleet's completion report (markdown): waves, databases, decisions, success metrics"}); err != nil {
		return err
	}
	return f.Register(ctx, approval.Handlers{
		DecideDescription: "Decide a wave gate (fleet/wave/<n>): gate_id, choice (approve, reject, abort), actor, reason",
		ValidateDecision:  f.validateDecision,
		ApplyDecision:     f.applyDecision,
		Controls: []approval.Control{{Update: approval.UpdateAbort, Signal: approval.SignalAbort,
			Description: "Abort the fleet: start no more databases (actor, reason)",
			Validate:    f.validateAbort, Apply: f.applyAbort}},
	})
}

// event appends to the fleet's timeline (bounded).
func (f *fleet) event(ctx workflow.Context, phase, msg string) {
	f.st.Timeline, f.st.TimelineDropped = rollout.AppendTimeline(f.st.Timeline, f.st.TimelineDropped,
		rollout.TimelineEntry{Time: workflow.Now(ctx), Environment: GateEnvironment, Phase: phase, Message: msg})
	workflow.GetLogger(ctx).Info(msg, "fleet", f.id, "phase", phase)
}

// publish keeps the search attributes (on change only: each upsert is a
// history event) and the UI's current details in step.
func (f *fleet) publish(ctx workflow.Context) {
	var ups []temporal.SearchAttributeUpdate
	if f.pub.phase != f.st.Phase {
		ups = append(ups, rollout.SearchPhase.ValueSet(f.st.Phase))
		f.pub.phase = f.st.Phase
	}
	if f.pub.state != f.st.State {
		ups = append(ups, rollout.SearchStatus.ValueSet(string(f.st.State)))
		f.pub.state = f.st.State
	}
	if !f.pub.requester && f.in.Requester != "" {
		ups = append(ups, rollout.SearchRequester.ValueSet(f.in.Requester))
		f.pub.requester = true
	}
	if len(ups) > 0 {
		if err := workflow.UpsertTypedSearchAttributes(ctx, ups...); err != nil {
			workflow.GetLogger(ctx).Warn("upsert search attributes", "error", err)
		}
	}
	f.st.UpdatedAt = workflow.Now(ctx)
	workflow.SetCurrentDetails(ctx, f.snapshot().Markdown())
}

// notify sends an event through the Notify activity; it never fails the
// fleet. Events carry the fleet id: a Slack button decides the fleet's gate.
func (f *fleet) notify(ctx workflow.Context, ev notify.Event) notify.Receipt {
	ev.RolloutID = f.id
	ev.Thread = f.thread
	ev.Time = workflow.Now(ctx)
	nctx, _ := workflow.NewDisconnectedContext(ctx)
	nctx = workflow.WithActivityOptions(nctx, steps.WithSummary(steps.Notify(), "notify: "+string(ev.Kind)+" "+ev.Text))
	var r notify.Receipt
	if err := workflow.ExecuteActivity(nctx, steps.ActNotify, ev).Get(nctx, &r); err != nil {
		f.event(ctx, ev.Phase, fmt.Sprintf("notification %s not delivered: %v", ev.Kind, err))
	}
	return r
}

// snapshot is a copy of the status for the query and the result.
func (f *fleet) snapshot() *Status {
	s := f.st
	s.Waves = slices.Clone(f.st.Waves)
	s.Targets = slices.Clone(f.st.Targets)
	s.Timeline = slices.Clone(f.st.Timeline)
	s.Gates = make([]approval.Gate, 0, len(f.Gates))
	s.OpenGate = nil
	for _, g := range f.Gates {
		s.Gates = append(s.Gates, *g)
		if g.Status == approval.GateOpen {
			og := *g
			s.OpenGate = &og
		}
	}
	s.Decisions = slices.Clone(f.Decisions)
	if s.Decisions == nil {
		s.Decisions = []approval.Decision{}
	}
	s.Refusals = slices.Clone(f.Refusals)
	return &s
}

// Terminal reports whether the fleet has ended.
func (s *Status) Terminal() bool {
	return s.State.Terminal() || s.State == rollout.StateCompletedWithFailures
}

// Markdown is the fleet's current details in the Temporal UI.
func (s *Status) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "**fleet %s** · phase `%s` · %d/%d succeeded · failed %d of budget %d", s.State, s.Phase, s.Succeeded, len(s.Targets), s.Failed, s.FailureBudget)
	b.WriteString("\n\n| wave | target | state | phase | child workflow |\n|---|---|---|---|---|\n")
	for _, t := range s.Targets {
		fmt.Fprintf(&b, "| %d | %s | %s | %s | `%s` |\n", t.Wave, t.Name, t.State, t.Phase, t.ChildID)
	}
	if g := s.OpenGate; g != nil {
		fmt.Fprintf(&b, "\n⏳ gate `%s`: %s — choices: %s", g.ID, g.Title, strings.Join(g.Choices, ", "))
		if g.Deadline != nil {
			fmt.Fprintf(&b, " (times out %s → %s)", g.Deadline.UTC().Format(time.RFC3339), g.Rule.OnTimeout)
		}
	}
	if s.Error != "" {
		fmt.Fprintf(&b, "\n\n❌ %s", s.Error)
	}
	return b.String()
}

// StartClaim is what the requester signs to start a fleet: the rollout
// start claim of all its targets, which its children are checked against.
func StartClaim(fleetID string, in Input) identity.Claim {
	return rollout.StartClaim(fleetID, in.PolicyInput())
}
