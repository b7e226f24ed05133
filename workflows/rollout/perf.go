package rollout

// The perf phase (staging, before promotion) in the rollout: the workload runs on
// the perf environment (staging by default) once before the constraints go
// in (the baseline, right after the backup: same data, same settings) and
// once after validation and the behaviour tests; perf.Compare decides with
// the input's thresholds:
//   - pass: the promotion gate shows the table and promotion goes on as usual;
//   - warn: the promotion gate shows the warning and a plain approve is
//     refused: an approver must choose approve-override, with a reason;
//   - rollback: the environment's constraints are dropped through the
//     ordinary rollback path and the rollout ends with the reason (which
//     names the operation and its overhead).
//
// The comparison runs inside workflow.SideEffect so its result is recorded
// in history: a later change to perf.Compare cannot change the decision of
// a running rollout on replay.

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/internal/perf"
	"github.com/fkrollout/fkrollout/internal/perf/loadgen"
	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/steps"
)

// Perf activity names, choice and phases.
const (
	ActPerfRun     = "PerfRun"
	ActPerfExplain = "PerfExplain"

	PhasePerfBaseline = "perf-baseline"
	PhasePerf         = "perf"

	// PerfDefaultWorkload is the workload a worker always knows: the demo
	// schema's (sql/workload.yaml).
	PerfDefaultWorkload = "demo"

	perfDefaultWorkers  = 4
	perfDefaultDuration = "30s"
	perfDefaultWarmup   = "5s"
)

// PerfInput configures the perf phase (Input.Perf). Thresholds come from
// Input.Thresholds: MaxOverheadMS (acceptable, default 10),
// RollbackOverheadMS (default 20), ErrorRateIncreasePct (default 5).
type PerfInput struct {
	Enabled bool `json:"enabled"`
	// Workload names a workload in the worker configuration
	// (perf.workloads); default "demo", the demo schema's workload.
	Workload string `json:"workload,omitempty"`
	// WorkloadYAML is an inline workload (internal/loadgen format) used
	// instead of Workload. SQL text only; never a secret.
	WorkloadYAML string `json:"workload_yaml,omitempty"`
	// Workers is the number of concurrent clients (default 4).
	Workers int `json:"workers,omitempty"`
	// Duration measured per round, "30s" (default when Iterations is 0):
	// split over the round's slices (in rollouts started before the
	// interleaved comparison: each of the two runs).
	Duration string `json:"duration,omitempty"`
	// Iterations bounds a round (or each run) by a total operation count instead.
	Iterations int `json:"iterations,omitempty"`
	// Warmup runs the workload unmeasured first, "5s" (default; "0s" none).
	Warmup string `json:"warmup,omitempty"`
	// CreateIndexes builds (CREATE INDEX CONCURRENTLY) the indexes the
	// EXPLAIN checks recommend, before the with-FKs run. Off by default:
	// only the recommendation is reported.
	CreateIndexes bool `json:"create_indexes,omitempty"`
	// Environment to measure (default: the first environment, staging).
	Environment string `json:"environment,omitempty"`
	// Metric compared: "avg" (default, the report's table), "p50", "p95", "p99".
	Metric string `json:"metric,omitempty"`
	// Pairs of slices (without, with the constraints) per round of the
	// interleaved comparison, default 6: Duration (or Iterations) is split
	// over the round's 2×Pairs slices.
	Pairs int `json:"pairs,omitempty"`
	// MaxRounds: rounds at most (default 3); an inconclusive comparison
	// measures again until then, and a person decides with the numbers.
	MaxRounds int `json:"max_rounds,omitempty"`
}

// PerfRunInput runs the workload once (ActPerfRun → loadgen.Report).
type PerfRunInput struct {
	Environment  string `json:"environment"`
	RolloutID    string `json:"rollout_id"`
	Label        string `json:"label"` // "baseline" or "with-fks"
	Workload     string `json:"workload,omitempty"`
	WorkloadYAML string `json:"workload_yaml,omitempty"`
	Workers      int    `json:"workers"`
	Duration     string `json:"duration,omitempty"`
	Iterations   int    `json:"iterations,omitempty"`
	Warmup       string `json:"warmup,omitempty"`
}

