// Package watch is the production watch after a rollout (FKRolloutMonitor,
// a child of FKRollout) and the monthly foreign-key health check
// (FKHealthCheck, started by a Schedule). The child decides; the parent
// rollout acts: it rolls back, opens the investigate or inconclusive gate,
// and resumes the watch with the remaining deadline and the carried
// counters. See Workflow for the contract.
package watch

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/fkrollout/fkrollout/internal/monitor"
	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/workflows/steps"
)

func monitorDurations(req Request) (time.Duration, time.Duration, time.Duration, error) {
	parse := func(name, s string, def time.Duration) (time.Duration, error) {
		if s == "" {
			return def, nil
		}
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return 0, fmt.Errorf("monitor %s %q: want a positive duration like %q", name, s, def.String())
		}
		return d, nil
	}
	dur, err1 := parse("duration", req.Duration, 24*time.Hour)
	iv, err2 := parse("interval", req.Interval, 5*time.Minute)
	bp, err3 := parse("baseline_period", req.Config.BaselinePeriod, 5*time.Minute)
	return dur, iv, bp, errors.Join(err1, err2, err3)
}

// watchEvidenceVersion marks histories in which the end of the window is
// clean only when the watcher reports that it watched to the end.
const watchEvidenceVersion = "watch-needs-evidence"

// checkpointsVersion marks histories in which the watcher returns
// checkpoints: every rule's state goes to the parent (SignalRules), a
// digest goes to the rollout's thread each day, and the watch resumes
// with its cursors.
const checkpointsVersion = "watch-checkpoints"

