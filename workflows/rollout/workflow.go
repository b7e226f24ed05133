package rollout

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/jsonkeys"
	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/steps"
)

// errStopped unwinds the story after an abort or rollback request.
var errStopped = errors.New("rollout stopped on request")

// stopRequest is a pending abort or rollback.
type stopRequest struct {
	kind     string
	in       approval.ControlInput
	rollback bool
}

// rollout is the workflow's state. Handlers and the story share it; the
// SDK runs them on one thread, so there are no data races.
type rollout struct {
	approval.Board
	in        Input
	id        string
	runID     string
	plan      plan.Plan
	fks       []plan.ForeignKey // priority order
	windows   map[string]window
	st        Status
	gateScope map[string][]string // gate ID → constraints a decision was limited to
	// gateImpact: remediation gate ID → constraint → what remediating it
	// would do; the decision validator refuses impossible choices with it.
	gateImpact map[string]map[string]Impact
	gateSeq    int
	paused     bool
	stop       *stopRequest
	finishing  bool
	// cancelStep cancels the activity in flight (abort).
	cancelStep workflow.CancelFunc
	thread     notify.MessageRef
	// touched are the environments where constraints may have been created.
	touched []string
	// saHold is the environment the search attributes keep naming while
	// a promotion gate out of it is open (searchAttrWorkEnvVersion).
	saHold string
	// pub is what was last published as search attributes.
	pub struct {
		phase, env string
		state      RolloutState
		requester  bool
	}
	// refuseUnknownKeys: the input has keys no field takes, and this
	// history refuses them (unknownKeysVersion).
	refuseUnknownKeys bool
	// checkOfferedTimeouts: this history refuses an on_timeout its gate
	// kind does not offer (offeredTimeoutsVersion).
	checkOfferedTimeouts bool
	// rollbackGates are the gates a failed rollback opened (their abort
	// needs a reason).
	rollbackGates []string
	// safeguards: this history runs the safeguards unless skipped
	// (safeDefaultsVersion, policy_safeguards.go).
	safeguards bool
	// bounded: this history's result, audit samples, gates and
	// notifications are bounded (boundedVersion, compact.go).
	bounded bool
}

// Workflow is the FKRollout workflow. The rollout ID is the workflow ID.
func Workflow(ctx workflow.Context, in Input) (*Status, error) {
	info := workflow.GetInfo(ctx)
	w := &rollout{in: in, id: info.WorkflowExecution.ID, runID: info.WorkflowExecution.RunID, windows: map[string]window{}, gateScope: map[string][]string{}, gateImpact: map[string]map[string]Impact{}}
	w.Board = approval.Board{WorkflowID: w.id, Requester: in.Requester, Subject: "rollout",
		Log: func(ctx workflow.Context, env, phase, msg string) {
			w.event(ctx, cmp.Or(env, w.st.Environment), phase, msg)
		}}
	w.st = Status{RolloutID: w.id, Requester: in.Requester, DryRun: in.DryRun, State: StateRunning, Phase: PhaseStarting,
		Environments: map[string]EnvReport{}, StartedAt: workflow.Now(ctx), Thresholds: in.Thresholds}
	for _, e := range in.Environments {
		w.st.EnvironmentOrder = append(w.st.EnvironmentOrder, e.Name)
	}
	if err := w.setupHandlers(ctx); err != nil {
		return nil, err
	}
	w.bounded = workflow.GetVersion(ctx, boundedVersion, workflow.DefaultVersion, 1) == 1
	// Histories recorded before unknown keys were refused replay as they ran.
	if len(in.UnknownKeys()) > 0 && workflow.GetVersion(ctx, unknownKeysVersion, workflow.DefaultVersion, 1) == 1 {
		w.refuseUnknownKeys = true
	}
	if len(unofferedTimeouts(in)) > 0 && workflow.GetVersion(ctx, offeredTimeoutsVersion, workflow.DefaultVersion, 1) == 1 {
		w.checkOfferedTimeouts = true
	}
	// Safe defaults for every rollout, top-level or a child of any parent;
	// a dry run changes nothing.
	if !in.DryRun && safeDefaultsApply(ctx, info) {
		w.safeguards = true
		w.in = WithSafeDefaults(w.in)
		w.st.SafeguardsOff = SafeguardsOff(w.in)
	}
	if err := w.validateInput(); err != nil {
		w.st.State, w.st.Error = StateFailed, err.Error()
		w.publish(ctx)
		return w.result(), temporal.NewNonRetryableApplicationError(err.Error(), "InputError", nil)
	}
	if err := w.resolvePolicy(ctx, nil); err != nil {
		w.st.State, w.st.Error = StateFailed, err.Error()
		w.publish(ctx)
		return w.result(), temporal.NewNonRetryableApplicationError(err.Error(), ErrTypePolicy, nil)
	}
	err := w.run(ctx)
	switch {
	case err == nil:
	case errors.Is(err, errStopped):
		// A stop asked for before a cancellation is honoured as asked.
		w.finishStop(ctx)
	case w.cancelled(ctx, err):
		return w.finishCancel(ctx)
	default:
		w.finishing = true
		w.st.State, w.st.Error = StateFailed, err.Error()
		w.event(ctx, w.st.Environment, w.st.Phase, "failed: "+err.Error())
		w.publish(ctx)
		w.notify(ctx, notify.Event{Kind: notify.KindFailed, Environment: w.st.Environment, Phase: w.st.Phase, Text: err.Error()})
		w.publishReport(ctx)
		return w.result(), err
	}
	w.finishing = true
	w.publishReport(ctx)
	// Handlers are non-blocking, but this keeps it true if one ever blocks.
	_ = workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) })
	if err != nil {
		// Rolled back, aborted or left incomplete: the run closes failed
		// (finish.go), with the status in the failure's details.
		if out := w.stopOutcome(ctx); out != nil {
			return w.result(), out
		}
	}
	return w.result(), nil
}