// PerfExplainInput checks the constraints' referential lookups and the
// workload's statements (ActPerfExplain → PerfExplainResult).
type PerfExplainInput struct {
	Environment   string            `json:"environment"`
	RolloutID     string            `json:"rollout_id"`
	FKs           []plan.ForeignKey `json:"fks"`
	Workload      string            `json:"workload,omitempty"`
	WorkloadYAML  string            `json:"workload_yaml,omitempty"`
	CreateIndexes bool              `json:"create_indexes,omitempty"`
}

// PerfExplainResult is the EXPLAIN (ANALYZE, BUFFERS) findings.
type PerfExplainResult struct {
	FKChecks []perf.PlanCheck  `json:"fk_checks"`
	Queries  []perf.QueryCheck `json:"queries,omitempty"`
	// Recommended are the CREATE INDEX CONCURRENTLY statements for FK
	// checks that scan the referencing table (before any was built).
	Recommended  []string `json:"recommended,omitempty"`
	IndexesBuilt []string `json:"indexes_built,omitempty"`
}

// PerfReport is the perf phase in the status (EnvReport.Perf) and the
// final report.
type PerfReport struct {
	Environment string             `json:"environment"`
	Workload    string             `json:"workload"`
	Baseline    *loadgen.Report    `json:"baseline,omitempty"`
	WithFKs     *loadgen.Report    `json:"with_fks,omitempty"`
	Explain     *PerfExplainResult `json:"explain,omitempty"`
	// Comparison has the rows (operation, baseline, with FKs, overhead,
	// verdict), the verdict (pass / warn / rollback) and its reason.
	Comparison *perf.Comparison `json:"comparison,omitempty"`
	Verdict    string           `json:"verdict,omitempty"`
	Reason     string           `json:"reason,omitempty"`
	// Markdown is the comparison table followed by the plan findings.
	Markdown string `json:"markdown,omitempty"`
	// Override is the decision that promoted despite a warning.
	Override *approval.Decision `json:"override,omitempty"`
	// Method is "interleaved" for slices alternating without/with the
	// constraints before they are applied (perf_interleaved.go), "" for
	// a baseline run and a with-FKs run; Interleave describes its slices.
	Method     string                 `json:"method,omitempty"`
	Interleave *PerfInterleaveSummary `json:"interleave,omitempty"`
}

// perfActivity: a run lasts warm-up + duration (minutes at most); the
// activity heartbeats its progress every few seconds.
var perfActivity = workflow.ActivityOptions{StartToCloseTimeout: 2 * time.Hour, HeartbeatTimeout: time.Minute, RetryPolicy: steps.RetryPolicy()}

func (w *rollout) perfOn() bool { return w.in.Perf != nil && w.in.Perf.Enabled && !w.in.DryRun }

// perfEnv is the environment the perf phase measures.
func (w *rollout) perfEnv() string {
	if w.in.Perf != nil && w.in.Perf.Environment != "" {
		return w.in.Perf.Environment
	}
	if len(w.in.Environments) > 0 {
		return w.in.Environments[0].Name
	}
	return ""
}

func (w *rollout) perfFor(env string) bool { return w.perfOn() && env == w.perfEnv() }