// Workflow watches one environment after the deploy. Contract for
// the parent rollout:
//
//   - start it as a child (ChildWorkflowOptions{WorkflowID: rolloutID +
//     "/monitor-" + n, WaitForCancellation: true}); a manual rollback or
//     abort during the watch cancels the child and rolls back itself;
//   - OutcomeClean: the watch passed;
//   - OutcomeRollback: drop the rollout's constraints (the child
//     never does), report Rule, At, NotifyFigures;
//   - OutcomeInvestigate / OutcomeInconclusive: open a gate
//     (continue / rollback); on continue, start the child again with
//     outcome.MonitorResume(req) — same deadline, baseline and counters —
//     unless the deadline has passed.
//
// History stays bounded over 24 h: one baseline activity, one heartbeating
// watcher activity raced against one timer.
func Workflow(ctx workflow.Context, req Request) (Outcome, error) {
	start := workflow.Now(ctx)
	dur, interval, period, err := monitorDurations(req)
	if err != nil {
		return Outcome{}, temporal.NewNonRetryableApplicationError(err.Error(), steps.ErrTypeConfig, nil)
	}
	rules := req.Config.Rules
	if len(rules) == 0 {
		rules = monitor.DefaultMatrix(req.Thresholds)
	}
	if err := monitor.ValidateRules(rules); err != nil {
		return Outcome{}, temporal.NewNonRetryableApplicationError(err.Error(), steps.ErrTypeConfig, nil)
	}
	ev := monitor.Evaluator{Rules: rules, InconclusiveLimit: req.Config.InconclusiveLimit}
	deadline := req.Deadline
	if deadline.IsZero() {
		deadline = start.Add(dur)
	}
	out := Outcome{Deadline: deadline, Started: start, Baseline: req.Baseline}
	if req.State != nil {
		out.State = *req.State
	}
	finish := func(status, reason string) (Outcome, error) {
		out.Status, out.Ended = status, workflow.Now(ctx)
		if out.Reason == "" {
			out.Reason = reason
		}
		return out, nil
	}

	if out.Baseline == nil {
		bctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: period + 2*time.Minute,
			HeartbeatTimeout:    time.Minute,
			RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 3, NonRetryableErrorTypes: []string{steps.ErrTypeConfig}},
			Summary:             fmt.Sprintf("capture the %s baseline (%s) over %s", req.Environment, SourcesText(req.Config.Sources), period),
		})
		var b monitor.Baseline
		err := workflow.ExecuteActivity(bctx, ActMonitorCaptureBaseline, BaselineInput{
			RolloutID: req.RolloutID, Environment: req.Environment, Sources: req.Config.Sources, Tables: req.Tables, Period: period.String(),
		}).Get(ctx, &b)
		if err != nil {
			if temporal.IsCanceledError(err) {
				return Outcome{}, err
			}
			return finish(OutcomeInconclusive, "could not capture the baseline: "+err.Error())
		}
		out.Baseline = &b
	}

	remaining := deadline.Sub(workflow.Now(ctx))
	if remaining <= 0 {
		return finish(OutcomeClean, "the watch window had already ended")
	}
	if workflow.GetVersion(ctx, checkpointsVersion, workflow.DefaultVersion, 1) != workflow.DefaultVersion {
		return watchWithCheckpoints(ctx, req, ev, interval, &out, finish)
	}
	wctx, cancelWatch := workflow.WithCancel(ctx)
	defer cancelWatch()
	actx := workflow.WithActivityOptions(wctx, workflow.ActivityOptions{
		// Retries resume from the heartbeat until the window closes.
		ScheduleToCloseTimeout: remaining + interval + 5*time.Minute,
		StartToCloseTimeout:    remaining + interval + 2*time.Minute,
		HeartbeatTimeout:       2 * time.Minute,
		WaitForCancellation:    true,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: 10 * time.Second, BackoffCoefficient: 2, MaximumInterval: 5 * time.Minute,
			NonRetryableErrorTypes: []string{steps.ErrTypeConfig}},
		Summary: fmt.Sprintf("watch %s every %s until %s", req.Environment, interval, deadline.UTC().Format(time.RFC3339)),
	})
	watch := workflow.ExecuteActivity(actx, ActMonitorWatch, WatchInput{
		RolloutID: req.RolloutID, Environment: req.Environment, Sources: req.Config.Sources, Tables: req.Tables,
		Interval: interval.String(), Deadline: deadline, Evaluator: ev, Baseline: *out.Baseline, State: out.State,
	})
	timer := workflow.NewTimerWithOptions(wctx, remaining, workflow.TimerOptions{
		Summary: fmt.Sprintf("monitor window of %s ends at %s", req.Environment, deadline.UTC().Format(time.RFC3339)),
	})

	var res WatchResult
	var watchErr error
	windowEnded := false
	sel := workflow.NewSelector(ctx)
	sel.AddFuture(watch, func(f workflow.Future) { watchErr = f.Get(ctx, &res) })
	sel.AddFuture(timer, func(f workflow.Future) { windowEnded = f.Get(ctx, nil) == nil })
	sel.Select(ctx)
	if ctx.Err() != nil {
		return Outcome{}, temporal.NewCanceledError("monitor cancelled")
	}
	if windowEnded && workflow.GetVersion(ctx, watchEvidenceVersion, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		cancelWatch()
		_ = watch.Get(ctx, nil) // wait for the watcher to stop (WaitForCancellation)
		return finish(OutcomeClean, fmt.Sprintf("no matrix row fired during the watch of %s", req.Environment))
	}
	if windowEnded {
		// A clean verdict needs the watcher's own report that it watched to
		// the end: a watcher that failed every attempt, or hangs, has
		// watched nothing. It ends by itself at the deadline; past its own
		// retry budget it has failed.
		if !awaitWatcherEnd(ctx, req.Environment, interval, watch, &res, &watchErr) {
			cancelWatch()
			_ = watch.Get(ctx, nil)
			return finish(OutcomeInconclusive, fmt.Sprintf("the watcher of %s did not report the end of the window; no data is not a pass", req.Environment))
		}
	}
	if watchErr != nil {
		return finish(OutcomeInconclusive, "the watcher failed: "+watchErr.Error()+"; no data is not a pass")
	}
	out.State = res.State
	return finishWith(req, res, &out, finish)
}

// finishWith ends the watch with the watcher's last decision: the row that
// fired, clean at the deadline, otherwise inconclusive.
func finishWith(req Request, res WatchResult, out *Outcome, finish func(status, reason string) (Outcome, error)) (Outcome, error) {
	d := res.Decision
	out.Rule, out.At, out.Figures, out.Reason = d.Rule, d.At, d.Figures, d.Reason
	out.NotifyFigures, out.Missing, out.Uncovered = d.NotifyFigures(), d.Missing, d.Uncovered
	switch d.Action {
	case monitor.ActionRollback:
		return finish(OutcomeRollback, "")
	case monitor.ActionInvestigate:
		return finish(OutcomeInvestigate, "")
	case monitor.ActionInconclusive:
		return finish(OutcomeInconclusive, "")
	}
	if res.DeadlineReached {
		out.Reason = ""
		return finish(OutcomeClean, fmt.Sprintf("no matrix row fired during the watch of %s", req.Environment))
	}
	return finish(OutcomeInconclusive, fmt.Sprintf("the watcher stopped early with %q", d.Action))
}