func (w *rollout) validateInput() error {
	var errs []string
	if w.refuseUnknownKeys {
		errs = append(errs, UnknownKeysProblem(w.in.UnknownKeys()))
	}
	if strings.TrimSpace(w.in.Plan) == "" {
		errs = append(errs, "plan is empty: paste the plan YAML or migration SQL")
	}
	errs = append(errs, skipProblems(w.in)...)
	switch w.in.PlanFormat {
	case "", "sql", "yaml", "json":
	default:
		errs = append(errs, fmt.Sprintf("plan_format %q: want sql, yaml or json (or leave it out)", w.in.PlanFormat))
	}
	if strings.TrimSpace(w.in.Requester) == "" {
		errs = append(errs, "requester is required (four-eyes needs to know who asked)")
	}
	if len(w.in.Environments) == 0 {
		errs = append(errs, "environments: name at least one, e.g. [{\"name\":\"staging\"},{\"name\":\"production\"}]")
	}
	seen := map[string]bool{}
	for i, e := range w.in.Environments {
		if e.Name == "" {
			errs = append(errs, fmt.Sprintf("environments[%d].name is empty", i))
			continue
		}
		if seen[e.Name] {
			errs = append(errs, fmt.Sprintf("environment %q is listed twice", e.Name))
		}
		seen[e.Name] = true
		if e.MaintenanceWindow != nil {
			win, err := parseWindow(e.MaintenanceWindow)
			if err != nil {
				errs = append(errs, fmt.Sprintf("environment %q: %v", e.Name, err))
			} else {
				w.windows[e.Name] = win
			}
		}
	}
	rules := []approval.GateRule{w.in.Approval.Default}
	for _, k := range approval.SortedRuleKeys(w.in.Approval.Gates) {
		kind, _, _ := strings.Cut(k, "/")
		switch notify.GateKind(kind) {
		case notify.GateRemediation, notify.GatePromotion, notify.GateApproval, notify.GateInvestigate:
		default:
			errs = append(errs, fmt.Sprintf("approval.gates key %q: want promotion, remediation, approval or investigate, optionally /<environment>", k))
		}
		rules = append(rules, w.in.Approval.Gates[k])
	}
	if w.checkOfferedTimeouts {
		errs = append(errs, unofferedTimeouts(w.in)...)
	}
	for _, r := range rules {
		if r.Timeout != "" {
			if d, err := time.ParseDuration(r.Timeout); err != nil || d <= 0 {
				errs = append(errs, fmt.Sprintf("approval timeout %q: want a positive duration such as 24h", r.Timeout))
			}
		}
		if r.OnTimeout != "" && !approval.Known(r.OnTimeout) {
			errs = append(errs, fmt.Sprintf("approval on_timeout %q is not a choice", r.OnTimeout))
		}
		if r.MinApprovals > 1 && len(r.Approvers) > 0 && len(r.Approvers) < r.MinApprovals && !slices.ContainsFunc(r.Approvers, func(a string) bool { return strings.HasPrefix(a, "role:") }) {
			errs = append(errs, fmt.Sprintf("approval rule needs %d approvers but lists only %d", r.MinApprovals, len(r.Approvers)))
		}
	}
	if w.in.Monitor.Enabled {
		errs = append(errs, w.in.Monitor.problems(w.in.Thresholds)...)
		for _, d := range [][2]string{{"monitor.duration", w.in.Monitor.Duration}, {"monitor.interval", w.in.Monitor.Interval}} {
			name, v := d[0], d[1]
			if v == "" {
				continue
			}
			if d, err := time.ParseDuration(v); err != nil || d <= 0 {
				errs = append(errs, fmt.Sprintf("%s %q: want a positive duration", name, v))
			}
		}
	}
	errs = append(errs, w.perfValidateInput()...)
	if len(errs) > 0 {
		sort.Strings(errs)
		return fmt.Errorf("invalid rollout input: %s", strings.Join(errs, "; "))
	}
	return nil
}

