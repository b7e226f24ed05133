package rollout

import (
	"cmp"
	"fmt"
	"strings"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/steps"
)

// How a rollout that did not complete ends. Each change is behind its own
// version so rollouts started before it replay as they ran.
const (
	// stopClosesFailedVersion: a rolled-back, aborted or incompletely
	// rolled-back rollout closes as a failed workflow with a typed,
	// non-retryable error (ErrTypeRolledBack, …) instead of "Completed".
	stopClosesFailedVersion = "durable-stop-closes-failed"
	// rollbackGateVersion: a rollback that failed after its retries opens
	// a gate (retry, or abort leaving the rest with a reason).
	rollbackGateVersion = "durable-rollback-gate"
	// cancelCleanupVersion: a cancelled workflow closes its gates, drops
	// the NOT VALID constraints this run created, keeps validated ones and
	// ends as cancelled; a step cancelled under it opens no failure gate.
	cancelCleanupVersion = "durable-cancel-cleanup"
	// gateClosedOnStopVersion: a gate a stop request cancels is closed in
	// Slack too (its buttons go away).
	gateClosedOnStopVersion = "durable-gate-closed-on-stop"
)

// keptValidated is the rollback action of a constraint a cancellation
// leaves because it is already validated (migrate.ActionKeptValidated).
const keptValidated = "kept-validated"

// runRollback drops this run's constraints in env: all of them, or with
// keepValidated only those still NOT VALID. The activity retries (DDL
// policy) before it returns an error.
func (w *rollout) runRollback(ctx workflow.Context, env string, keepValidated bool) ([]ConstraintResult, error) {
	summary := "drop this rollout's constraints in " + env
	if keepValidated {
		summary = "drop this rollout's NOT VALID constraints in " + env
	}
	var res []ConstraintResult
	actx := workflow.WithActivityOptions(ctx, steps.WithSummary(steps.DDL(), summary))
	err := workflow.ExecuteActivity(actx, ActRollback, RollbackInput{Environment: env, RolloutID: w.id, RunID: w.runID, Plan: w.plan, KeepValidated: keepValidated}).Get(actx, &res)
	return res, err
}

// recordRollback puts env's rollback results in the report and the
// constraint states; it returns what was dropped as "<env>:<constraint>".
// Only what this run dropped counts: another run's constraint
// ("not-owned"), one already gone ("absent") or a validated one a
// cancellation keeps stays as it is.
func (w *rollout) recordRollback(ctx workflow.Context, env string, res []ConstraintResult) []string {
	rep := w.report(env)
	rep.RolledBack = res
	w.setReport(env, rep)
	var dropped []string
	for _, r := range res {
		if r.Action != "dropped" {
			w.event(ctx, env, PhaseRollback, fmt.Sprintf("%s not dropped: %s", r.FK, r.Action))
			continue
		}
		w.setConstraintState(ctx, env, r.FK, CRolledBack, 0, r.Action)
		dropped = append(dropped, env+":"+r.FK)
	}
	return dropped
}