// perfValidateInput names every problem of Input.Perf (nothing when off).
func (w *rollout) perfValidateInput() []string {
	var errs []string
	// An override needs a person and a reason, whether or not perf is on.
	//workflowcheck:ignore (the input's problems are sorted before use)
	for k, r := range w.in.Approval.Gates {
		if r.OnTimeout == approval.ChoiceApproveOverride {
			errs = append(errs, fmt.Sprintf("approval.gates[%s].on_timeout: %s needs a person and a reason; a timeout cannot choose it", k, approval.ChoiceApproveOverride))
		}
	}
	if w.in.Approval.Default.OnTimeout == approval.ChoiceApproveOverride {
		errs = append(errs, fmt.Sprintf("approval.default.on_timeout: %s needs a person and a reason; a timeout cannot choose it", approval.ChoiceApproveOverride))
	}
	p := w.in.Perf
	if p == nil || !p.Enabled {
		return errs
	}
	env := w.perfEnv()
	if !slices.ContainsFunc(w.in.Environments, func(e EnvironmentInput) bool { return e.Name == env }) {
		errs = append(errs, fmt.Sprintf("perf.environment %q is not one of the rollout's environments", env))
	}
	if p.Workload != "" && strings.TrimSpace(p.WorkloadYAML) != "" {
		errs = append(errs, "perf: set workload (a name from the worker configuration) or workload_yaml, not both")
	}
	if p.Workers < 0 || p.Workers > 256 {
		errs = append(errs, fmt.Sprintf("perf.workers %d: want 1..256", p.Workers))
	}
	if p.Iterations < 0 {
		errs = append(errs, fmt.Sprintf("perf.iterations %d is negative", p.Iterations))
	}
	//workflowcheck:ignore (the input's problems are sorted before use)
	for name, v := range map[string]string{"perf.duration": p.Duration, "perf.warmup": p.Warmup} {
		if v == "" {
			continue
		}
		if d, err := time.ParseDuration(v); err != nil || d < 0 || (name == "perf.duration" && d == 0) {
			errs = append(errs, fmt.Sprintf("%s %q: want a positive duration such as 30s", name, v))
		}
	}
	switch p.Metric {
	case "", "avg", "p50", "p95", "p99":
	default:
		errs = append(errs, fmt.Sprintf("perf.metric %q: want avg, p50, p95 or p99", p.Metric))
	}
	errs = append(errs, perfInterleaveValidate(p)...)
	t := w.in.Thresholds
	if t.MaxOverheadMS < 0 || t.RollbackOverheadMS < 0 {
		errs = append(errs, "thresholds: overheads must not be negative")
	}
	if t.MaxOverheadMS > 0 && t.RollbackOverheadMS > 0 && t.RollbackOverheadMS < t.MaxOverheadMS {
		errs = append(errs, fmt.Sprintf("thresholds.rollback_overhead_ms %g is below max_overhead_ms %g", t.RollbackOverheadMS, t.MaxOverheadMS))
	}
	return errs
}

func (w *rollout) perfWorkloadLabel() string {
	if strings.TrimSpace(w.in.Perf.WorkloadYAML) != "" {
		return "inline"
	}
	if w.in.Perf.Workload != "" {
		return w.in.Perf.Workload
	}
	return PerfDefaultWorkload
}

func (w *rollout) perfRunInput(env, label string) PerfRunInput {
	p := w.in.Perf
	in := PerfRunInput{Environment: env, RolloutID: w.id, Label: label, WorkloadYAML: p.WorkloadYAML,
		Workers: p.Workers, Duration: p.Duration, Iterations: p.Iterations, Warmup: p.Warmup}
	if strings.TrimSpace(p.WorkloadYAML) == "" {
		in.Workload = w.perfWorkloadLabel()
	}
	if in.Workers == 0 {
		in.Workers = perfDefaultWorkers
	}
	if in.Duration == "" && in.Iterations == 0 {
		in.Duration = perfDefaultDuration
	}
	if in.Warmup == "" {
		in.Warmup = perfDefaultWarmup
	}
	return in
}

func (w *rollout) perfThresholds() perf.Thresholds {
	t := w.in.Thresholds
	return perf.Thresholds{AcceptableMS: t.MaxOverheadMS, RollbackMS: t.RollbackOverheadMS,
		MaxErrorRateIncrease: t.ErrorRateIncreasePct / 100, Metric: w.in.Perf.Metric}
}

func (w *rollout) perfReport(env string) *PerfReport {
	if r := w.report(env).Perf; r != nil {
		return r
	}
	return &PerfReport{Environment: env, Workload: w.perfWorkloadLabel()}
}

func (w *rollout) setPerfReport(env string, p *PerfReport) {
	rep := w.report(env)
	rep.Perf = p
	w.setReport(env, rep)
}