// story is the runbook, top to bottom.
func (w *rollout) run(ctx workflow.Context) error {
	w.publish(ctx)
	w.enter(ctx, "", PhaseParse)
	var parsed ParsePlanResult
	if err := w.step(ctx, "", "parse and lint the plan", ActParsePlan, steps.Short(), ParsePlanInput{Text: w.in.Plan, Format: w.in.PlanFormat, Environment: w.in.Environments[0].Name}, &parsed); err != nil {
		return err
	}
	w.plan = parsed.Plan
	w.fks = sortedFKs(parsed.Plan.ForeignKeys)
	w.st.PlanName = parsed.Plan.Name
	w.st.Findings = parsed.Findings
	for _, fk := range w.fks {
		cs := ConstraintStatus{Name: fk.Name, Table: fk.Table.String(), References: fk.RefTable.String(), Priority: fk.Priority.String(),
			Environments: map[string]ConstraintEnvState{}}
		for _, e := range w.in.Environments {
			cs.Environments[e.Name] = ConstraintEnvState{State: CPlanned, Since: workflow.Now(ctx)}
		}
		w.st.Constraints = append(w.st.Constraints, cs)
	}
	r := w.notify(ctx, notify.Event{Kind: notify.KindStarted, Text: fmt.Sprintf("rollout of %d constraints started by %s", len(w.fks), w.in.Requester),
		Start: &notify.StartInfo{PlanSummary: PlanSummary(w.plan), Constraints: len(w.fks), Environments: w.st.EnvironmentOrder, Requester: w.in.Requester, DryRun: w.in.DryRun}})
	w.thread = r.Ref

	for i, env := range w.in.Environments {
		if i > 0 && !w.in.DryRun {
			ok, err := w.promotion(ctx, w.in.Environments[i-1].Name, env.Name)
			if err != nil {
				return err
			}
			if !ok {
				return nil
			}
		}
		if err := w.environment(ctx, env, i == len(w.in.Environments)-1); err != nil {
			return err
		}
		if i == 0 && len(w.in.Environments) > 1 && !w.in.DryRun && w.rehearse(ctx) {
			if err := w.rehearseRollback(ctx, env.Name); err != nil {
				return err
			}
		}
	}
	if w.in.DryRun {
		w.finish(ctx, StateDryRunDone, "dry run completed: nothing was changed")
		return nil
	}
	last := w.in.Environments[len(w.in.Environments)-1].Name
	w.enter(ctx, last, PhaseMonitor)
	mon, err := w.runMonitor(ctx, last)
	if err != nil {
		return err
	}
	w.st.Monitor = &mon
	if mon.Status == MonitorRollback {
		w.stop = &stopRequest{kind: "monitor", in: approval.ControlInput{Actor: "monitor", Reason: mon.Reason}, rollback: true}
		return errStopped
	}
	state := StateCompleted
	for _, e := range w.in.Environments {
		if c := w.st.Counts(e.Name); c[CDebt]+c[CSkipped] > 0 {
			state = StateCompletedWithDebt
		}
	}
	w.finish(ctx, state, fmt.Sprintf("rollout %s: %d constraints in %d environments", state, len(w.fks), len(w.in.Environments)))
	return nil
}

func (w *rollout) finish(ctx workflow.Context, state RolloutState, text string) {
	w.finishing = true
	w.enter(ctx, w.st.Environment, PhaseDone)
	w.setState(ctx, state)
	w.event(ctx, "", PhaseDone, text)
	w.notify(ctx, notify.Event{Kind: notify.KindCompleted, Text: text})
}

// environment runs one environment's phases.
func (w *rollout) environment(ctx workflow.Context, env EnvironmentInput, last bool) error {
	name := env.Name
	w.saHold = "" // work in name starts: the search attributes follow
	rep := w.report(name)
	w.notify(ctx, notify.Event{Kind: notify.KindPhase, Environment: name, Phase: PhaseCheck, Text: "starting environment " + name})

	w.enter(ctx, name, PhaseCheck)
	var check CheckResult
	if err := w.step(ctx, name, "check the plan against "+name+"'s catalog", ActCheckPlan, steps.Short(), w.envInput(name), &check); err != nil {
		return err
	}
	rep = w.report(name)
	rep.Problems = check.Problems
	w.setReport(name, rep)
	if len(check.Problems) > 0 {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("plan does not fit %s: %s", name, problemsText(check.Problems)), steps.ErrTypePlan, nil)
	}

	w.enter(ctx, name, PhaseStatsBefore)
	var before StatsResult
	if err := w.step(ctx, name, "catalog statistics before", ActTakeStats, steps.Short(), StatsInput{Environment: name, Plan: w.plan}, &before); err != nil {
		return err
	}
	rep = w.report(name)
	rep.StatsBefore = &before
	w.setReport(name, rep)

	w.enter(ctx, name, PhaseAudit)
	first, err := w.audit(ctx, name, w.fks)
	if err != nil {
		return err
	}
	rep = w.report(name)
	rep.FirstAudit = first
	w.setReport(name, rep)
	if w.in.DryRun {
		rep.Done = true
		w.setReport(name, rep)
		w.event(ctx, name, PhaseAudit, fmt.Sprintf("dry run: %d orphans found; nothing changed", totalOrphans(first)))
		return nil
	}

	early := last && w.baselineBeforeWindow(ctx)
	if early {
		if err := w.captureBaseline(ctx, name); err != nil {
			return err
		}
	}
	if err := w.waitWindow(ctx, name); err != nil {
		return err
	}
	if last && !early {
		// The monitor's baseline, measured before this environment changes.
		if err := w.captureBaseline(ctx, name); err != nil {
			return err
		}
	}
	w.enter(ctx, name, PhaseBackup)
	var bk BackupResult
	if err := w.step(ctx, name, "back up "+name+" before any change", ActBackup, steps.Long(), BackupInput{Environment: name, RolloutID: w.id, Plan: w.plan, Full: w.fullBackup(last)}, &bk); err != nil {
		return err
	}
	rep = w.report(name)
	rep.Backup = &bk
	w.setReport(name, rep)

	// Perf baseline (perf.go): same data and settings, before any constraint.
	if err := w.runPerfBaseline(ctx, name); err != nil {
		return err
	}

	w.enter(ctx, name, PhaseApply)
	w.touched = append(w.touched, name)
	for _, fk := range w.fks {
		var res ConstraintResult
		err := w.stepFor(ctx, name, fk.Name, "ADD CONSTRAINT "+fk.Name+" NOT VALID", ActApplyConstraint, steps.DDL(), ConstraintInput{Environment: name, RolloutID: w.id, RunID: w.runID, FK: fk}, &res)
		if errors.Is(err, errSkipped) {
			w.setConstraintState(ctx, name, fk.Name, CSkipped, -1, "skipped at a failure gate: not added")
			continue
		}
		if err != nil {
			return err
		}
		rep = w.report(name)
		rep.Applied = append(rep.Applied, res)
		w.setReport(name, rep)
		w.setConstraintState(ctx, name, fk.Name, CApplied, 0, res.Action)
	}

	if err := w.remediateAndValidate(ctx, name); err != nil {
		return err
	}

	w.enter(ctx, name, PhaseBehaviour)
	validated := w.inState(name, CValidated)
	if len(validated) > 0 {
		var beh []BehaviourResult
		if err := w.step(ctx, name, fmt.Sprintf("behaviour tests of %d constraints", len(validated)), ActRunBehaviourTests, steps.Long(), BehaviourInput{Environment: name, FKs: validated}, &beh); err != nil {
			return err
		}
		rep = w.report(name)
		rep.Behaviour = beh
		w.setReport(name, rep)
		var failed []string
		for _, b := range beh {
			if b.Passed {
				w.setConstraintState(ctx, name, b.FK, CTested, 0, "")
			} else {
				failed = append(failed, b.FK)
			}
		}
		if len(failed) > 0 {
			if _, err := w.askProblem(ctx, name, fmt.Sprintf("behaviour tests failed in %s: %s", name, strings.Join(failed, ", ")),
				[]string{approval.ChoiceContinue, approval.ChoiceRollback, approval.ChoiceAbort}); err != nil {
				return err
			}
		}
	}

	// Perf with FKs and the verdict (perf.go); a rollback verdict stops here.
	if err := w.runPerfCompare(ctx, name); err != nil {
		return err
	}

	w.enter(ctx, name, PhaseStatsAfter)
	var after StatsResult
	if err := w.step(ctx, name, "catalog statistics after", ActTakeStats, steps.Short(), StatsInput{Environment: name, Plan: w.plan, Before: before.Snapshot}, &after); err != nil {
		return err
	}
	rep = w.report(name)
	rep.StatsAfter = &after
	w.setReport(name, rep)
	if err := w.checkExpectations(ctx, name); err != nil {
		return err
	}

	if err := w.hooksAndSmoke(ctx, name); err != nil {
		return err
	}
	if w.quarantineTruth(ctx, name) {
		w.recordQuarantine(ctx, name, false)
	}
	rep = w.report(name)
	rep.Done = true
	w.setReport(name, rep)
	w.event(ctx, name, PhaseDone, fmt.Sprintf("%s done: %d validated, %d debt", name, len(w.inState(name, CValidated, CTested)), len(w.inState(name, CDebt))))
	return nil
}

