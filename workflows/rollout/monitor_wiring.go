package rollout

// Wiring of the production monitor (watch.Workflow, the child) into the
// rollout (the parent): input mapping, the monitor's part of the status,
// and what the rollback notification says when the matrix fired.

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/fkrollout/fkrollout/internal/mdtext"
	"github.com/fkrollout/fkrollout/internal/monitor"
	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/internal/report"
	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/steps"
	"github.com/fkrollout/fkrollout/workflows/watch"
)

// Monitor states while the watch runs (MonitorResult.Status); the final
// ones are MonitorSkipped, MonitorPassed and MonitorRollback.
const (
	// MonitorWatching: a monitor child is watching the environment.
	MonitorWatching = "watching"
	// MonitorWaiting: an investigate or inconclusive gate is open.
	MonitorWaiting = "waiting-for-decision"
	// MonitorAborted: the rollout was aborted during the watch; the
	// constraints stay.
	MonitorAborted = "aborted"
)

// RuleManualRollback names the decision matrix's "critical user complaints" row: not a
// metric but the rollout's manual rollback Update.
const RuleManualRollback = "critical-user-complaints"

// MonitorRound is one monitor child's outcome, as the status shows it.
type MonitorRound struct {
	Run     int             `json:"run"`
	Status  string          `json:"status"`
	Rule    string          `json:"rule,omitempty"`
	At      *time.Time      `json:"at,omitempty"`
	Reason  string          `json:"reason"`
	Figures []notify.Figure `json:"figures,omitempty"`
	Checks  int             `json:"checks"`
	// Decision is what a human chose at the gate this round opened.
	Decision string `json:"decision,omitempty"`
}

// config maps the rollout input onto the child's configuration.
func (m MonitorInput) config() watch.Config {
	return watch.Config{
		Sources:           slices.Clone(m.Sources),
		Rules:             slices.Clone(m.Rules),
		Persist:           m.Persist,
		SmokePersist:      m.SmokePersist,
		InconclusiveLimit: m.InconclusiveLimit,
		BaselinePeriod:    m.BaselinePeriod,
	}
}

// problems lists what is wrong with the monitor part of the input, so a
// bad matrix is refused when the rollout starts, not after the deploy.
func (m MonitorInput) problems(th Thresholds) []string {
	var errs []string
	// Only the relative figures: older inputs' absolute ones were never
	// checked here, and a replayed history must decide as it did.
	if err := (monitor.Thresholds{LatencyIncreasePct: th.LatencyIncreasePct, ErrorRateIncreaseRatio: th.ErrorRateIncreaseRatio}).Validate(); err != nil {
		errs = append(errs, "thresholds: "+err.Error())
	}
	switch m.BaselineAt {
	case "", BaselineAtDeploy, BaselineAtBeforeWindow:
	default:
		errs = append(errs, fmt.Sprintf("monitor.baseline_at %q: want %s (default) or %s", m.BaselineAt, BaselineAtDeploy, BaselineAtBeforeWindow))
	}
	if m.InvestigateTimeout != "" {
		if d, err := time.ParseDuration(m.InvestigateTimeout); err != nil || d <= 0 {
			errs = append(errs, fmt.Sprintf("monitor.investigate_timeout %q: want a positive duration like 4h", m.InvestigateTimeout))
		}
	}
	if m.BaselinePeriod != "" {
		if d, err := time.ParseDuration(m.BaselinePeriod); err != nil || d <= 0 {
			errs = append(errs, fmt.Sprintf("monitor.baseline_period %q: want a positive duration", m.BaselinePeriod))
		}
	}
	//workflowcheck:ignore (the input's problems are sorted before use)
	for name, v := range map[string]int{"monitor.persist": m.Persist, "monitor.smoke_persist": m.SmokePersist, "monitor.inconclusive_limit": m.InconclusiveLimit} {
		if v < 0 {
			errs = append(errs, fmt.Sprintf("%s %d: want 0 (default) or more", name, v))
		}
	}
	for i, s := range m.Sources {
		if strings.TrimSpace(s) == "" {
			errs = append(errs, fmt.Sprintf("monitor.sources[%d] is empty", i))
		}
	}
	if len(m.Rules) > 0 {
		if err := monitor.ValidateRules(m.Rules); err != nil {
			errs = append(errs, "monitor.rules: "+err.Error())
		}
	}
	return errs
}

