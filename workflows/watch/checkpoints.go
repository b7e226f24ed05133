package watch

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/fkrollout/fkrollout/internal/monitor"
	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/workflows/steps"
)

// watchWithCheckpoints runs the watcher in stretches: it returns at each
// checkpoint (a rule changed state, or an hour passed), the workflow
// reports every rule to the parent, posts the day's digest when one is
// due, and starts the watcher again from where it stopped (counters and
// cursors). A decision or the end of the window ends it as before: the
// end is clean only on the watcher's own report that it watched to the
// deadline.
func watchWithCheckpoints(ctx workflow.Context, req Request, ev monitor.Evaluator, interval time.Duration, out *Outcome,
	finish func(status, reason string) (Outcome, error)) (Outcome, error) {
	deadline := out.Deadline
	prog := req.Progress
	if prog != nil {
		p := *prog
		p.State = out.State
		prog = &p
	}
	out.Digests = req.Digests
	watchStarted := req.WatchStarted
	if watchStarted.IsZero() {
		watchStarted = out.Started
	}
	hold := req.Hold
	released := false
	releaseCh := workflow.GetSignalChannel(ctx, SignalRelease)
	workflow.Go(ctx, func(g workflow.Context) {
		for releaseCh.Receive(g, nil) {
			released = true
		}
	})
	wctx, cancelWatch := workflow.WithCancel(ctx)
	defer cancelWatch()
	timer := workflow.NewTimerWithOptions(wctx, deadline.Sub(workflow.Now(ctx)), workflow.TimerOptions{
		Summary: fmt.Sprintf("monitor window of %s ends at %s", req.Environment, deadline.UTC().Format(time.RFC3339)),
	})
	windowEnded := false
	for {
		if released && len(hold) > 0 {
			out.State = monitor.Release(out.State, ev.Rules, hold)
			if prog != nil {
				prog.State = out.State
			}
			hold, released = nil, false
		}
		ev.Hold = hold
		reportEvery := DefaultReportEvery
		if len(hold) > 0 {
			reportEvery = HeldReportEvery
		}
		remaining := max(deadline.Sub(workflow.Now(ctx)), 0)
		actx := workflow.WithActivityOptions(wctx, workflow.ActivityOptions{
			ScheduleToCloseTimeout: remaining + interval + 5*time.Minute,
			StartToCloseTimeout:    remaining + interval + 2*time.Minute,
			HeartbeatTimeout:       2 * time.Minute,
			WaitForCancellation:    true,
			RetryPolicy: &temporal.RetryPolicy{InitialInterval: 10 * time.Second, BackoffCoefficient: 2, MaximumInterval: 5 * time.Minute,
				NonRetryableErrorTypes: []string{steps.ErrTypeConfig}},
			Summary: fmt.Sprintf("watch %s every %s until %s (check %d on)", req.Environment, interval, deadline.UTC().Format(time.RFC3339), out.State.Checks+1),
		})
		watch := workflow.ExecuteActivity(actx, ActMonitorWatch, WatchInput{
			RolloutID: req.RolloutID, Environment: req.Environment, Sources: req.Config.Sources, Tables: req.Tables,
			Interval: interval.String(), Deadline: deadline, Evaluator: ev, Baseline: *out.Baseline, State: out.State,
			Progress: prog, ReportEvery: reportEvery.String(), ReportOnChange: true,
		})
		var res WatchResult
		var watchErr error
		reported := false
		sel := workflow.NewSelector(ctx)
		sel.AddFuture(watch, func(f workflow.Future) { watchErr, reported = f.Get(ctx, &res), true })
		if !windowEnded {
			sel.AddFuture(timer, func(f workflow.Future) { windowEnded = f.Get(ctx, nil) == nil })
		}
		sel.Select(ctx)
		if ctx.Err() != nil {
			return Outcome{}, temporal.NewCanceledError("monitor cancelled")
		}
		if !reported && windowEnded {
			// The end of the window: clean only on the watcher's report.
			reported = awaitWatcherEnd(ctx, req.Environment, interval, watch, &res, &watchErr)
			if !reported {
				cancelWatch()
				_ = watch.Get(ctx, nil)
				return finish(OutcomeInconclusive, fmt.Sprintf("the watcher of %s did not report the end of the window; no data is not a pass", req.Environment))
			}
		}
		if watchErr != nil {
			return finish(OutcomeInconclusive, "the watcher failed: "+watchErr.Error()+"; no data is not a pass")
		}
		d := res.Decision
		out.State = res.State
		if res.Progress != nil {
			p := *res.Progress
			prog, out.Progress = &p, &p
		}
		if len(d.Rules) > 0 {
			out.Rules = d.Rules
		}
		if res.Checkpoint && !res.DeadlineReached {
			reportRules(ctx, req, res)
			postDigest(ctx, req, out, watchStarted, deadline)
			continue
		}
		reportRules(ctx, req, res)
		return finishWith(req, res, out, finish)
	}
}

