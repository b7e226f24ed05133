package rollout

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/fkrollout/fkrollout/internal/monitor"
	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/watch"
)

// Monitor outcomes.
const (
	// MonitorSkipped: monitoring disabled in the input (or a dry run).
	MonitorSkipped = "skipped"
	// MonitorPassed: the watch window ended with no rollback.
	MonitorPassed = "passed"
	// MonitorRollback: the monitor decided to roll back; the rollout drops
	// its constraints (Reason, Rule and Figures say why).
	MonitorRollback = "rollback"
)

// MonitorResult is the outcome of the watch after the last environment.
type MonitorResult struct {
	Status  string          `json:"status"`
	Reason  string          `json:"reason,omitempty"`
	Rule    string          `json:"rule,omitempty"`
	Figures []notify.Figure `json:"figures,omitempty"`
	Started time.Time       `json:"started"`
	Ended   time.Time       `json:"ended"`
	// FiredAt is when Rule fired; Deadline the absolute end of the watch.
	FiredAt  *time.Time `json:"fired_at,omitempty"`
	Deadline *time.Time `json:"deadline,omitempty"`
	// Rounds are the monitor children's outcomes and the gate decisions.
	Rounds []MonitorRound `json:"rounds,omitempty"`
	// Baseline is what the watch compares with, captured before the deploy.
	Baseline *monitor.Baseline `json:"baseline,omitempty"`
	// Rules is every rule of the matrix at the last report of the watch:
	// its source, last figure and state (ok, breach, inconclusive).
	Rules   []monitor.RuleStatus `json:"rules,omitempty"`
	RulesAt *time.Time           `json:"rules_at,omitempty"`
	// GateDeadline is when the open monitor gate times out, and what it
	// applies then.
	GateDeadline  *time.Time `json:"gate_deadline,omitempty"`
	GateOnTimeout string     `json:"gate_on_timeout,omitempty"`
}

