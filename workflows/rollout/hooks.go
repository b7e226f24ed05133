package rollout

import (
	"fmt"

	"go.temporal.io/sdk/workflow"

	"github.com/fkrollout/fkrollout/workflows/steps"
)

// hookCheckpointVersion marks histories that run deploy hooks one activity
// per hook: each success is in history, so a retry or a worker crash
// resumes at the first hook not yet succeeded instead of the first hook.
const hookCheckpointVersion = "defaults-hook-checkpoint"

// deployHooks runs the environment's hooks after those in done, one
// activity each, until one fails or none is left. It returns the succeeded
// hooks (done and the new ones) and every result for the report.
func (w *rollout) deployHooks(ctx workflow.Context, env string, done []HookResult) (succeeded, all []HookResult, err error) {
	succeeded = done
	for {
		names := make([]string, 0, len(succeeded))
		for _, h := range succeeded {
			names = append(names, h.Name)
		}
		var res []HookResult
		label := fmt.Sprintf("deploy hook %d from worker configuration", len(succeeded)+1)
		if err := w.step(ctx, env, label, ActRunDeployHooks, steps.Long(), HooksInput{Environment: env, RolloutID: w.id, RunID: w.runID, Done: names, One: true}, &res); err != nil {
			return succeeded, nil, err
		}
		if len(res) == 0 {
			return succeeded, succeeded, nil
		}
		if !res[0].OK {
			return succeeded, append(append([]HookResult(nil), succeeded...), res[0]), nil
		}
		succeeded = append(succeeded, res[0])
		w.event(ctx, env, PhaseDeployHooks, fmt.Sprintf("deploy hook %s succeeded: it does not run again in this rollout", res[0].Name))
	}
}

// rollbackHooksVersion marks histories whose rollbacks run the
// environment's rollback hooks around the drop.
const rollbackHooksVersion = "defaults-rollback-hooks"

// rollbackHooksOn is asked once per rollback, on the rollback path only.
func (w *rollout) rollbackHooksOn(ctx workflow.Context) bool {
	return workflow.GetVersion(ctx, rollbackHooksVersion, workflow.DefaultVersion, 1) == 1
}

// rollbackHooks runs one of the environment's rollback hook sets (before
// or after the drop), each hook its own activity. A failing hook is
// recorded and the rollback goes on: the drop is the safety action, and
// the after hooks (start the application again) must run whatever
// happened before them.
func (w *rollout) rollbackHooks(ctx workflow.Context, on bool, env, set string) {
	if !on {
		return
	}
	var done []string
	for {
		var res []HookResult
		actx := workflow.WithActivityOptions(ctx, steps.WithSummary(steps.Long(), fmt.Sprintf("%s hook %d of %s", set, len(done)+1, env)))
		err := workflow.ExecuteActivity(actx, ActRunDeployHooks, HooksInput{Environment: env, RolloutID: w.id, RunID: w.runID, Done: done, One: true, Set: set}).Get(actx, &res)
		if err != nil {
			w.event(ctx, env, PhaseRollback, fmt.Sprintf("%s hooks could not run: %v", set, steps.RootCause(err)))
			return
		}
		if len(res) == 0 {
			return
		}
		h := res[0]
		rep := w.report(env)
		rep.RollbackHooks = append(rep.RollbackHooks, h)
		w.setReport(env, rep)
		if !h.OK {
			w.event(ctx, env, PhaseRollback, fmt.Sprintf("%s hook %s failed (exit %d); the rollback goes on: %s", set, h.Name, h.ExitCode, h.Output))
			return
		}
		w.event(ctx, env, PhaseRollback, fmt.Sprintf("%s hook %s succeeded", set, h.Name))
		done = append(done, h.Name)
	}
}
