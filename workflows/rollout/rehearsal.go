package rollout

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/fkrollout/fkrollout/workflows/steps"
)

// rehearsalVersion marks histories that rehearse the rollback in the first
// environment when the input or the worker's policy asks for it.
const rehearsalVersion = "defaults-rollback-rehearsal"

// RehearsalReport is the rollback rehearsed in the first environment:
// what was dropped, added again and validated again, and how long it took.
type RehearsalReport struct {
	Dropped     []string  `json:"dropped"`
	Reapplied   []string  `json:"reapplied"`
	Revalidated []string  `json:"revalidated"`
	Started     time.Time `json:"started"`
	Ended       time.Time `json:"ended"`
}

// rehearse reports whether this rollout rehearses its rollback; the
// version is asked only when the input or the policy wants it.
func (w *rollout) rehearse(ctx workflow.Context) bool {
	want := w.in.RehearseRollback || (w.Policy != nil && w.Policy.RehearseRollback)
	return want && workflow.GetVersion(ctx, rehearsalVersion, workflow.DefaultVersion, 1) == 1
}

// rehearseRollback runs the rollback path in env (rollback hooks, drop of
// exactly this run's constraints) and then puts everything back: the
// constraints are added NOT VALID again and those that were validated are
// validated again (through the ordinary audit and remediation loop, in
// case rows written meanwhile need a decision). A rollback that fails here
// fails before production, which is the point.
func (w *rollout) rehearseRollback(ctx workflow.Context, env string) error {
	w.enter(ctx, env, PhaseRehearsal)
	rh := &RehearsalReport{Started: workflow.Now(ctx)}
	before := map[string]ConstraintState{}
	for _, fk := range w.fks {
		before[fk.Name] = w.stateIn(env, fk.Name)
	}
	w.rollbackHooks(ctx, true, env, HookSetRollbackBefore)
	var dropped []ConstraintResult
	err := w.step(ctx, env, "rehearse the rollback: drop this rollout's constraints in "+env, ActRollback, steps.DDL(),
		RollbackInput{Environment: env, RolloutID: w.id, RunID: w.runID, Plan: w.plan}, &dropped)
	w.rollbackHooks(ctx, true, env, HookSetRollbackAfter)
	if err != nil {
		return err
	}
	gone := map[string]bool{}
	for _, r := range dropped {
		if r.Action == "dropped" {
			gone[r.FK] = true
			rh.Dropped = append(rh.Dropped, r.FK)
		}
	}
	w.event(ctx, env, PhaseRehearsal, fmt.Sprintf("rollback rehearsed: %d constraints dropped; adding them again", len(rh.Dropped)))
	for _, fk := range w.fks {
		if !gone[fk.Name] {
			continue
		}
		var res ConstraintResult
		if err := w.stepFor(ctx, env, fk.Name, "re-add "+fk.Name+" NOT VALID after the rehearsal", ActApplyConstraint, steps.DDL(),
			ConstraintInput{Environment: env, RolloutID: w.id, RunID: w.runID, FK: fk}, &res); err != nil {
			return err
		}
		rh.Reapplied = append(rh.Reapplied, fk.Name)
		if s := before[fk.Name]; s == CValidated || s == CTested {
			w.setConstraintState(ctx, env, fk.Name, CApplied, 0, "re-added after the rollback rehearsal")
		}
	}
	if err := w.remediateAndValidate(ctx, env); err != nil {
		return err
	}
	for _, fk := range w.fks {
		if !gone[fk.Name] || w.stateIn(env, fk.Name) != CValidated {
			continue
		}
		rh.Revalidated = append(rh.Revalidated, fk.Name)
		if before[fk.Name] == CTested {
			w.setConstraintState(ctx, env, fk.Name, CTested, 0, "validated again after the rollback rehearsal")
		}
	}
	rh.Ended = workflow.Now(ctx)
	rep := w.report(env)
	rep.Rehearsal = rh
	w.setReport(env, rep)
	w.event(ctx, env, PhaseRehearsal, fmt.Sprintf("rollback rehearsal done in %s: %d dropped, %d added again, %d validated again",
		rh.Ended.Sub(rh.Started).Round(time.Second), len(rh.Dropped), len(rh.Reapplied), len(rh.Revalidated)))
	return nil
}

// stateIn is one constraint's state in env.
func (w *rollout) stateIn(env, fk string) ConstraintState {
	for _, c := range w.st.Constraints {
		if c.Name == fk {
			return c.Environments[env].State
		}
	}
	return ""
}
