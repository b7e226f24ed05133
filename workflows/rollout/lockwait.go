package rollout

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"
)

// noteLockWait puts on the timeline what a DDL step waited for before it
// asked for its locks (a long transaction it would otherwise have queued
// behind, holding up every writer) and any dead attempt's backend it
// ended. Timeline only: no command, so replay is unaffected.
func (w *rollout) noteLockWait(ctx workflow.Context, env, summary string, out any) {
	r, ok := out.(*ConstraintResult)
	if !ok || r == nil {
		return
	}
	if r.WaitedMS > 0 {
		msg := fmt.Sprintf("%s waited %s, without queueing for its locks, for conflicting transactions to end", summary, time.Duration(r.WaitedMS)*time.Millisecond)
		if r.WaitedFor != "" {
			msg += " (last: " + r.WaitedFor + ")"
		}
		w.event(ctx, env, w.st.Phase, msg)
	}
	if len(r.Terminated) > 0 {
		w.event(ctx, env, w.st.Phase, fmt.Sprintf("%s ended backend(s) %v of an earlier attempt that were still running it", summary, r.Terminated))
	}
}