// remediateAndValidate loops audit → remediation gate → validate until
// every constraint is validated or accepted as debt. A VALIDATE that still
// finds orphans (23503) sends the constraint back to the audit and the gate.
func (w *rollout) remediateAndValidate(ctx workflow.Context, name string) error {
	for {
		pending := w.inState(name, CApplied)
		if len(pending) == 0 {
			return nil
		}
		if err := w.remediationLoop(ctx, name, pending); err != nil {
			return err
		}
		w.enter(ctx, name, PhaseValidate)
		reaudit := false
		for _, fk := range w.inState(name, CApplied) {
			if err := w.waitWindow(ctx, name); err != nil {
				return err
			}
			var res ConstraintResult
			err := w.stepFor(ctx, name, fk.Name, "VALIDATE CONSTRAINT "+fk.Name, ActValidateConstraint, steps.Validate(), ConstraintInput{Environment: name, RolloutID: w.id, RunID: w.runID, FK: fk}, &res)
			if errors.Is(err, errMissingSkipped) {
				w.setConstraintState(ctx, name, fk.Name, CSkipped, -1, "missing at VALIDATE and skipped at its gate: not in the database")
				continue
			}
			if errors.Is(err, errSkipped) {
				w.setConstraintState(ctx, name, fk.Name, CDebt, -1, "VALIDATE skipped at a failure gate: stays NOT VALID, still guards new writes")
				continue
			}
			if steps.IsType(err, steps.ErrTypeOrphans) {
				w.event(ctx, name, PhaseValidate, fmt.Sprintf("VALIDATE %s found orphans (23503): re-auditing and reopening the remediation gate", fk.Name))
				w.setConstraintState(ctx, name, fk.Name, CApplied, 0, "VALIDATE found orphans")
				reaudit = true
				continue
			}
			if err != nil {
				return err
			}
			rep := w.report(name)
			rep.Validated = append(rep.Validated, res)
			w.setReport(name, rep)
			w.setConstraintState(ctx, name, fk.Name, CValidated, 0, "")
		}
		if !reaudit {
			return nil
		}
	}
}