// rollbackGate asks what to do about a rollback that failed after its
// retries: retry it, or abort and leave the remaining constraints in place
// (a reason is required). A stop cannot interrupt it (the rollout is
// already stopping); its timeout applies the conservative choice.
func (w *rollout) rollbackGate(ctx workflow.Context, envs, failures []string) (retry bool, left *LeftRecord) {
	title := "rollback incomplete: " + strings.Join(failures, "; ")
	summary := title + "\nretry: run the rollback of " + strings.Join(envs, ", ") +
		" again. abort: leave the constraints it could not drop in place (give the reason)."
	g := w.openGate(ctx, notify.GateApproval, envs[0], title, summary, []string{approval.ChoiceRetry, approval.ChoiceAbort}, nil)
	w.rollbackGates = append(w.rollbackGates, g.ID)
	w.setState(ctx, StateWaitingForGate)
	g.Detail.Block = w.gateBlockFor(g)
	g.Message = w.notify(ctx, approval.OpenedEvent(g, w.st.Phase)).Ref
	_ = w.Await(ctx, g, func() bool { return false })
	if g.Status == approval.GateOpen {
		w.TimeOut(ctx, g, true)
	}
	w.setState(ctx, StateRunning)
	d := *g.Decision
	w.notify(ctx, approval.DecidedEvent(g, d, w.st.Phase))
	if d.Action == approval.ChoiceRetry {
		w.event(ctx, envs[0], PhaseRollback, fmt.Sprintf("rollback retried by %s", d.Actor))
		return true, nil
	}
	w.event(ctx, envs[0], PhaseRollback, fmt.Sprintf("rollback left incomplete by %s: %s", d.Actor, approval.OrNoReason(d.Reason)))
	return false, &LeftRecord{Actor: d.Actor, Reason: d.Reason, At: d.Time}
}

// isRollbackGate reports whether id is a gate a failed rollback opened.
func (w *rollout) isRollbackGate(id string) bool {
	for _, g := range w.rollbackGates {
		if g == id {
			return true
		}
	}
	return false
}

// stopOutcome is the error a stopped rollout closes with, so Temporal shows
// it failed; nil for a rollout that completed, or a history from before.
func (w *rollout) stopOutcome(ctx workflow.Context) error {
	var typ string
	switch w.st.State {
	case StateRolledBack:
		typ = ErrTypeRolledBack
	case StateAborted:
		typ = ErrTypeAborted
	case StateFailed:
		typ = ErrTypeRollbackIncomplete
	default:
		return nil
	}
	if workflow.GetVersion(ctx, stopClosesFailedVersion, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return nil
	}
	msg := fmt.Sprintf("rollout %s", w.st.State)
	if r := w.st.Rollback; r != nil {
		msg += fmt.Sprintf(" (%s by %s: %s): %d constraint(s) dropped", r.Trigger, r.Actor, approval.OrNoReason(r.Reason), len(r.Dropped))
	}
	if w.st.Error != "" {
		msg += "; " + w.st.Error
	}
	return temporal.NewNonRetryableApplicationError(msg, typ, nil, *w.result())
}

// cancelled reports whether the story ended because the workflow was
// cancelled, in a history that cleans up after a cancellation.
func (w *rollout) cancelled(ctx workflow.Context, err error) bool {
	if ctx.Err() == nil && !temporal.IsCanceledError(err) {
		return false
	}
	return workflow.GetVersion(ctx, cancelCleanupVersion, workflow.DefaultVersion, 1) == 1
}

// finishCancel ends a cancelled rollout: every open gate closes (its Slack
// message says so), the NOT VALID constraints this run created are dropped
// in every touched environment (a cancelled rollout does not leave
// half-done work behind), validated ones stay (proven, and dropping them
// is a rollback nobody asked for), quarantined rows stay in quarantine,
// and the workflow ends cancelled with the status in its details.
func (w *rollout) finishCancel(ctx workflow.Context) (*Status, error) {
	w.finishing = true
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	w.event(dctx, w.st.Environment, w.st.Phase, "workflow cancelled: closing open gates, dropping this run's NOT VALID constraints, keeping validated ones")
	w.closeOpenGates(dctx, "the rollout's workflow was cancelled")
	var dropped, kept, failures []string
	for i := len(w.touched) - 1; i >= 0; i-- {
		name := w.touched[i]
		w.enter(dctx, name, PhaseRollback)
		res, err := w.runRollback(dctx, name, true)
		if err != nil {
			failures = append(failures, fmt.Sprintf("%s: %v", name, steps.RootCause(err)))
			continue
		}
		dropped = append(dropped, w.recordRollback(dctx, name, res)...)
		for _, r := range res {
			if r.Action == keptValidated {
				kept = append(kept, name+":"+r.FK)
			}
		}
		if w.quarantineTruth(dctx, name) {
			w.truthAudit(dctx, name)
			w.recordQuarantine(dctx, name, false)
		}
	}
	w.st.Rollback = &RollbackRecord{Trigger: "cancel", Rule: "workflow cancelled: NOT VALID constraints of this run dropped, validated ones kept",
		Actor: "temporal", Reason: "workflow cancellation requested", At: workflow.Now(dctx), Dropped: dropped, Kept: kept, Failures: failures}
	w.enter(dctx, w.st.Environment, PhaseDone)
	text := fmt.Sprintf("cancelled: %d NOT VALID constraint(s) of this run dropped, %d validated kept", len(dropped), len(kept))
	if len(failures) > 0 {
		w.st.Error = "cleanup after cancellation incomplete: " + strings.Join(failures, "; ")
		text += "; " + w.st.Error
	}
	w.setState(dctx, StateCancelled)
	w.event(dctx, "", PhaseDone, text)
	w.notify(dctx, notify.Event{Kind: notify.KindFailed, Text: text})
	w.publishReport(dctx)
	return w.snapshot(), temporal.NewCanceledError(*w.snapshot())
}