// runMonitor is the watch after production validation: the decision
// matrix, run by the watch.Workflow child. Its contract:
//   - it returns MonitorSkipped when Input.Monitor.Enabled is false;
//   - it returns MonitorRollback with Rule/Figures when a matrix row fires,
//     and the rollout then drops its constraints through finishStop (so the
//     monitor never re-implements rollback; the notification goes after);
//   - investigate and inconclusive outcomes open a GateInvestigate gate
//     (continue / rollback); continue resumes the child with the same
//     absolute deadline, baseline and counters;
//   - a manual rollback (UpdateRollback, "critical user complaints") or an
//     abort during the watch cancels the child and returns errStopped,
//     handled the same way;
//   - history stays bounded over Input.Monitor.Duration: the parent holds
//     one child per gate round; each child holds one watcher activity and
//     one timer.
func (w *rollout) runMonitor(ctx workflow.Context, env string) (MonitorResult, error) {
	start := workflow.Now(ctx)
	if !w.in.Monitor.Enabled || w.in.DryRun {
		return MonitorResult{Status: MonitorSkipped, Reason: "monitoring disabled in the rollout input", Started: start, Ended: start}, nil
	}
	d := 24 * time.Hour
	if v, err := time.ParseDuration(w.in.Monitor.Duration); err == nil && v > 0 {
		d = v
	}
	mcfg := w.in.Monitor.config()
	deadline := start.Add(d)
	req := watch.Request{RolloutID: w.id, Environment: env, Tables: monitor.PlanTables(w.plan), Duration: d.String(), Interval: w.in.Monitor.Interval,
		Thresholds: MonitorThresholds(w.in.Thresholds, mcfg), Config: mcfg, Deadline: deadline}
	res := MonitorResult{Status: MonitorWatching, Started: start, Deadline: &deadline}
	if prev := w.st.Monitor; prev != nil && prev.Baseline != nil {
		// Captured before the deploy (captureBaseline): the watch compares
		// the system with its constraints against the system without.
		req.Baseline, res.Baseline = prev.Baseline, prev.Baseline
	}
	publish := func() {
		w.setMonitorState(res)
		w.publish(ctx)
	}
	// stopped records why the watch ended on a stop request; finishStop
	// does the rest.
	stopped := func() (MonitorResult, error) {
		now := workflow.Now(ctx)
		res.Ended, res.FiredAt, res.Figures, res.Rule = now, nil, nil, ""
		who := fmt.Sprintf("%s (%s)", w.stop.in.Actor, approval.OrNoReason(w.stop.in.Reason))
		switch {
		case !w.stop.rollback:
			res.Status, res.Reason = MonitorAborted, "rollout aborted during the watch by "+who+"; the constraints stay"
		case w.stop.kind == approval.UpdateRollback:
			res.Status, res.Rule, res.FiredAt = MonitorRollback, RuleManualRollback, &now
			res.Reason = fmt.Sprintf("manual rollback (critical user complaints) by %s at %s", who, now.UTC().Format(time.RFC3339))
		default:
			res.Status, res.Reason = MonitorRollback, fmt.Sprintf("%s with rollback during the watch by %s", w.stop.kind, who)
		}
		publish()
		return MonitorResult{}, errStopped
	}
	w.event(ctx, env, PhaseMonitor, fmt.Sprintf("watching %s with %s until %s; a manual rollback (critical user complaints) is possible until then",
		env, watch.SourcesText(mcfg.Sources), deadline.UTC().Format(time.RFC3339)))
	publish()
	if workflow.GetVersion(ctx, monitorKeepsWatchingVersion, workflow.DefaultVersion, 1) != workflow.DefaultVersion {
		return w.watchThroughGates(ctx, env, req, &res, publish, stopped)
	}

	for n := 1; ; n++ {
		if err := w.checkpoint(ctx); err != nil {
			if w.stop != nil {
				return stopped()
			}
			return MonitorResult{}, err
		}
		cctx, cancel := workflow.WithCancel(ctx)
		cctx = workflow.WithChildOptions(cctx, workflow.ChildWorkflowOptions{
			WorkflowID:          fmt.Sprintf("%s/monitor-%d", w.id, n),
			WaitForCancellation: true,
			StaticSummary:       fmt.Sprintf("monitor %s until %s (run %d)", env, req.Deadline.UTC().Format(time.RFC3339), n),
		})
		f := workflow.ExecuteChildWorkflow(cctx, watch.WorkflowName, req)
		var out watch.Outcome
		var cerr error
		done := false
		workflow.Go(ctx, func(g workflow.Context) {
			cerr = f.Get(g, &out)
			done = true
		})
		if err := workflow.Await(ctx, func() bool { return done || w.stop != nil }); err != nil {
			cancel()
			return MonitorResult{}, err
		}
		if w.stop != nil {
			// Cancel the watch and let it stop before the rollback starts.
			cancel()
			_ = workflow.Await(ctx, func() bool { return done })
			return stopped()
		}
		cancel()
		if cerr != nil {
			// Not a pass: a human decides, with the carried material.
			out = watch.Outcome{Status: watch.OutcomeInconclusive, Reason: "the monitor failed: " + cerr.Error() + "; no data is not a pass",
				Deadline: req.Deadline, Baseline: req.Baseline}
			if req.State != nil {
				out.State = *req.State
			}
		}
		if out.Deadline.IsZero() {
			out.Deadline = req.Deadline
		}
		round := monitorRound(n, out)
		now := workflow.Now(ctx)
		w.event(ctx, env, PhaseMonitor, fmt.Sprintf("monitor run %d: %s — %s", n, out.Status, out.Reason))
		res.Rule, res.Figures, res.FiredAt = out.Rule, out.NotifyFigures, round.At
		switch out.Status {
		case watch.OutcomeClean:
			res.Rounds = append(res.Rounds, round)
			res.Status, res.Reason, res.Ended = MonitorPassed, out.Reason, now
			res.Rule, res.Figures, res.FiredAt = "", nil, nil
			publish()
			return res, nil
		case watch.OutcomeRollback:
			res.Rounds = append(res.Rounds, round)
			res.Status, res.Ended = MonitorRollback, now
			res.Reason = fmt.Sprintf("matrix row %s fired at %s: %s; figures: %s", out.Rule, monitorTime(out.At, now), out.Reason, figuresText(out.NotifyFigures))
			publish()
			return res, nil
		}

		// Investigate, inconclusive (or anything unexpected): a human decides.
		res.Status, res.Reason = MonitorWaiting, out.Reason
		publish()
		what := out.Rule
		if what == "" {
			what = out.Status
		}
		summary := fmt.Sprintf("%s\nfigures: %s\nthe watch ends %s; continue resumes it with the same baseline and counters, rollback drops this rollout's constraints",
			out.Reason, figuresText(out.NotifyFigures), out.Deadline.UTC().Format(time.RFC3339))
		if len(out.Missing) > 0 {
			var miss []string
			//workflowcheck:ignore (sorted)
			for _, k := range slices.Sorted(maps.Keys(out.Missing)) {
				miss = append(miss, k+": "+out.Missing[k])
			}
			summary += "\nno data: " + strings.Join(miss, "; ")
		}
		if len(out.Uncovered) > 0 {
			summary += "\nrows no source measures: " + strings.Join(out.Uncovered, ", ")
		}
		g := w.openGate(ctx, notify.GateInvestigate, env, fmt.Sprintf("monitor of %s: %s (%s)", env, out.Status, what), summary,
			[]string{approval.ChoiceContinue, approval.ChoiceRollback}, &notify.Gate{Investigate: &notify.InvestigateData{Rule: what, Figures: out.NotifyFigures}})
		dec, err := w.awaitGate(ctx, g)
		if err != nil {
			res.Rounds = append(res.Rounds, round)
			if w.stop != nil {
				return stopped()
			}
			return MonitorResult{}, err
		}
		round.Decision = fmt.Sprintf("%s by %s", dec.Action, dec.Actor)
		res.Rounds = append(res.Rounds, round)
		now = workflow.Now(ctx)
		switch dec.Action {
		case approval.ChoiceRollback, approval.ChoiceReject:
			res.Status, res.Ended = MonitorRollback, now
			res.Reason = fmt.Sprintf("%s chose rollback at gate %s after %s at %s: %s; figures: %s", dec.Actor, g.ID, what, monitorTime(out.At, now),
				out.Reason, figuresText(out.NotifyFigures))
			publish()
			w.stop = &stopRequest{kind: approval.UpdateRollback, in: approval.ControlInput{Actor: dec.Actor, Reason: fmt.Sprintf("%s (monitor %s: %s)", approval.OrNoReason(dec.Reason), out.Status, what), Via: dec.Via}, rollback: true}
			return MonitorResult{}, errStopped
		case approval.ChoiceAbort: // the gate's timeout default
			res.Status, res.Ended = MonitorAborted, now
			res.Reason = fmt.Sprintf("gate %s: %s by %s (%s); the watch stops and the constraints stay", g.ID, dec.Action, dec.Actor, approval.OrNoReason(dec.Reason))
			publish()
			w.stop = &stopRequest{kind: approval.UpdateAbort, in: approval.ControlInput{Actor: dec.Actor, Reason: dec.Reason, Via: dec.Via}}
			return MonitorResult{}, errStopped
		}
		next := out.Resume(req)
		res.Rule, res.Figures, res.FiredAt = "", nil, nil
		if !now.Before(next.Deadline) {
			res.Status, res.Ended = MonitorPassed, now
			res.Reason = fmt.Sprintf("the watch window ended (%s) while gate %s was open; %s chose %s", next.Deadline.UTC().Format(time.RFC3339), g.ID, dec.Actor, dec.Action)
			publish()
			return res, nil
		}
		req = next
		res.Status = MonitorWatching
		res.Reason = fmt.Sprintf("%s chose %s at gate %s; watching again until %s", dec.Actor, dec.Action, g.ID, req.Deadline.UTC().Format(time.RFC3339))
		w.event(ctx, env, PhaseMonitor, res.Reason)
		publish()
	}
}

func monitorTime(at, fallback time.Time) string {
	if at.IsZero() {
		at = fallback
	}
	return at.UTC().Format(time.RFC3339)
}