// figuresText is the figures on one line: "latency-degradation x: 31.5 ms (threshold 20)".
func figuresText(figs []notify.Figure) string {
	if len(figs) == 0 {
		return "no figures"
	}
	parts := make([]string, 0, len(figs))
	for _, f := range figs {
		unit := ""
		if f.Unit != "" {
			unit = " " + f.Unit
		}
		parts = append(parts, fmt.Sprintf("%s: %g%s (threshold %g)", f.Name, f.Value, unit, f.Threshold))
	}
	return strings.Join(parts, "; ")
}

// monitorRound summarises one child outcome.
func monitorRound(n int, out watch.Outcome) MonitorRound {
	r := MonitorRound{Run: n, Status: out.Status, Rule: out.Rule, Reason: out.Reason, Figures: slices.Clone(out.NotifyFigures), Checks: out.State.Checks}
	if !out.At.IsZero() {
		at := out.At
		r.At = &at
	}
	return r
}

// rollbackInfo is what the rollback notification says. A rollback the
// matrix fired (or a human chose at the monitor's gate) names the matrix
// row and its figures; a manual one names who asked.
func (w *rollout) rollbackInfo(req *stopRequest, dropped []string) *notify.RollbackInfo {
	rb := &notify.RollbackInfo{Rule: req.kind, Constraints: dropped, Reason: req.in.Reason, Manual: req.kind != "monitor", Actor: req.in.Actor}
	if m := w.st.Monitor; m != nil && m.Status == MonitorRollback && m.Rule != "" {
		rb.Rule, rb.Figures = m.Rule, slices.Clone(m.Figures)
	}
	return rb
}

// rollbackRecord is what the report and the status say about a rollback.
func (w *rollout) rollbackRecord(ctx workflow.Context, req *stopRequest, dropped, failures []string) *RollbackRecord {
	info := w.rollbackInfo(req, dropped)
	rec := &RollbackRecord{Trigger: req.kind, Rule: info.Rule, Actor: req.in.Actor, Reason: req.in.Reason,
		At: workflow.Now(ctx), Figures: info.Figures, Dropped: dropped, Failures: failures}
	switch {
	case req.kind == "monitor" && rec.Rule != "":
	case req.kind == "perf":
		rec.Rule = "performance: overhead above thresholds.rollback_overhead_ms"
	case req.kind == approval.UpdateRollback:
		rec.Rule = "manual rollback (decision matrix: critical user complaints)"
	case req.kind == approval.UpdateAbort:
		rec.Rule = "abort with rollback"
	}
	return rec
}

// markdown is the monitor's line in the UI's current details.
func (m *MonitorResult) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n\n📈 monitor: **%s**", m.Status)
	if m.Deadline != nil && (m.Status == MonitorWatching || m.Status == MonitorWaiting) {
		fmt.Fprintf(&b, " until %s", m.Deadline.UTC().Format(time.RFC3339))
	}
	if m.Rule != "" {
		fmt.Fprintf(&b, " · rule `%s`", m.Rule)
		if m.FiredAt != nil {
			fmt.Fprintf(&b, " at %s", m.FiredAt.UTC().Format(time.RFC3339))
		}
	}
	if m.Reason != "" {
		fmt.Fprintf(&b, " — %s", m.Reason)
	}
	if len(m.Figures) > 0 {
		fmt.Fprintf(&b, "\n\nfigures: %s", figuresText(m.Figures))
	}
	if m.GateDeadline != nil {
		fmt.Fprintf(&b, "\n\nthe open monitor gate applies %s at %s", m.GateOnTimeout, m.GateDeadline.UTC().Format(time.RFC3339))
	}
	if len(m.Rules) > 0 {
		b.WriteString("\n\nrules:")
		for _, r := range m.Rules {
			fmt.Fprintf(&b, "\n- %s", mdtext.Markdown(watch.RuleLine(r)))
		}
	}
	return b.String()
}