// remediationLoop audits fks and, while orphans remain that nobody
// accepted, asks a human what to do about them.
func (w *rollout) remediationLoop(ctx workflow.Context, name string, fks []plan.ForeignKey) error {
	for {
		w.enter(ctx, name, PhaseReaudit)
		figs, err := w.audit(ctx, name, fks)
		if err != nil {
			return err
		}
		var dirty []AuditFigure
		for _, f := range figs {
			w.setOrphans(name, f.FK, f.Orphans)
			if f.Orphans > 0 {
				dirty = append(dirty, f)
			}
		}
		if len(dirty) == 0 {
			return nil
		}
		w.enter(ctx, name, PhaseRemediation)
		impacts, err := w.remediationImpact(ctx, name, dirty)
		if err != nil {
			return err
		}
		exports, err := w.exportOrphans(ctx, name, dirty)
		if err != nil {
			return err
		}
		detail := &notify.Gate{Remediation: &notify.RemediationData{}}
		var lines []string
		if w.bounded {
			lines, detail.Remediation.FKs = remediationLines(dirty, impacts, exports)
		}
		for _, f := range dirty {
			if w.bounded {
				break
			}
			or := notify.OrphanReport{Constraint: f.FK, Table: f.Table, Columns: f.Columns,
				RefTable: f.References, Orphans: f.Orphans, Samples: f.Samples, Nullable: f.Nullable}
			lines = append(lines, fmt.Sprintf("%s: %d orphans (e.g. %s)", f.FK, f.Orphans, strings.Join(f.Samples, "; ")))
			if e, ok := exports[f.FK]; ok {
				or.Export = e.Note()
				lines = append(lines, "  full list: "+e.Note())
			}
			if imp, ok := impacts[f.FK]; ok {
				or.Nullable, or.Triggers, or.Impossible = imp.Nullable, imp.Triggers, imp.Impossible
				or.Dependents = imp.Dependents
				lines = append(lines, impactLines(imp)...)
			}
			detail.Remediation.FKs = append(detail.Remediation.FKs, or)
		}
		g := w.openGate(ctx, notify.GateRemediation, name, fmt.Sprintf("%d constraint(s) in %s have orphans", len(dirty), name),
			strings.Join(lines, "\n"), w.remediationChoices(name, impacts != nil), detail)
		if impacts != nil {
			w.gateImpact[g.ID] = impacts
		}
		d, err := w.awaitGate(ctx, g)
		if err != nil {
			return err
		}
		scope := w.gateScope[g.ID]
		var targets []plan.ForeignKey
		for _, f := range dirty {
			if len(scope) == 0 || slices.Contains(scope, f.FK) {
				if fk, ok := w.fk(f.FK); ok {
					targets = append(targets, fk)
				}
			}
		}
		switch d.Action {
		case approval.ChoiceAbort:
			w.stop = &stopRequest{kind: approval.UpdateAbort, in: approval.ControlInput{Actor: d.Actor, Reason: d.Reason, Via: d.Via}}
			return errStopped
		case approval.ChoiceReAudit:
			continue
		case approval.ChoiceAcceptDebt:
			for _, fk := range targets {
				w.setConstraintState(ctx, name, fk.Name, CDebt, -1, "orphans accepted as debt by "+d.Actor+": stays NOT VALID, still guards new writes")
			}
			fks = w.inState(name, CApplied)
			if len(fks) == 0 {
				return nil
			}
		case approval.ChoiceDelete, approval.ChoiceSetNull, approval.ChoiceDeleteWithDependents:
			mode := map[string]string{approval.ChoiceDelete: ModeDelete, approval.ChoiceSetNull: ModeSetNull, approval.ChoiceDeleteWithDependents: ModeDeleteWithDependents}[d.Action]
			for _, fk := range targets {
				var res RemediationResult
				err := w.stepFor(ctx, name, fk.Name, fmt.Sprintf("%s orphans of %s (quarantined first)", mode, fk.Name), ActRemediate, steps.Long(),
					RemediateInput{Environment: name, RolloutID: w.id, RunID: w.runID, FK: fk, Mode: mode}, &res)
				if errors.Is(err, errSkipped) {
					w.setConstraintState(ctx, name, fk.Name, CDebt, -1, "remediation skipped at a failure gate: stays NOT VALID, still guards new writes")
					continue
				}
				if steps.IsType(err, steps.ErrTypeRemediation) {
					w.event(ctx, name, PhaseRemediation, fmt.Sprintf("%s of %s refused: %v; the gate reopens", mode, fk.Name, err))
					continue
				}
				if err != nil {
					return err
				}
				rep := w.report(name)
				rep.Remediations = append(rep.Remediations, res)
				w.setReport(name, rep)
				w.event(ctx, name, PhaseRemediation, fmt.Sprintf("%s: %s %d rows (%d quarantined)", fk.Name, mode, res.Affected, res.Quarantined))
			}
			// Constraints skipped at a failure gate left the loop as debt.
			fks = w.inState(name, CApplied)
			if len(fks) == 0 {
				return nil
			}
		}
	}
}

func (w *rollout) audit(ctx workflow.Context, name string, fks []plan.ForeignKey) ([]AuditFigure, error) {
	var figs []AuditFigure
	if err := w.step(ctx, name, fmt.Sprintf("orphan audit of %d constraints", len(fks)), ActAudit, steps.Long(), AuditInput{Environment: name, FKs: fks}, &figs); err != nil {
		return nil, err
	}
	if w.bounded {
		capAuditSamples(figs, AuditSamplesPerFK, AuditSamplesTotal)
	}
	rep := w.report(name)
	rep.LastAudit = figs
	rep.AuditRounds++
	w.setReport(name, rep)
	w.event(ctx, name, PhaseAudit, fmt.Sprintf("audit round %d: %d orphans", rep.AuditRounds, totalOrphans(figs)))
	return figs, nil
}