// reportRules sends every rule's state to the parent (best effort: a
// parent that has finished needs no report).
func reportRules(ctx workflow.Context, req Request, res WatchResult) {
	if req.ReportTo == "" || len(res.Decision.Rules) == 0 {
		return
	}
	rep := RulesReport{Run: workflow.GetInfo(ctx).WorkflowExecution.ID, At: res.Decision.At, Checks: res.State.Checks, Rules: res.Decision.Rules}
	if err := workflow.SignalExternalWorkflow(ctx, req.ReportTo, "", SignalRules, rep).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("rule report not delivered to the rollout", "error", err)
	}
}

// postDigest posts the day's digest in the rollout's thread when one is
// due: digest n at WatchStarted + n days, before the end of the window
// (the end has its own report). out.Digests counts what was posted, and a
// resumed watch carries it, so no day is posted twice.
func postDigest(ctx workflow.Context, req Request, out *Outcome, started, deadline time.Time) {
	if req.ReportTo == "" {
		return // started by a rollout that knows no digest: it gave no thread
	}
	now := workflow.Now(ctx)
	day := int(now.Sub(started) / DigestEvery)
	if day <= out.Digests || !now.Before(deadline) {
		return
	}
	out.Digests = day
	ev := notify.Event{RolloutID: req.RolloutID, Kind: notify.KindPhase, Environment: req.Environment, Phase: "monitor-digest",
		Thread: req.Thread, Time: now, Text: DigestText(req.Environment, day, out.State.Checks, deadline, out.Rules)}
	nctx := workflow.WithActivityOptions(ctx, steps.WithSummary(steps.Notify(), fmt.Sprintf("daily digest %d of the watch of %s", day, req.Environment)))
	if err := workflow.ExecuteActivity(nctx, steps.ActNotify, ev).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("monitor digest not delivered", "day", day, "error", err)
	}
}

// DigestText is the day's digest: how far the watch is, and every rule's
// source, last figure and state.
func DigestText(env string, day, checks int, deadline time.Time, rules []monitor.RuleStatus) string {
	var b strings.Builder
	fmt.Fprintf(&b, "monitor digest, day %d of the watch of %s: %d checks so far, the watch ends %s", day, env, checks, deadline.UTC().Format(time.RFC3339))
	for _, r := range rules {
		fmt.Fprintf(&b, "\n• %s", RuleLine(r))
	}
	return b.String()
}

// RuleLine is one rule on one line: "latency-degradation [pg] ok: +1.2 ms
// (rollback above 20 ms)" or "fk-violations inconclusive: no configured
// source measures fk_violations".
func RuleLine(r monitor.RuleStatus) string {
	src := "no source"
	if len(r.Sources) > 0 {
		src = strings.Join(r.Sources, ", ")
	}
	s := fmt.Sprintf("%s [%s] %s", r.Rule, src, r.State)
	if r.HasData() {
		s += fmt.Sprintf(": %s %s%s (%s %s %s%s)", r.Series, trimFloat(r.Value), r.Unit, r.Action, r.Op, trimFloat(r.Threshold), r.Unit)
		if r.BaselineFrom != "" {
			s += ", baseline: " + r.BaselineFrom
		}
	}
	if r.Reason != "" {
		s += " — " + r.Reason
	}
	return s
}

func trimFloat(f float64) string { return fmt.Sprintf("%.4g", f) }