// runPerfBaseline measures the workload before any constraint exists.
func (w *rollout) runPerfBaseline(ctx workflow.Context, env string) error {
	if !w.perfFor(env) {
		return nil
	}
	if workflow.GetVersion(ctx, perfInterleavedVersion, workflow.DefaultVersion, 1) == 1 {
		return w.runPerfInterleaved(ctx, env)
	}
	w.enter(ctx, env, PhasePerfBaseline)
	in := w.perfRunInput(env, "baseline")
	var base loadgen.Report
	if err := w.step(ctx, env, fmt.Sprintf("perf baseline: workload %s before the constraints (%s)", w.perfWorkloadLabel(), perfSize(in)),
		ActPerfRun, perfActivity, in, &base); err != nil {
		return err
	}
	pr := w.perfReport(env)
	pr.Baseline = &base
	w.setPerfReport(env, pr)
	w.event(ctx, env, PhasePerfBaseline, fmt.Sprintf("perf baseline: %d operations, %.1f/s, %.1f%% errors", base.Total.Count, base.Total.Throughput, 100*base.Total.ErrorRate))
	return nil
}

// runPerfCompare checks the plans (building the recommended indexes when
// asked), measures the workload with the constraints and decides.
func (w *rollout) runPerfCompare(ctx workflow.Context, env string) error {
	if !w.perfFor(env) {
		return nil
	}
	pr := w.perfReport(env)
	if pr.Method == perf.MethodInterleaved {
		// Measured and decided before the constraints went in.
		return w.perfExplainOnly(ctx, env, pr)
	}
	if pr.Baseline == nil {
		// The baseline runs right after the backup; without it there is
		// nothing to compare with (cannot happen in the run's order).
		return temporal.NewNonRetryableApplicationError("perf: no baseline was measured in "+env, steps.ErrTypePlan, nil)
	}
	w.enter(ctx, env, PhasePerf)
	ex, err := w.perfExplain(ctx, env)
	if err != nil {
		return err
	}
	pr.Explain = &ex
	w.setPerfReport(env, pr)

	in := w.perfRunInput(env, "with-fks")
	var with loadgen.Report
	if err := w.step(ctx, env, fmt.Sprintf("perf with FKs: workload %s after validation (%s)", w.perfWorkloadLabel(), perfSize(in)),
		ActPerfRun, perfActivity, in, &with); err != nil {
		return err
	}
	pr.WithFKs = &with
	base, th := *pr.Baseline, w.perfThresholds()
	var cmp perf.Comparison
	if err := workflow.SideEffect(ctx, func(workflow.Context) any { return perf.Compare(base, with, th) }).Get(&cmp); err != nil {
		return fmt.Errorf("perf comparison: %w", err)
	}
	pr.Comparison, pr.Verdict, pr.Reason = &cmp, cmp.Verdict, cmp.Reason
	pr.Markdown = perf.Report{Comparison: cmp, FKChecks: ex.FKChecks, Queries: ex.Queries, IndexesBuilt: ex.IndexesBuilt}.Markdown()
	w.setPerfReport(env, pr)
	w.event(ctx, env, PhasePerf, fmt.Sprintf("perf verdict %s: %s", cmp.Verdict, cmp.Reason))
	w.notify(ctx, notify.Event{Kind: notify.KindPhase, Environment: env, Phase: PhasePerf, Text: fmt.Sprintf("perf in %s: %s — %s", env, cmp.Verdict, cmp.Reason)})

	switch cmp.Verdict {
	case perf.Rollback:
		reason := fmt.Sprintf("perf phase in %s: %s", env, cmp.Reason)
		w.stop = &stopRequest{kind: "perf", in: approval.ControlInput{Actor: "perf", Reason: reason, Via: "perf"}, rollback: true}
		return errStopped
	case perf.Warn:
		if w.perfPromotionFollows(env) {
			// The promotion gate carries the warning and wants an override.
			return nil
		}
		// No promotion follows: ask now whether to keep the constraints.
		title := fmt.Sprintf("perf warning in %s: %s", env, cmp.Reason)
		d, err := w.askProblem(ctx, env, title, []string{approval.ChoiceApproveOverride, approval.ChoiceRollback, approval.ChoiceAbort})
		if err != nil {
			return err
		}
		if d == approval.ChoiceApproveOverride {
			w.perfRecordOverride(ctx, env, w.lastDecision(approval.ChoiceApproveOverride))
		}
	}
	return nil
}

