package rollout

import (
	"cmp"
	"errors"
	"fmt"
	"slices"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/steps"
)

// step runs one activity between checkpoints (pause, stop). When retries
// are exhausted on a transient error, a human decides: retry, roll back or
// abort. A deterministic error (ErrTypeDeterministic) is not retried: the
// gate opens at once with PostgreSQL's reason. Plan, configuration and
// orphan errors go back to the caller.
func (w *rollout) step(ctx workflow.Context, env, summary, act string, opts workflow.ActivityOptions, in, out any) error {
	return w.stepFor(ctx, env, "", summary, act, opts, in, out)
}

// errSkipped: at a failure gate a human chose to skip the constraint the
// step was for; the caller records it as debt and goes on.
var errSkipped = errors.New("constraint skipped at a failure gate")

// deterministicGateVersion: deterministic failures open a gate at once and
// per-constraint steps offer skip.
const deterministicGateVersion = "deterministic-failure-gate"

// stepFor is step for one constraint (fk non-empty): its failure gate
// also offers skip, which returns errSkipped.
func (w *rollout) stepFor(ctx workflow.Context, env, fk, summary, act string, opts workflow.ActivityOptions, in, out any) error {
	for {
		if err := w.checkpoint(ctx); err != nil {
			return err
		}
		sctx, cancel := workflow.WithCancel(ctx)
		w.cancelStep = cancel
		actx := workflow.WithActivityOptions(sctx, steps.WithSummary(opts, summary))
		err := workflow.ExecuteActivity(actx, act, in).Get(actx, out)
		cancel()
		w.cancelStep = nil
		if err == nil {
			w.noteLockWait(ctx, env, summary, out)
			return nil
		}
		if w.stop != nil {
			return errStopped
		}
		// A cancelled workflow asks nobody: finishCancel cleans up.
		if ctx.Err() != nil && workflow.GetVersion(ctx, cancelCleanupVersion, workflow.DefaultVersion, 1) == 1 {
			return err
		}
		for _, t := range []string{steps.ErrTypeOrphans, steps.ErrTypeRemediation, steps.ErrTypePlan, steps.ErrTypeConfig} {
			if steps.IsType(err, t) {
				return err
			}
		}
		w.failed(env, fmt.Sprintf("%s: %v", summary, steps.RootCause(err)))
		if act == ActValidateConstraint && steps.IsType(err, steps.ErrTypeMissing) &&
			workflow.GetVersion(ctx, missingReapplyVersion, workflow.DefaultVersion, 1) == 1 {
			if err := w.missingConstraint(ctx, env, fk, summary, in, err); err != nil {
				return err
			}
			continue
		}
		if steps.IsType(err, steps.ErrTypeDeterministic) && workflow.GetVersion(ctx, deterministicGateVersion, workflow.DefaultVersion, 1) == 1 {
			choices := []string{approval.ChoiceRetry, approval.ChoiceRollback, approval.ChoiceAbort}
			if fk != "" {
				choices = append([]string{approval.ChoiceSkip}, choices...)
			}
			w.event(ctx, env, w.st.Phase, fmt.Sprintf("%s failed, not retried (%s): %v", summary, deterministicReason(err), steps.RootCause(err)))
			c, err := w.askProblem(ctx, cmp.Or(env, "rollout"), fmt.Sprintf("%s failed (%s, a retry would fail the same way): %v", summary, deterministicReason(err), steps.RootCause(err)), choices)
			w.failureOutcome(env, c, err)
			if err != nil {
				return err
			}
			if c == approval.ChoiceSkip {
				return errSkipped
			}
			continue
		}
		w.event(ctx, env, w.st.Phase, fmt.Sprintf("%s failed after retries: %v", summary, err))
		c, err := w.askProblem(ctx, cmp.Or(env, "rollout"), fmt.Sprintf("%s failed: %v", summary, steps.RootCause(err)), []string{approval.ChoiceRetry, approval.ChoiceRollback, approval.ChoiceAbort})
		w.failureOutcome(env, c, err)
		if err != nil {
			return err
		}
	}
}

// deterministicReason is "SQLSTATE 42703, undefined column" from the
// failure's details, or "deterministic error".
func deterministicReason(err error) string {
	var ae *temporal.ApplicationError
	var d steps.DeterministicDetail
	if !errors.As(err, &ae) || !ae.HasDetails() || ae.Details(&d) != nil || d.Reason == "" {
		return "deterministic error"
	}
	if d.SQLState == "" {
		return d.Reason
	}
	return "SQLSTATE " + d.SQLState + ", " + d.Reason
}

// checkpoint holds while paused and unwinds on a stop request.
func (w *rollout) checkpoint(ctx workflow.Context) error {
	if w.stop != nil {
		return errStopped
	}
	if w.paused {
		prev := w.st.State
		w.setState(ctx, StatePaused)
		if err := workflow.Await(ctx, func() bool { return !w.paused || w.stop != nil }); err != nil {
			return err
		}
		w.setState(ctx, prev)
	}
	if w.stop != nil {
		return errStopped
	}
	return nil
}