// setMonitor publishes the monitor's state to the status query and the
// UI (a copy: the run keeps changing its own).
func (w *rollout) setMonitorState(res MonitorResult) {
	r := res
	r.Figures = slices.Clone(res.Figures)
	r.Rounds = slices.Clone(res.Rounds)
	r.Rules = slices.Clone(res.Rules)
	w.st.Monitor = &r
}

// PhaseBaseline is the monitor's baseline capture in the last environment,
// just before its deploy (backup, apply).
const PhaseBaseline = "monitor-baseline"

// captureBaseline measures the last environment before anything changes
// in it, so the watch compares against the system without the new
// constraints ("capture the baseline before the deploy"). A worker
// without monitor sources for the environment is a configuration error
// and fails the rollout now, before the deploy, rather than after it. Any
// other failure is reported and the monitor captures a baseline itself
// after the deploy (weaker: it cannot see the constraints' own overhead;
// the status and the timeline say so).
func (w *rollout) captureBaseline(ctx workflow.Context, env string) error {
	if !w.in.Monitor.Enabled || w.in.DryRun {
		return nil
	}
	if err := w.checkpoint(ctx); err != nil {
		return err
	}
	w.enter(ctx, env, PhaseBaseline)
	mcfg := w.in.Monitor.config()
	period := 5 * time.Minute
	if d, err := time.ParseDuration(mcfg.BaselinePeriod); err == nil && d > 0 {
		period = d
	}
	sctx, cancel := workflow.WithCancel(ctx)
	w.cancelStep = cancel
	actx := workflow.WithActivityOptions(sctx, workflow.ActivityOptions{
		// Bounded in the queue too: a worker without the monitor's
		// activities must not hold the deploy forever.
		ScheduleToCloseTimeout: 3*(period+2*time.Minute) + time.Minute,
		StartToCloseTimeout:    period + 2*time.Minute,
		HeartbeatTimeout:       time.Minute,
		RetryPolicy:            &temporal.RetryPolicy{MaximumAttempts: 3, NonRetryableErrorTypes: []string{steps.ErrTypeConfig}},
		Summary:                fmt.Sprintf("capture the %s monitor baseline (%s) over %s, before the deploy", env, watch.SourcesText(mcfg.Sources), period),
	})
	var b monitor.Baseline
	err := workflow.ExecuteActivity(actx, watch.ActMonitorCaptureBaseline, watch.BaselineInput{
		RolloutID: w.id, Environment: env, Sources: mcfg.Sources, Tables: monitor.PlanTables(w.plan), Period: period.String(),
	}).Get(actx, &b)
	cancel()
	w.cancelStep = nil
	if w.stop != nil {
		return errStopped
	}
	if steps.IsType(err, steps.ErrTypeConfig) {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("monitor baseline for %s: %v", env, steps.RootCause(err)), steps.ErrTypeConfig, err)
	}
	if err != nil {
		text := fmt.Sprintf("monitor baseline for %s not captured before the deploy (%v); the monitor will capture one after the deploy, which cannot show the constraints' own overhead", env, steps.RootCause(err))
		w.event(ctx, env, PhaseBaseline, text)
		w.notify(ctx, notify.Event{Kind: notify.KindPhase, Environment: env, Phase: PhaseBaseline, Text: text})
		return nil
	}
	w.setMonitorState(MonitorResult{Status: MonitorBaselineCaptured, Started: workflow.Now(ctx), Baseline: &b,
		Reason: fmt.Sprintf("baseline of %d series captured before the deploy", len(b.Values))})
	w.event(ctx, env, PhaseBaseline, fmt.Sprintf("monitor baseline captured before the deploy: %d series, %d without data", len(b.Values), len(b.Missing)))
	return nil
}