// promotion opens the gate between two environments with what the first
// proved. It returns false when promotion was rejected.
func (w *rollout) promotion(ctx workflow.Context, from, to string) (bool, error) {
	// List columns keep naming the environment whose work is done until
	// work in the next one starts (histories before this kept the upsert
	// of RolloutEnvironment at the promotion).
	if workflow.GetVersion(ctx, searchAttrWorkEnvVersion, workflow.DefaultVersion, 1) == 1 {
		w.saHold = from
	}
	w.enter(ctx, to, PhasePromotion)
	rep := w.report(from)
	pd := &notify.PromotionData{From: from, To: to}
	for _, fk := range w.inState(from, CValidated, CTested) {
		pd.Validated = append(pd.Validated, fk.Name)
	}
	for _, fk := range w.inState(from, CDebt) {
		pd.NotValid = append(pd.NotValid, fk.Name)
		pd.Warnings = append(pd.Warnings, fk.Name+" stays NOT VALID (orphans accepted as debt)")
	}
	for _, b := range rep.Behaviour {
		for _, c := range b.Cases {
			pd.Tests = append(pd.Tests, notify.TestResult{Name: b.FK + ": " + c.Name, Passed: c.Passed, Detail: c.Detail})
		}
		if !b.Passed {
			pd.Warnings = append(pd.Warnings, "behaviour tests failed for "+b.FK)
		}
	}
	var lines []string
	if rep.StatsAfter != nil {
		for _, r := range rep.StatsAfter.Comparison {
			lines = append(lines, fmt.Sprintf("%s: %s → %s (%s)", r.Metric, r.Before, r.After, r.Change))
		}
		for _, u := range rep.StatsAfter.Unindexed {
			pd.Warnings = append(pd.Warnings, "no index supports "+u)
		}
	}
	if w.bounded {
		pd.Tests = capTests(pd.Tests)
		pd.Validated, pd.NotValid, pd.Warnings = capNames(pd.Validated, gateRows*4), capNames(pd.NotValid, gateRows*4), capNames(pd.Warnings, gateRows)
	}
	summary := fmt.Sprintf("%s: %d validated, %d debt, %d remediations.\n%s", from, len(pd.Validated), len(pd.NotValid), len(rep.Remediations), strings.Join(lines, "\n"))
	// The perf table; an open perf warning turns approve into approve-override.
	summary, choices := w.perfPromotion(from, pd, summary, []string{approval.ChoiceApprove, approval.ChoiceReject})
	g := w.openGate(ctx, notify.GatePromotion, to, fmt.Sprintf("promote from %s to %s", from, to), summary,
		choices, &notify.Gate{Promotion: pd})
	d, err := w.awaitGate(ctx, g)
	if err != nil {
		return false, err
	}
	d = w.perfGateOutcome(ctx, from, d)
	if d.Action != approval.ChoiceApprove && d.Action != approval.ChoiceApproveOverride {
		w.finish(ctx, StateRejected, fmt.Sprintf("promotion to %s rejected by %s: %s", to, d.Actor, approval.OrNoReason(d.Reason)))
		return false, nil
	}
	return true, nil
}

// hooksAndSmoke runs the configured deploy hooks, then the smoke checks;
// a failure asks a human (retry, continue, roll back, abort).
func (w *rollout) hooksAndSmoke(ctx workflow.Context, name string) error {
	checkpoint := workflow.GetVersion(ctx, hookCheckpointVersion, workflow.DefaultVersion, 1) == 1
	var done []HookResult // succeeded hooks of this environment (checkpoint)
	for {
		w.enter(ctx, name, PhaseDeployHooks)
		var hooks []HookResult
		if checkpoint {
			var err error
			if done, hooks, err = w.deployHooks(ctx, name, done); err != nil {
				return err
			}
		} else if err := w.step(ctx, name, "deploy hooks from worker configuration", ActRunDeployHooks, steps.Long(), HooksInput{Environment: name, RolloutID: w.id}, &hooks); err != nil {
			return err
		}
		rep := w.report(name)
		rep.Hooks = hooks
		w.setReport(name, rep)
		if failed := failedHooks(hooks); failed != "" {
			retry, err := w.problemGateRetry(ctx, name, "deploy hook failed in "+name+": "+failed)
			if err != nil {
				return err
			}
			if retry {
				continue
			}
		}
		w.enter(ctx, name, PhaseSmoke)
		var smoke []SmokeResult
		if err := w.step(ctx, name, "smoke checks", ActRunSmokeChecks, steps.Short(), HooksInput{Environment: name, RolloutID: w.id}, &smoke); err != nil {
			return err
		}
		rep = w.report(name)
		rep.Smoke = smoke
		rep.SmokeRounds = append(rep.SmokeRounds, smokeRound(workflow.Now(ctx), smoke))
		w.setReport(name, rep)
		if failed := failedSmoke(smoke); failed != "" {
			retry, err := w.problemGateRetry(ctx, name, "smoke checks failed in "+name+": "+failed)
			if err != nil {
				return err
			}
			if retry {
				continue
			}
		}
		return nil
	}
}

// problemGateRetry also offers retry and reports whether it was chosen.
func (w *rollout) problemGateRetry(ctx workflow.Context, name, title string) (bool, error) {
	c, err := w.askProblem(ctx, name, title, []string{approval.ChoiceRetry, approval.ChoiceContinue, approval.ChoiceRollback, approval.ChoiceAbort})
	return c == approval.ChoiceRetry, err
}