// enter moves to a phase of an environment.
func (w *rollout) enter(ctx workflow.Context, env, phase string) {
	if env != "" {
		w.st.Environment = env
		rep := w.report(env)
		rep.Phase = phase
		w.setReport(env, rep)
	}
	if w.st.Phase != phase {
		w.st.Phase = phase
		w.event(ctx, env, phase, "phase "+phase)
		w.markPhase(ctx, env, phase)
	}
	w.publish(ctx)
}

// markPhase closes the current phase span and opens the next one.
func (w *rollout) markPhase(ctx workflow.Context, env, phase string) {
	now := workflow.Now(ctx)
	if n := len(w.st.Phases); n > 0 && w.st.Phases[n-1].Ended.IsZero() {
		w.st.Phases[n-1].Ended = now
	}
	if phase == PhaseDone || len(w.st.Phases) >= maxPhases {
		return
	}
	w.st.Phases = append(w.st.Phases, PhaseSpan{Environment: env, Phase: phase, Started: now})
}

func (w *rollout) setState(ctx workflow.Context, s RolloutState) {
	w.st.State = s
	w.publish(ctx)
}

// publish keeps search attributes and the UI's current details in step.
// Upserts only on change: each is a history event.
func (w *rollout) publish(ctx workflow.Context) {
	var ups []temporal.SearchAttributeUpdate
	if w.pub.phase != w.st.Phase {
		ups = append(ups, SearchPhase.ValueSet(w.st.Phase))
		w.pub.phase = w.st.Phase
	}
	env := w.st.Environment
	if w.saHold != "" {
		env = w.saHold
	}
	if w.pub.env != env {
		ups = append(ups, SearchEnvironment.ValueSet(env))
		w.pub.env = env
	}
	if w.pub.state != w.st.State {
		ups = append(ups, SearchStatus.ValueSet(string(w.st.State)))
		w.pub.state = w.st.State
		if w.st.State.Terminal() {
			countMetric(ctx, MetricRolloutsFinished, map[string]string{"state": string(w.st.State)})
		}
	}
	if !w.pub.requester && w.in.Requester != "" {
		ups = append(ups, SearchRequester.ValueSet(w.in.Requester))
		w.pub.requester = true
	}
	if len(ups) > 0 {
		if err := workflow.UpsertTypedSearchAttributes(ctx, ups...); err != nil {
			workflow.GetLogger(ctx).Warn("upsert search attributes", "error", err)
		}
	}
	w.st.UpdatedAt = workflow.Now(ctx)
	snap := w.snapshot()
	workflow.SetCurrentDetails(ctx, snap.Markdown())
}

// searchAttrWorkEnvVersion marks histories in which RolloutEnvironment
// stays on the finished environment while the promotion gate is open.
const searchAttrWorkEnvVersion = "search-attributes-follow-work"

// AppendTimeline adds e to a timeline, keeping the newest entries so a
// long run's status stays small; dropped counts the entries let go.
func AppendTimeline(tl []TimelineEntry, dropped int, e TimelineEntry) ([]TimelineEntry, int) {
	tl = append(tl, e)
	if n := len(tl); n > maxTimeline {
		dropped += n - maxTimeline
		tl = slices.Clone(tl[n-maxTimeline:])
	}
	return tl, dropped
}

// event appends to the timeline (bounded).
func (w *rollout) event(ctx workflow.Context, env, phase, msg string) {
	w.st.Timeline, w.st.TimelineDropped = AppendTimeline(w.st.Timeline, w.st.TimelineDropped,
		TimelineEntry{Time: workflow.Now(ctx), Environment: env, Phase: phase, Message: msg})
	workflow.GetLogger(ctx).Info(msg, "environment", env, "phase", phase)
}

// notify sends an event through the Notify activity. It never fails the
// rollout: a notification that cannot be delivered is recorded and the
// rollout goes on. It runs on a context a stop request cannot cancel.
func (w *rollout) notify(ctx workflow.Context, ev notify.Event) notify.Receipt {
	ev.RolloutID = w.id
	ev.Thread = w.thread
	ev.Time = workflow.Now(ctx)
	nctx, _ := workflow.NewDisconnectedContext(ctx)
	nctx = workflow.WithActivityOptions(nctx, steps.WithSummary(steps.Notify(), "notify: "+string(ev.Kind)+" "+ev.Text))
	var r notify.Receipt
	if err := workflow.ExecuteActivity(nctx, steps.ActNotify, ev).Get(nctx, &r); err != nil {
		w.event(ctx, ev.Environment, ev.Phase, fmt.Sprintf("notification %s not delivered: %v", ev.Kind, err))
	}
	return r
}

// snapshot is a copy of the status for the query and the result.
func (w *rollout) snapshot() *Status {
	s := w.st
	s.Gates = make([]approval.Gate, 0, len(w.Gates))
	s.OpenGates = []approval.Gate{}
	for _, g := range w.Gates {
		s.Gates = append(s.Gates, *g)
		if g.Status == approval.GateOpen {
			s.OpenGates = append(s.OpenGates, *g)
		}
	}
	s.Decisions = slices.Clone(w.Decisions)
	if s.Decisions == nil {
		s.Decisions = []approval.Decision{}
	}
	s.Refusals = slices.Clone(w.Refusals)
	s.Policy = w.Policy.View()
	s.DroppedRefusals = w.DroppedRefusals
	s.Thread = w.thread
	return &s
}