// When MonitorInput.BaselineAt measures the baseline.
const (
	BaselineAtDeploy       = "deploy"
	BaselineAtBeforeWindow = "before-window"
)

// baselineBeforeWindowVersion marks histories that measured the baseline
// before the maintenance window (monitor.baseline_at: before-window).
const baselineBeforeWindowVersion = "watch-baseline-before-window"

// baselineBeforeWindow reports whether the last environment's baseline is
// measured before its maintenance window rather than inside it, where the
// load is nothing like the day the watch compares it with.
func (w *rollout) baselineBeforeWindow(ctx workflow.Context) bool {
	if !w.in.Monitor.Enabled || w.in.DryRun || w.in.Monitor.BaselineAt != BaselineAtBeforeWindow {
		return false
	}
	return workflow.GetVersion(ctx, baselineBeforeWindowVersion, workflow.DefaultVersion, 1) != workflow.DefaultVersion
}

// MonitorBaselineCaptured: the baseline is in; the watch has not started.
const MonitorBaselineCaptured = "baseline-captured"

// MonitorThresholds maps the rollout input's thresholds and monitor
// configuration onto the matrix thresholds.
func MonitorThresholds(th Thresholds, cfg watch.Config) monitor.Thresholds {
	return monitor.Thresholds{
		LatencyIncreaseMS:      th.RollbackOverheadMS,
		ErrorRateIncreasePct:   th.ErrorRateIncreasePct,
		LatencyIncreasePct:     th.LatencyIncreasePct,
		ErrorRateIncreaseRatio: th.ErrorRateIncreaseRatio,
		FKViolationsPerHour:    th.FKViolationsPerHour,
		Persist:                cfg.Persist,
		SmokePersist:           cfg.SmokePersist,
	}
}

// writeMonitorRules is the report's table of the watch's rules: each
// rule's sources, last figure and state at the last check. A rule no
// source measures, or without data, is inconclusive: it was not evaluated.
func (s *Status) writeMonitorRules(b *strings.Builder) {
	m := s.Monitor
	if m == nil || len(m.Rules) == 0 {
		return
	}
	b.WriteString("\n---\n\n## Production Monitor Rules\n\n")
	if m.RulesAt != nil {
		fmt.Fprintf(b, "At the last reported check (%s). An inconclusive rule was not evaluated: no source measures it, or its source had no data.\n\n", report.Stamp(*m.RulesAt))
	}
	b.WriteString("| Rule | Metric | Sources | Last figure | State |\n|---|---|---|---|---|\n")
	for _, r := range m.Rules {
		src := "no source"
		if len(r.Sources) > 0 {
			src = strings.Join(r.Sources, ", ")
		}
		fig := "—"
		if r.HasData() {
			fig = mdtext.TableCell(fmt.Sprintf("%s: %.4g%s (%s %s %.4g%s)", r.Series, r.Value, r.Unit, r.Action, r.Op, r.Threshold, r.Unit))
			if r.BaselineFrom != "" {
				fig += mdtext.TableCell("; baseline: " + r.BaselineFrom)
			}
		}
		state := r.State
		if r.Reason != "" {
			state += ": " + r.Reason
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", mdtext.TableCell(r.Rule), mdtext.TableCell(r.Metric), mdtext.TableCell(src), fig, mdtext.TableCell(state))
	}
}

// inconclusiveNote names the rules the watch could not evaluate at its
// last check: "; 1 rule inconclusive: fk-violations".
func (m *MonitorResult) inconclusiveNote() string {
	var names []string
	for _, r := range m.Rules {
		if r.State == monitor.RuleInconclusive {
			names = append(names, r.Rule)
		}
	}
	switch len(names) {
	case 0:
		return ""
	case 1:
		return "; 1 rule inconclusive: " + names[0]
	}
	return fmt.Sprintf("; %d rules inconclusive: %s", len(names), strings.Join(names, ", "))
}