func (w *rollout) askProblem(ctx workflow.Context, name, title string, choices []string) (string, error) {
	g := w.openGate(ctx, notify.GateApproval, name, title, title, choices, nil)
	d, err := w.awaitGate(ctx, g)
	if err != nil {
		return "", err
	}
	switch d.Action {
	case approval.ChoiceRollback:
		w.stop = &stopRequest{kind: approval.UpdateRollback, in: approval.ControlInput{Actor: d.Actor, Reason: d.Reason, Via: d.Via}, rollback: true}
		return "", errStopped
	case approval.ChoiceAbort:
		w.stop = &stopRequest{kind: approval.UpdateAbort, in: approval.ControlInput{Actor: d.Actor, Reason: d.Reason, Via: d.Via}}
		return "", errStopped
	}
	return d.Action, nil
}

// waitWindow holds until the environment's maintenance window is open,
// notifying before it opens. No window: returns at once.
func (w *rollout) waitWindow(ctx workflow.Context, name string) error {
	win, ok := w.windows[name]
	if !ok {
		return nil
	}
	now := workflow.Now(ctx)
	opens, closes, inside := win.at(now)
	rep := w.report(name)
	rep.WindowOpens, rep.WindowCloses, rep.WindowZone = &opens, &closes, win.loc.String()
	w.setReport(name, rep)
	if inside {
		return nil
	}
	prevPhase := w.st.Phase
	w.enter(ctx, name, PhaseWindow)
	w.setState(ctx, StateWaitingForWindow)
	w.event(ctx, name, PhaseWindow, fmt.Sprintf("waiting for the maintenance window (%s): opens %s", win.label, opens.Format(time.RFC3339)))
	if win.notifyBefore > 0 && opens.Sub(now) > win.notifyBefore {
		if err := w.sleep(ctx, opens.Add(-win.notifyBefore).Sub(now), fmt.Sprintf("%s window notice %s before it opens", name, win.notifyBefore)); err != nil {
			return err
		}
		w.notify(ctx, notify.Event{Kind: notify.KindPhase, Environment: name, Phase: PhaseWindow,
			Text: fmt.Sprintf("maintenance window for %s opens at %s (in %s)", name, opens.Format(time.RFC3339), win.notifyBefore)})
		now = workflow.Now(ctx)
	}
	if err := w.sleep(ctx, opens.Sub(now), fmt.Sprintf("%s maintenance window opens %s", name, opens.Format("2006-01-02 15:04 MST"))); err != nil {
		return err
	}
	w.setState(ctx, StateRunning)
	w.event(ctx, name, PhaseWindow, "maintenance window open until "+closes.Format(time.RFC3339))
	w.enter(ctx, name, prevPhase)
	return nil
}

// sleep is a labelled durable timer that a stop request interrupts.
func (w *rollout) sleep(ctx workflow.Context, d time.Duration, label string) error {
	if d <= 0 {
		return nil
	}
	tctx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	done := false
	f := workflow.NewTimerWithOptions(tctx, d, workflow.TimerOptions{Summary: label})
	workflow.Go(ctx, func(gctx workflow.Context) {
		_ = f.Get(gctx, nil)
		done = true
	})
	if err := workflow.Await(ctx, func() bool { return done || w.stop != nil }); err != nil {
		return err
	}
	if w.stop != nil {
		return errStopped
	}
	return nil
}

// finishStop ends the rollout after an abort or rollback: with rollback,
// every touched environment loses exactly this rollout's constraints, in
// reverse order; the notification goes out after, never before.
func (w *rollout) finishStop(ctx workflow.Context) {
	w.finishing = true
	req := w.stop
	// The stop cancelled the step in flight; what follows runs on a
	// context the stop cannot cancel.
	sctx, _ := workflow.NewDisconnectedContext(ctx)
	for _, name := range w.touched {
		if w.quarantineTruth(sctx, name) {
			w.truthAudit(sctx, name)
			if !req.rollback {
				w.recordQuarantine(sctx, name, false)
			}
		}
	}
	if !req.rollback {
		w.setState(ctx, StateAborted)
		w.enter(ctx, w.st.Environment, PhaseDone)
		text := fmt.Sprintf("aborted by %s: %s", req.in.Actor, approval.OrNoReason(req.in.Reason))
		w.event(ctx, "", PhaseDone, text)
		w.notify(ctx, notify.Event{Kind: notify.KindFailed, Text: text, Decision: &notify.Decision{Actor: req.in.Actor, Choice: "abort", Reason: req.in.Reason, Time: workflow.Now(ctx), Via: req.in.Via}})
		return
	}
	// The request cancelled the story's context chain only for the step in
	// flight; rollback runs on a context the stop cannot cancel.
	rctx, _ := workflow.NewDisconnectedContext(ctx)
	countMetric(rctx, MetricRollbacks, map[string]string{"trigger": req.kind})
	var dropped, failures []string
	pending := slices.Clone(w.touched)
	slices.Reverse(pending)
	var left *LeftRecord
	hooks := w.rollbackHooksOn(rctx)
	for {
		failures = nil
		var failedEnvs []string
		for _, name := range pending {
			w.enter(rctx, name, PhaseRollback)
			w.rollbackHooks(rctx, hooks, name, HookSetRollbackBefore)
			res, err := w.runRollback(rctx, name, false)
			w.rollbackHooks(rctx, hooks, name, HookSetRollbackAfter)
			if err != nil {
				failures = append(failures, fmt.Sprintf("%s: %v", name, err))
				failedEnvs = append(failedEnvs, name)
				continue
			}
			dropped = append(dropped, w.recordRollback(rctx, name, res)...)
			// The constraints are gone: the rows remediation removed can go back.
			if w.quarantineTruth(rctx, name) {
				w.recordQuarantine(rctx, name, true)
			}
		}
		// Histories before the rollback gate closed the run as failed here.
		if len(failures) == 0 || workflow.GetVersion(rctx, rollbackGateVersion, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
			break
		}
		retry, l := w.rollbackGate(rctx, failedEnvs, failures)
		if !retry {
			left = l
			break
		}
		pending = failedEnvs
	}
	w.st.Rollback = w.rollbackRecord(rctx, req, dropped, failures)
	w.st.Rollback.Left = left
	w.enter(rctx, w.st.Environment, PhaseDone)
	if len(failures) > 0 {
		w.st.Error = "rollback incomplete: " + strings.Join(failures, "; ")
		if left != nil {
			w.st.Error += fmt.Sprintf("; the rest left in place by %s: %s", left.Actor, approval.OrNoReason(left.Reason))
		}
		w.setState(rctx, StateFailed)
	} else {
		w.setState(rctx, StateRolledBack)
	}
	w.event(rctx, "", PhaseRollback, fmt.Sprintf("rolled back by %s (%s): %d constraints dropped", req.in.Actor, approval.OrNoReason(req.in.Reason), len(dropped)))
	w.notify(rctx, notify.Event{Kind: notify.KindRolledBack, Text: "rolled back: " + approval.OrNoReason(req.in.Reason),
		Rollback: w.rollbackInfo(req, dropped)})
}