// HealthCheckWorkflow audits every FK of the given environments (the
// "Run FK health check monthly"), NOT VALID ones included, and notifies a
// summary. A failed environment is reported, not fatal to the others.
func HealthCheckWorkflow(ctx workflow.Context, in HealthCheckInput) (HealthCheckResult, error) {
	if len(in.Environments) == 0 {
		return HealthCheckResult{}, temporal.NewNonRetryableApplicationError("health check: no environments", steps.ErrTypeConfig, nil)
	}
	review := DefaultReviewPeriod
	if in.ReviewPeriod != "" {
		d, err := time.ParseDuration(in.ReviewPeriod)
		if err != nil || d <= 0 {
			return HealthCheckResult{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf("health check: review_period %q: want a positive duration like 720h", in.ReviewPeriod), steps.ErrTypeConfig, nil)
		}
		review = d
	}
	since := workflow.Now(ctx).Add(-review)
	res := HealthCheckResult{Healthy: true}
	var lines []string
	for _, env := range in.Environments {
		actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: 6 * time.Hour,
			HeartbeatTimeout:    2 * time.Minute,
			RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 3, NonRetryableErrorTypes: []string{steps.ErrTypeConfig}},
			Summary:             "FK health check of " + env,
		})
		var rep HealthReport
		if err := workflow.ExecuteActivity(actx, ActHealthCheck, HealthEnvInput{Environment: env, Schemas: in.Schemas, StatementTimeout: in.StatementTimeout, ReviewSince: since}).Get(ctx, &rep); err != nil {
			rep = HealthReport{Environment: env, Failed: []string{err.Error()}}
		}
		res.Reports = append(res.Reports, rep)
		if !rep.Healthy {
			res.Healthy = false
		}
		lines = append(lines, healthLine(rep))
	}
	res.Summary = strings.Join(lines, "\n")
	nctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 5}, Summary: "notify the FK health check result"})
	kind := notify.KindCompleted
	if !res.Healthy {
		kind = notify.KindFailed
	}
	ev := notify.Event{RolloutID: workflow.GetInfo(ctx).WorkflowExecution.ID, Kind: kind, Phase: "health-check",
		Text: "monthly FK health check:\n" + res.Summary, Time: workflow.Now(ctx)}
	if err := workflow.ExecuteActivity(nctx, steps.ActNotify, ev).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("health check notification not delivered", "error", err)
	}
	return res, nil
}

func healthLine(r HealthReport) string {
	if len(r.Failed) > 0 && r.ForeignKeys == 0 {
		return fmt.Sprintf("%s: check failed: %s", r.Environment, strings.Join(r.Failed, "; "))
	}
	s := fmt.Sprintf("%s: %d foreign keys, %d validated", r.Environment, r.ForeignKeys, r.Validated)
	if len(r.NotValid) > 0 {
		s += fmt.Sprintf(", NOT VALID: %s", strings.Join(r.NotValid, ", "))
	}
	if len(r.WithOrphans) > 0 {
		s += fmt.Sprintf(", orphans in: %s", strings.Join(r.WithOrphans, ", "))
	}
	if len(r.Failed) > 0 {
		s += fmt.Sprintf(", not audited: %s", strings.Join(r.Failed, "; "))
	}
	if r.Healthy {
		s += " — healthy"
	}
	if v := r.Violations; v != nil {
		s += "; " + ViolationText(*v)
	}
	return s
}

// ViolationText is the constraint-violation review on one line.
func ViolationText(v monitor.ViolationReview) string {
	if !v.Reviewed {
		return "FK violations not reviewed: " + v.Note
	}
	s := fmt.Sprintf("FK violations since %s (%s): %d", v.Since.UTC().Format("2006-01-02"), strings.Join(v.Sources, ", "), v.Total)
	if v.Total > 0 {
		var parts []string
		//workflowcheck:ignore (sorted)
		for _, name := range slices.Sorted(maps.Keys(v.ByConstraint)) {
			label := name
			if label == "" {
				label = "(unnamed)"
			}
			parts = append(parts, fmt.Sprintf("%s %d", label, v.ByConstraint[name]))
		}
		s += " (" + strings.Join(parts, ", ") + ")"
	}
	if v.Note != "" {
		s += "; " + v.Note
	}
	return s
}

// awaitWatcherEnd waits, at most one interval and 10 minutes past the end
// of the window, for the watcher to report; it says whether it did.
func awaitWatcherEnd(ctx workflow.Context, env string, interval time.Duration, watch workflow.Future, res *WatchResult, watchErr *error) bool {
	gctx, cancelGrace := workflow.WithCancel(ctx)
	defer cancelGrace()
	grace := workflow.NewTimerWithOptions(gctx, interval+10*time.Minute, workflow.TimerOptions{
		Summary: fmt.Sprintf("wait for the watcher of %s to report the end of the window", env),
	})
	reported := false
	last := workflow.NewSelector(ctx)
	last.AddFuture(watch, func(f workflow.Future) { *watchErr, reported = f.Get(ctx, res), true })
	last.AddFuture(grace, func(workflow.Future) {})
	last.Select(ctx)
	return reported
}