// closeOpenGates cancels every open gate and updates its message, so no
// live button is left on a rollout that will not act on it.
func (w *rollout) closeOpenGates(ctx workflow.Context, reason string) {
	for _, g := range w.Gates {
		if g.Status == approval.GateOpen {
			w.closeGate(ctx, g, reason)
		}
	}
}

// closeGate marks g cancelled and tells its Slack message.
func (w *rollout) closeGate(ctx workflow.Context, g *approval.Gate, reason string) {
	g.Status = approval.GateCancelled
	w.event(ctx, g.Environment, "gate", fmt.Sprintf("gate %s cancelled: %s", g.ID, reason))
	d := approval.Decision{GateID: g.ID, Action: string(approval.GateCancelled), Actor: "fkrollout", Via: "workflow", Reason: reason, Time: workflow.Now(ctx)}
	w.notify(ctx, approval.DecidedEvent(g, d, w.st.Phase))
}

// errMissingSkipped: a human skipped a constraint that is missing; it is
// not in the database at all (errSkipped for the callers that only skip).
var errMissingSkipped = fmt.Errorf("missing constraint skipped: %w", errSkipped)

// missingReapplyVersion: a VALIDATE that finds its constraint gone asks a
// human, and its retry applies the constraint again before validating.
const missingReapplyVersion = "durable-missing-reapply"

// missingConstraint handles a VALIDATE whose constraint was dropped behind
// the rollout's back: retry re-applies it NOT VALID (the loop then
// validates it), skip leaves it out, rollback and abort stop. It returns
// nil when the caller should validate again.
func (w *rollout) missingConstraint(ctx workflow.Context, env, fk, summary string, in any, cause error) error {
	w.event(ctx, env, w.st.Phase, fmt.Sprintf("%s failed: %v; retry applies it again first", summary, steps.RootCause(cause)))
	c, err := w.askProblem(ctx, cmp.Or(env, "rollout"), fmt.Sprintf("%s failed: %v (retry adds it again NOT VALID, then validates)", summary, steps.RootCause(cause)),
		[]string{approval.ChoiceRetry, approval.ChoiceSkip, approval.ChoiceRollback, approval.ChoiceAbort})
	w.failureOutcome(env, c, err)
	if err != nil {
		return err
	}
	if c == approval.ChoiceSkip {
		return errMissingSkipped
	}
	var res ConstraintResult
	if err := w.stepFor(ctx, env, fk, "ADD CONSTRAINT "+fk+" NOT VALID (again: it was missing)", ActApplyConstraint, steps.DDL(), in, &res); err != nil {
		return err
	}
	w.setConstraintState(ctx, env, fk, CApplied, -1, "applied again: it was missing at VALIDATE")
	return nil
}
