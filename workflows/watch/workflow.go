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
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/monitor"
	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/workflows/steps"
)

// Registered names.
const (
	WorkflowName            = "FKRolloutMonitor"
	HealthCheckWorkflowName = "FKHealthCheck"

	ActMonitorCaptureBaseline = "MonitorCaptureBaseline"
	ActMonitorWatch           = "MonitorWatch"
	ActHealthCheck            = "HealthCheck"
)

// ActivityNames lists the activities the monitor and health check
// workflows schedule.
func ActivityNames() []string {
	return []string{ActMonitorCaptureBaseline, ActMonitorWatch, ActHealthCheck}
}

// Monitor outcome statuses.
const (
	// OutcomeClean: the window ended and no row fired.
	OutcomeClean = "clean"
	// OutcomeRollback: a rollback row fired; the parent drops the
	// rollout's constraints.
	OutcomeRollback = "rollback"
	// OutcomeInvestigate: an investigate row fired; the parent opens
	// an investigate gate (continue → resume the watch, rollback → roll back).
	OutcomeInvestigate = "investigate"
	// OutcomeInconclusive: data missing for InconclusiveLimit checks,
	// or the watcher itself failed; the parent opens a gate. Never a pass.
	OutcomeInconclusive = "inconclusive"
)

// Config is how the watch runs: the rollout maps its input's monitor
// section onto it (rollout.MonitorInput).
type Config struct {
	// Sources are worker-configured monitor source names (monitor.Config);
	// empty: every source configured for the environment. A worker with
	// none fails the watcher with a ConfigError, which the workflow reports
	// as inconclusive (a gate), never as a pass.
	Sources []string `json:"sources,omitempty"`
	// Rules replace the default decision matrix when set.
	Rules []monitor.Rule `json:"rules,omitempty"`
	// Persist and SmokePersist tune the default matrix (defaults 3 and 2).
	Persist      int `json:"persist,omitempty"`
	SmokePersist int `json:"smoke_persist,omitempty"`
	// InconclusiveLimit consecutive checks without data open a gate (default 3).
	InconclusiveLimit int `json:"inconclusive_limit,omitempty"`
	// BaselinePeriod is how long the baseline is measured ("5m").
	BaselinePeriod string `json:"baseline_period,omitempty"`
}

// Request starts (or resumes) a watch.
type Request struct {
	RolloutID   string             `json:"rollout_id"`
	Environment string             `json:"environment"`
	Tables      []plan.TableName   `json:"tables,omitempty"`
	Duration    string             `json:"duration,omitempty"` // default "24h"
	Interval    string             `json:"interval,omitempty"` // default "5m"
	Thresholds  monitor.Thresholds `json:"thresholds"`
	Config      Config             `json:"config"`
	// Deadline, when set, is the absolute end of the watch (a resumed
	// watch keeps the original end); otherwise start + Duration.
	Deadline time.Time `json:"deadline,omitempty"`
	// Baseline, when set, is reused (resume, or captured before the deploy
	// by the parent); otherwise the child captures one first.
	Baseline *monitor.Baseline `json:"baseline,omitempty"`
	// State carries the evaluator's counters into a resumed watch.
	State *monitor.State `json:"state,omitempty"`
}

// Outcome is what the watch decided.
type Outcome struct {
	Status string `json:"status"`
	// Rule that fired, when it fired (At), its figures, and why.
	Rule    string             `json:"rule,omitempty"`
	At      time.Time          `json:"at,omitempty"`
	Figures map[string]float64 `json:"figures,omitempty"`
	// NotifyFigures are the same figures for notify.RollbackInfo /
	// notify.InvestigateData / MonitorResult.Figures.
	NotifyFigures []notify.Figure   `json:"notify_figures,omitempty"`
	Reason        string            `json:"reason"`
	Missing       map[string]string `json:"missing,omitempty"`
	// Uncovered lists matrix rows no chosen source measures.
	Uncovered []string `json:"uncovered,omitempty"`
	// Resume material: pass back in Request to continue the watch.
	Baseline *monitor.Baseline `json:"baseline,omitempty"`
	State    monitor.State     `json:"state"`
	Deadline time.Time         `json:"deadline"`
	Started  time.Time         `json:"started"`
	Ended    time.Time         `json:"ended"`
}