func (w *rollout) report(env string) EnvReport {
	r, ok := w.st.Environments[env]
	if !ok {
		r = EnvReport{Name: env}
	}
	return r
}

func (w *rollout) setReport(env string, r EnvReport) { w.st.Environments[env] = r }

// failed records a failed step of env's current phase, so the report says
// "failed" or "partial" for it instead of "done". It changes no command.
func (w *rollout) failed(env, what string) {
	if env == "" {
		return
	}
	rep := w.report(env)
	rep.Failures = append(rep.Failures, PhaseFailure{Phase: w.st.Phase, What: what})
	w.setReport(env, rep)
}

// failureOutcome records what the failure gate decided for env's last
// failure: the choice, or the stop it turned into.
func (w *rollout) failureOutcome(env, choice string, err error) {
	rep := w.report(env)
	if env == "" || len(rep.Failures) == 0 {
		return
	}
	switch {
	case err == nil:
	case w.stop != nil && w.stop.rollback:
		choice = approval.ChoiceRollback
	case w.stop != nil:
		choice = approval.ChoiceAbort
	default:
		choice = "unanswered"
	}
	rep.Failures[len(rep.Failures)-1].Outcome = choice
	w.setReport(env, rep)
}

// setC sets a constraint's state in an environment; orphans < 0 keeps the
// last audited count.
func (w *rollout) setConstraintState(ctx workflow.Context, env, fk string, state ConstraintState, orphans int64, detail string) {
	for i := range w.st.Constraints {
		c := &w.st.Constraints[i]
		if c.Name != fk {
			continue
		}
		cur := c.Environments[env]
		if orphans >= 0 && state != CApplied {
			cur.Orphans = orphans
		}
		if cur.State != state {
			cur.Since = workflow.Now(ctx)
			countMetric(ctx, MetricConstraintTransitions, map[string]string{"environment": env, "state": string(state)})
		}
		cur.State, cur.Detail = state, detail
		c.Environments[env] = cur
	}
	w.publish(ctx)
}

func (w *rollout) setOrphans(env, fk string, n int64) {
	for i := range w.st.Constraints {
		c := &w.st.Constraints[i]
		if c.Name == fk {
			cur := c.Environments[env]
			cur.Orphans = n
			c.Environments[env] = cur
		}
	}
}

// inState returns the plan's constraints in one of the states, in
// priority order.
func (w *rollout) inState(env string, states ...ConstraintState) []plan.ForeignKey {
	var out []plan.ForeignKey
	for _, fk := range w.fks {
		for _, c := range w.st.Constraints {
			if c.Name == fk.Name && slices.Contains(states, c.Environments[env].State) {
				out = append(out, fk)
			}
		}
	}
	return out
}

func (w *rollout) fk(name string) (plan.ForeignKey, bool) {
	for _, fk := range w.fks {
		if fk.Name == name {
			return fk, true
		}
	}
	return plan.ForeignKey{}, false
}

func (w *rollout) hasFK(name string) bool { _, ok := w.fk(name); return ok }

func (w *rollout) envInput(env string) EnvInput {
	return EnvInput{Environment: env, RolloutID: w.id, RunID: w.runID, Plan: w.plan}
}

// Application error types a rollout closes with when it did not complete,
// so Temporal's lists, alerts and the UI's badge show it as failed. Their
// details carry the final Status (OutcomeStatus reads it back).
const (
	// ErrTypeRolledBack: the rollout dropped its constraints (monitor,
	// perf verdict, a rollback request or choice).
	ErrTypeRolledBack = "RolledBack"
	// ErrTypeAborted: stopped on request; applied constraints stay.
	ErrTypeAborted = "Aborted"
	// ErrTypeRollbackIncomplete: a rollback could not drop everything and
	// a human chose to leave the rest (Status.Rollback.Left says who, why).
	ErrTypeRollbackIncomplete = "RollbackIncomplete"
)

// OutcomeStatus reads the final Status out of the error a rollout closed
// with: a RolledBack, Aborted or RollbackIncomplete failure, or a
// cancellation. It reports false for any other error (the workflow's own
// failure, a timeout): those carry no status.
func OutcomeStatus(err error) (*Status, bool) {
	var st Status
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		switch ae.Type() {
		case ErrTypeRolledBack, ErrTypeAborted, ErrTypeRollbackIncomplete:
			if ae.HasDetails() && ae.Details(&st) == nil && st.RolloutID != "" {
				return &st, true
			}
		}
		return nil, false
	}
	var ce *temporal.CanceledError
	if errors.As(err, &ce) && ce.HasDetails() && ce.Details(&st) == nil && st.RolloutID != "" {
		return &st, true
	}
	return nil, false
}