// perfPromotionFollows: a promotion gate comes after env.
func (w *rollout) perfPromotionFollows(env string) bool {
	for i, e := range w.in.Environments {
		if e.Name == env {
			return i < len(w.in.Environments)-1
		}
	}
	return false
}

// perfWarningOpen: env's perf verdict is warn and nobody overrode it.
func (w *rollout) perfWarningOpen(env string) bool {
	p := w.report(env).Perf
	return p != nil && (p.Verdict == perf.Warn || p.Verdict == perf.Inconclusive) && p.Override == nil
}

// perfPromotion adds the perf table to the promotion gate between from and
// the next environment; with an open warning the plain approve is replaced
// by approve-override.
func (w *rollout) perfPromotion(from string, pd *notify.PromotionData, summary string, choices []string) (string, []string) {
	p := w.report(from).Perf
	if p == nil || p.Comparison == nil {
		return summary, choices
	}
	for _, r := range p.Comparison.Rows {
		row := notify.PerfRow{Operation: r.Operation, BaselineMS: r.BaselineMS, WithFKsMS: r.WithFKsMS, Acceptable: r.Verdict == perf.RowAcceptable}
		if p.Comparison.Method == perf.MethodInterleaved {
			row.Verdict, row.Overhead = r.Verdict, r.IntervalText()
		}
		pd.Perf = append(pd.Perf, row)
	}
	for _, c := range p.Explain.orEmpty().FKChecks {
		if c.Recommendation != "" {
			pd.Warnings = append(pd.Warnings, fmt.Sprintf("%s: referential check scans %s; recommended: %s", c.FK, c.Table, c.Recommendation))
		}
	}
	summary += fmt.Sprintf("\nperf (%s): %s — %s", p.Workload, p.Verdict, p.Reason)
	if w.perfWarningOpen(from) {
		pd.Warnings = append(pd.Warnings, "perf "+perfVerdictWord(p.Verdict)+": "+p.Reason+" — promotion needs "+approval.ChoiceApproveOverride+" with a reason")
		out := []string{}
		for _, c := range choices {
			if c == approval.ChoiceApprove {
				out = append(out, approval.ChoiceApproveOverride)
				continue
			}
			out = append(out, c)
		}
		choices = out
	}
	return summary, choices
}

func (e *PerfExplainResult) orEmpty() PerfExplainResult {
	if e == nil {
		return PerfExplainResult{}
	}
	return *e
}

// perfValidateDecision is the perf part of the decide validator: a plain
// approve is refused while a perf warning is open, and an override needs a
// reason.
func (w *rollout) perfValidateDecision(g *approval.Gate, in approval.DecisionInput) error {
	if g.Kind == notify.GatePromotion && in.Choice == approval.ChoiceApprove {
		if from := w.perfFromOf(g.Environment); from != "" && w.perfWarningOpen(from) {
			return fmt.Errorf("perf %s open for %s (%s): a plain approve is refused; choose %q with a reason to promote despite it, or reject",
				perfVerdictWord(w.report(from).Perf.Verdict), from, w.report(from).Perf.Reason, approval.ChoiceApproveOverride)
		}
	}
	if in.Choice == approval.ChoiceApproveOverride && strings.TrimSpace(in.Reason) == "" {
		return fmt.Errorf("%s on gate %s needs a reason (why the perf warning is acceptable)", approval.ChoiceApproveOverride, g.ID)
	}
	return nil
}

// perfFromOf is the environment promoted from into to.
func (w *rollout) perfFromOf(to string) string {
	for i, e := range w.in.Environments {
		if e.Name == to && i > 0 {
			return w.in.Environments[i-1].Name
		}
	}
	return ""
}

