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