func failedHooks(hs []HookResult) string {
	var f []string
	for _, h := range hs {
		if !h.OK {
			f = append(f, fmt.Sprintf("%s (exit %d)", h.Name, h.ExitCode))
		}
	}
	return strings.Join(f, ", ")
}

func failedSmoke(ss []SmokeResult) string {
	var f []string
	for _, s := range ss {
		if !s.OK {
			f = append(f, smokeFailure(s))
		}
	}
	return strings.Join(f, ", ")
}

func problemsText(ps []Problem) string {
	var s []string
	for _, p := range ps {
		s = append(s, fmt.Sprintf("%s: %s", p.FK, p.Message))
	}
	return strings.Join(s, "; ")
}

func totalOrphans(figs []AuditFigure) int64 {
	var n int64
	for _, f := range figs {
		n += f.Orphans
	}
	return n
}

// PlanSummary is the plan in one line for notifications: how many
// constraints, by priority.
func PlanSummary(p plan.Plan) string {
	counts := map[plan.Priority]int{}
	for _, fk := range p.ForeignKeys {
		counts[fk.Priority]++
	}
	var parts []string
	for _, pr := range []plan.Priority{plan.PriorityCritical, plan.PriorityHigh, plan.PriorityMedium, plan.PriorityLow} {
		if counts[pr] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[pr], pr))
		}
	}
	name := p.Name
	if name == "" {
		name = "plan"
	}
	return fmt.Sprintf("%s: %d foreign keys (%s)", name, len(p.ForeignKeys), strings.Join(parts, ", "))
}

// sortedFKs orders by priority, keeping plan order within a priority.
func sortedFKs(in []plan.ForeignKey) []plan.ForeignKey {
	out := slices.Clone(in)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Priority < out[j].Priority })
	return out
}

// offeredTimeoutsVersion marks histories in which an on_timeout the gate
// kind does not offer fails the input. Rollouts started before the check
// existed ran with such a rule (a timeout then applies the conservative
// choice); replaying them must not fail where they did not.
const offeredTimeoutsVersion = "input-offered-timeouts"

// unofferedTimeouts names each gate rule whose on_timeout its gate kind
// never offers, in key order.
func unofferedTimeouts(in Input) []string {
	var errs []string
	for _, k := range approval.SortedRuleKeys(in.Approval.Gates) {
		kind, _, _ := strings.Cut(k, "/")
		r := in.Approval.Gates[k]
		if offered, ok := approval.TimeoutChoices(notify.GateKind(kind)); ok && r.OnTimeout != "" && approval.Known(r.OnTimeout) &&
			!slices.Contains(offered, r.OnTimeout) {
			errs = append(errs, fmt.Sprintf("approval.gates[%s].on_timeout %q: a %s gate offers %s", k, r.OnTimeout, kind, strings.Join(offered, ", ")))
		}
	}
	return errs
}

// unknownKeysVersion marks histories in which keys of the input that no
// field takes fail the rollout before anything runs.
const unknownKeysVersion = "input-unknown-keys"

// UnknownKeysProblem names the keys of an input no field takes, and what
// each probably meant; every path that takes an input (the workflow, the
// CLI) refuses them with it.
func UnknownKeysProblem(keys []jsonkeys.Key) string {
	names := make([]string, 0, len(keys))
	for _, k := range keys {
		names = append(names, k.String())
	}
	return "unknown field(s) " + strings.Join(names, ", ") + ": fix the spelling (a key no field takes would silently mean the default)"
}

// ValidateInput checks a rollout input the way the workflow does before
// anything runs; a fleet checks its children's inputs with it at start.
func ValidateInput(in Input) error {
	w := &rollout{in: in, windows: map[string]window{}, gateScope: map[string][]string{}, gateImpact: map[string]map[string]Impact{},
		refuseUnknownKeys: len(in.UnknownKeys()) > 0, checkOfferedTimeouts: true}
	return w.validateInput()
}