// perfGateOutcome applies the perf rules to a promotion decision: an
// override is recorded; a timeout that would approve while a perf warning
// is open rejects instead, since only a person can override a warning.
func (w *rollout) perfGateOutcome(ctx workflow.Context, from string, d approval.Decision) approval.Decision {
	switch {
	case d.Action == approval.ChoiceApproveOverride:
		w.perfRecordOverride(ctx, from, d)
	case d.Action == approval.ChoiceApprove && d.Actor == "timeout" && w.perfWarningOpen(from):
		d.Action = approval.ChoiceReject
		d.Reason += "; a perf warning is open and only an approver's " + approval.ChoiceApproveOverride + " can promote"
		w.event(ctx, from, PhasePerf, "promotion timed out with a perf warning open: rejected")
	}
	return d
}

// perfRecordOverride records who overrode env's perf warning.
func (w *rollout) perfRecordOverride(ctx workflow.Context, env string, d approval.Decision) {
	p := w.report(env).Perf
	if p == nil || (p.Verdict != perf.Warn && p.Verdict != perf.Inconclusive) {
		return
	}
	p.Override = &d
	w.setPerfReport(env, p)
	w.event(ctx, env, PhasePerf, fmt.Sprintf("perf warning overridden by %s: %s", d.Actor, approval.OrNoReason(d.Reason)))
}

func (w *rollout) lastDecision(action string) approval.Decision {
	for i := len(w.Decisions) - 1; i >= 0; i-- {
		if w.Decisions[i].Action == action {
			return w.Decisions[i]
		}
	}
	return approval.Decision{Action: action}
}

func perfSize(in PerfRunInput) string {
	s := fmt.Sprintf("%d workers", in.Workers)
	if in.Iterations > 0 {
		return s + fmt.Sprintf(", %d iterations", in.Iterations)
	}
	return s + ", " + in.Duration
}

// perfMarkdown is the perf line of Status.Markdown (the UI's current
// details): the verdict per measured environment.
func (s *Status) perfMarkdown() string {
	var b strings.Builder
	for _, env := range s.EnvironmentOrder {
		p := s.Environments[env].Perf
		if p == nil {
			continue
		}
		switch {
		case p.Verdict == "" && p.Comparison != nil && p.Interleave != nil:
			fmt.Fprintf(&b, "\nperf `%s`: measuring again after round %d (%s)", env, p.Interleave.Rounds, p.Comparison.Reason)
		case p.Verdict == "" && p.Baseline != nil:
			fmt.Fprintf(&b, "\nperf `%s`: baseline measured (%d operations)", env, p.Baseline.Total.Count)
		case (p.Verdict == perf.Warn || p.Verdict == perf.Inconclusive) && p.Override == nil:
			fmt.Fprintf(&b, "\n⚠️ perf `%s` %s: %s — promotion needs %s", env, perfVerdictWord(p.Verdict), p.Reason, approval.ChoiceApproveOverride)
		case p.Verdict == perf.Warn || p.Verdict == perf.Inconclusive:
			fmt.Fprintf(&b, "\n⚠️ perf `%s`: %s — overridden by %s", env, p.Reason, p.Override.Actor)
		case p.Verdict == perf.Rollback:
			fmt.Fprintf(&b, "\n❌ perf `%s`: %s", env, p.Reason)
		case p.Verdict != "":
			fmt.Fprintf(&b, "\n✅ perf `%s`: %s", env, p.Reason)
		}
	}
	return b.String()
}

// perfExplain runs the EXPLAIN (ANALYZE, BUFFERS) checks of the referential
// lookups and the workload, building the recommended indexes when asked.
func (w *rollout) perfExplain(ctx workflow.Context, env string) (PerfExplainResult, error) {
	var ex PerfExplainResult
	summary := fmt.Sprintf("EXPLAIN (ANALYZE, BUFFERS) of %d referential checks and the workload", len(w.fks))
	if w.in.Perf.CreateIndexes {
		summary += "; build recommended indexes"
	}
	err := w.step(ctx, env, summary, ActPerfExplain, perfActivity, PerfExplainInput{Environment: env, RolloutID: w.id, FKs: w.fks,
		Workload: w.perfRunInput(env, "").Workload, WorkloadYAML: w.in.Perf.WorkloadYAML, CreateIndexes: w.in.Perf.CreateIndexes}, &ex)
	return ex, err
}