// Resume returns the request that continues the watch after a
// human chose "continue" at an investigate or inconclusive gate: same
// deadline, same baseline, counters carried.
func (o Outcome) Resume(prev Request) Request {
	next := prev
	next.Deadline = o.Deadline
	next.Baseline = o.Baseline
	st := o.State
	next.State = &st
	return next
}

// BaselineInput asks the worker for a baseline.
type BaselineInput struct {
	RolloutID   string           `json:"rollout_id"`
	Environment string           `json:"environment"`
	Sources     []string         `json:"sources"`
	Tables      []plan.TableName `json:"tables,omitempty"`
	Period      string           `json:"period"`
}

// WatchInput runs the watcher until a decision or the deadline.
type WatchInput struct {
	RolloutID   string            `json:"rollout_id"`
	Environment string            `json:"environment"`
	Sources     []string          `json:"sources"`
	Tables      []plan.TableName  `json:"tables,omitempty"`
	Interval    string            `json:"interval"`
	Deadline    time.Time         `json:"deadline"`
	Evaluator   monitor.Evaluator `json:"evaluator"`
	Baseline    monitor.Baseline  `json:"baseline"`
	State       monitor.State     `json:"state"`
}

// WatchResult is the watcher's last decision: not "continue", or
// "continue" with DeadlineReached.
type WatchResult = monitor.WatchResult

func SourcesText(names []string) string {
	if len(names) == 0 {
		return "the environment's sources"
	}
	return strings.Join(names, ", ")
}

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
	if windowEnded {
		cancelWatch()
		_ = watch.Get(ctx, nil) // wait for the watcher to stop (WaitForCancellation)
		return finish(OutcomeClean, fmt.Sprintf("no matrix row fired during the watch of %s", req.Environment))
	}
	if watchErr != nil {
		return finish(OutcomeInconclusive, "the watcher failed: "+watchErr.Error()+"; no data is not a pass")
	}
	d := res.Decision
	out.State = res.State
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

// HealthCheckInput is the monthly FK health check.
type HealthCheckInput struct {
	// Environments to audit (worker environment names).
	Environments []string `json:"environments"`
	// Schemas (default: every user schema).
	Schemas []string `json:"schemas,omitempty"`
	// StatementTimeout per orphan count ("10m"; default none).
	StatementTimeout string `json:"statement_timeout,omitempty"`
}

// HealthEnvInput audits one environment.
type HealthEnvInput struct {
	Environment      string   `json:"environment"`
	Schemas          []string `json:"schemas,omitempty"`
	StatementTimeout string   `json:"statement_timeout,omitempty"`
}

// HealthReport is one environment's health.
type HealthReport struct {
	Environment string             `json:"environment"`
	TakenAt     time.Time          `json:"taken_at"`
	ForeignKeys int                `json:"foreign_keys"`
	Validated   int                `json:"validated"`
	NotValid    []string           `json:"not_valid,omitempty"`
	WithOrphans []string           `json:"with_orphans,omitempty"`
	Failed      []string           `json:"failed,omitempty"`
	FKs         []monitor.HealthFK `json:"fks"`
	Healthy     bool               `json:"healthy"`
}

// HealthCheckResult is the whole check.
type HealthCheckResult struct {
	Reports []HealthReport `json:"reports"`
	Healthy bool           `json:"healthy"`
	Summary string         `json:"summary"`
}

// HealthCheckWorkflow audits every FK of the given environments (the
// "Run FK health check monthly"), NOT VALID ones included, and notifies a
// summary. A failed environment is reported, not fatal to the others.
func HealthCheckWorkflow(ctx workflow.Context, in HealthCheckInput) (HealthCheckResult, error) {
	if len(in.Environments) == 0 {
		return HealthCheckResult{}, temporal.NewNonRetryableApplicationError("health check: no environments", steps.ErrTypeConfig, nil)
	}
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
		if err := workflow.ExecuteActivity(actx, ActHealthCheck, HealthEnvInput{Environment: env, Schemas: in.Schemas, StatementTimeout: in.StatementTimeout}).Get(ctx, &rep); err != nil {
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
	return s
}
