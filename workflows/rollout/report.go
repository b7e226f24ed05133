package rollout

import (
	"cmp"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/fkrollout/fkrollout/internal/mdtext"
	"github.com/fkrollout/fkrollout/internal/perf"
	"github.com/fkrollout/fkrollout/internal/report"
	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/steps"
)

// QueryReport returns the completion report (Status.Report) as markdown.
// It answers while the rollout runs too: the report then shows the phases
// so far.
const QueryReport = "report"

// Defaults of the acceptance figures, used as the report's targets
// when the input leaves them out (the same defaults the perf phase and the
// monitor apply).
const (
	defaultMaxOverheadMS       = 10
	defaultRollbackOverheadMS  = 20
	defaultErrorRateIncrease   = 5
	defaultFKViolationsPerHour = 1
	// migrationTargetSeconds is the target "Migration Duration < 60 sec".
	migrationTargetSeconds = 60
)

// reportVersion guards the PublishReport step: histories recorded before
// it existed replay without it.
const reportVersion = "completion-report"

// publishReport hands the final report to the worker (file + notifier).
// It never changes the outcome: a report that cannot be written is a
// timeline line.
func (w *rollout) publishReport(ctx workflow.Context) {
	if workflow.GetVersion(ctx, reportVersion, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return
	}
	rctx, _ := workflow.NewDisconnectedContext(ctx)
	rctx = workflow.WithActivityOptions(rctx, steps.WithSummary(steps.Notify(), "completion report: "+string(w.st.State)))
	snap := w.snapshot()
	var res ReportResult
	in := ReportInput{RolloutID: w.id, State: string(snap.State), Markdown: snap.Report(), Thread: w.thread}
	if err := workflow.ExecuteActivity(rctx, ActPublishReport, in).Get(rctx, &res); err != nil {
		w.event(ctx, "", w.st.Phase, fmt.Sprintf("completion report not written: %v", err))
		return
	}
	w.st.ReportPath = res.Path
	msg := "completion report written to " + res.Path
	if res.PostError != "" {
		msg += " (not posted: " + res.PostError + ")"
	}
	w.event(ctx, "", w.st.Phase, msg)
}

// Report renders the completion report in the layout of a rollout status
// report: per phase status and duration, the database metrics table,
// critical invariants, the perf table, decisions, the success metrics with
// target, actual and status, and the rollback with the rule that fired.
// It is a pure function of the status, so the query, `fkrollout report`, the
// file the worker writes and the Slack post are the same text.
//
// Every string a person or a plan supplied (plan name, ids, actors, reasons,
// environment, constraint and table names, error texts) is escaped with
// md or cell on its way in, so it reads as text wherever the markdown is
// rendered: no link, image, HTML, emphasis or extra table cell.
func (s *Status) Report() string {
	var b strings.Builder
	icon, label := report.Badge(string(s.State))
	title := "FK Rollout"
	if s.PlanName != "" {
		title += " " + report.Text(s.PlanName)
	}
	fmt.Fprintf(&b, "# %s %s — %s\n\n", icon, title, label)
	s.writeRunbookHeader(&b)
	fmt.Fprintf(&b, "**Rollout:** %s  \n", report.Text(s.RolloutID))
	fmt.Fprintf(&b, "**Requester:** %s  \n", report.OrDash(report.Text(s.Requester)))
	fmt.Fprintf(&b, "**Environments:** %s  \n", report.JoinText(s.EnvironmentOrder, " → "))
	fmt.Fprintf(&b, "**Started:** %s  \n", report.Stamp(s.StartedAt))
	if s.State.Terminal() {
		fmt.Fprintf(&b, "**Finished:** %s (%s)  \n", report.Stamp(s.UpdatedAt), report.Span(s.StartedAt, s.UpdatedAt))
	} else {
		fmt.Fprintf(&b, "**Now:** phase %s in %s (running for %s)  \n", mdtext.Code(s.Phase), report.OrDash(report.Text(s.Environment)), report.Span(s.StartedAt, s.UpdatedAt))
	}
	fmt.Fprintf(&b, "**Status:** %s **%s**\n", icon, label)
	if s.DryRun {
		b.WriteString("\n_Dry run: checks, statistics and the audit only; nothing was changed._\n")
	}
	if s.Error != "" {
		fmt.Fprintf(&b, "\n**Error:** %s\n", report.Text(s.Error))
	}

	b.WriteString("\n---\n\n## Phases\n\n")
	s.writePhases(&b)
	for _, env := range s.EnvironmentOrder {
		s.writeAudit(&b, env)
		s.writeQuarantine(&b, env)
	}

	b.WriteString("\n---\n\n## Current State\n")
	for _, env := range s.EnvironmentOrder {
		s.writeMetrics(&b, env)
	}
	s.writeInvariants(&b)

	s.writePerf(&b)
	s.writeDecisions(&b)
	s.writeSuccessMetrics(&b)
	s.writeMonitorRules(&b)
	s.writeRollback(&b)
	s.writeRisks(&b)
	s.writeArtefacts(&b)

	fmt.Fprintf(&b, "\n---\n\n*Report generated: %s*  \n*Rollout ID: %s*  \n*Status: %s*\n", report.Stamp(s.UpdatedAt), report.Text(s.RolloutID), label)
	return b.String()
}

// phaseTotal is every span of one (environment, phase) added up.
type phaseTotal struct {
	env, phase string
	spent      time.Duration
	entered    int
	open       bool
}

func (s *Status) phaseTotals() []phaseTotal {
	var out []phaseTotal
	index := map[string]int{}
	for _, p := range s.Phases {
		key := p.Environment + "\x00" + p.Phase
		i, ok := index[key]
		if !ok {
			i = len(out)
			index[key] = i
			out = append(out, phaseTotal{env: p.Environment, phase: p.Phase})
		}
		end := p.Ended
		if end.IsZero() {
			end = s.UpdatedAt
			out[i].open = true
		}
		if end.After(p.Started) {
			out[i].spent += end.Sub(p.Started)
		}
		out[i].entered++
	}
	return out
}

func (s *Status) writePhases(b *strings.Builder) {
	totals := s.phaseTotals()
	if len(totals) == 0 {
		b.WriteString("No phase started yet.\n")
		return
	}
	b.WriteString("| Environment | Phase | Status | Duration |\n|---|---|---|---|\n")
	var total time.Duration
	for _, t := range totals {
		status := "✅ done"
		if t.open {
			switch {
			case !s.State.Terminal():
				status = "⏳ " + string(s.State)
			case s.State == StateFailed || s.State == StateAborted || s.State == StateRejected:
				status = "❌ " + string(s.State)
			case s.State == StateRolledBack:
				status = "↩️ rolled back"
			}
		}
		if t.phase == PhaseRollback {
			status = "↩️ rolled back"
		} else if f := s.phaseFailures(t.env, t.phase); f != "" {
			status = f
		}
		entered := ""
		if t.entered > 1 {
			entered = fmt.Sprintf(" (%d rounds)", t.entered)
		}
		total += t.spent
		fmt.Fprintf(b, "| %s | %s | %s | %s%s |\n", report.Cell(t.env), report.Cell(t.phase), status, report.Duration(t.spent), entered)
	}
	fmt.Fprintf(b, "\n**Total:** %s\n", report.Duration(total))
}

// writeAudit is the audit table: orphans per check, first audit
// and after remediation.
func (s *Status) writeAudit(b *strings.Builder, env string) {
	rep, ok := s.Environments[env]
	if !ok || len(rep.FirstAudit) == 0 {
		return
	}
	last := map[string]int64{}
	for _, f := range rep.LastAudit {
		last[f.FK] = f.Orphans
	}
	remediated := map[string]string{}
	for _, r := range rep.Remediations {
		remediated[r.FK] = fmt.Sprintf("%s: %d quarantined", mdtext.TableCell(r.Mode), r.Quarantined)
	}
	fmt.Fprintf(b, "\n### Orphan audit: %s (%d round(s))\n\n", report.Text(env), rep.AuditRounds)
	b.WriteString("| Check | Orphans found | After remediation | Status |\n|---|---|---|---|\n")
	for _, f := range rep.FirstAudit {
		after, audited := last[f.FK]
		if !audited {
			after = f.Orphans
		}
		status := "✅ PASS"
		switch {
		case after > 0 && s.constraintState(f.FK, env) == CDebt:
			status = "🟡 accepted as debt"
		case after > 0:
			status = "❌ ORPHANS"
		case f.Orphans > 0:
			status = "✅ FIXED (" + report.OrDash(remediated[f.FK]) + ")"
		}
		check := mdtext.TableCell(f.FK)
		if len(f.Columns) > 0 {
			check = mdtext.TableCell(f.Table) + "." + report.JoinCells(f.Columns, ",")
		}
		fmt.Fprintf(b, "| %s orphans | %d | %d | %s |\n", check, f.Orphans, after, status)
	}
}

// phaseFailures is the status cell of a phase that had failed steps, or ""
// when none failed: a phase whose failure was skipped past is partial, one
// that ended in a rollback or abort failed, one retried to success is done.
func (s *Status) phaseFailures(env, phase string) string {
	var failed, retried, undecided int
	var skipped, stopped []string
	for _, f := range s.Environments[env].Failures {
		if f.Phase != phase {
			continue
		}
		failed++
		switch f.Outcome {
		case approval.ChoiceRetry:
			retried++
		case approval.ChoiceSkip:
			skipped = append(skipped, f.What)
		case approval.ChoiceRollback, approval.ChoiceAbort:
			stopped = append(stopped, f.Outcome)
		case "":
			undecided++
		}
	}
	switch {
	case failed == 0:
		return ""
	case undecided > 0 && !s.State.Terminal():
		return "⏳ failed step awaiting a decision"
	case len(stopped) > 0:
		return fmt.Sprintf("❌ failed (%d failed step(s), then %s)", failed, stopped[len(stopped)-1])
	case len(skipped) > 0:
		return fmt.Sprintf("⚠️ partial (%d skipped after failure)", len(skipped))
	case retried == failed:
		return fmt.Sprintf("✅ done after %d retried failure(s)", retried)
	}
	return fmt.Sprintf("❌ failed (%d failed step(s))", failed)
}

func (s *Status) constraintState(fk, env string) ConstraintState {
	for _, c := range s.Constraints {
		if c.Name == fk {
			return c.Environments[env].State
		}
	}
	return ""
}

// writeMetrics is the "Database Metrics" table of one environment.
func (s *Status) writeMetrics(b *strings.Builder, env string) {
	rep, ok := s.Environments[env]
	if !ok || rep.StatsBefore == nil {
		return
	}
	fmt.Fprintf(b, "\n### Database Metrics: %s\n\n", report.Text(env))
	b.WriteString("| Metric | Before | After | Change |\n|---|---|---|---|\n")
	rows := []StatRow(nil)
	if rep.StatsAfter != nil {
		rows = rep.StatsAfter.Comparison
	}
	if len(rows) == 0 {
		after := "not measured"
		if rep.StatsAfter != nil {
			after = fmt.Sprint(rep.StatsAfter.ForeignKeys)
		}
		rows = []StatRow{{Metric: "Foreign Keys", Before: fmt.Sprint(rep.StatsBefore.ForeignKeys), After: after, Change: "n/a"}}
	}
	for _, r := range rows {
		if r.Metric == "Orphaned Records" && len(rep.FirstAudit) > 0 {
			// The audit measures exactly the planned relationships.
			before, after := totalOrphans(rep.FirstAudit), totalOrphans(rep.FirstAudit)
			if len(rep.LastAudit) > 0 {
				after = totalOrphans(rep.LastAudit)
			}
			r.Before, r.After = fmt.Sprint(before), fmt.Sprint(after)
			r.Change = "No change"
			if after != before {
				r.Change = fmt.Sprintf("%+d", after-before)
			}
		}
		after := mdtext.TableCell(r.After)
		if r.Metric == "Foreign Keys" {
			after = "**" + after + "**"
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s |\n", mdtext.TableCell(r.Metric), mdtext.TableCell(r.Before), after, mdtext.TableCell(r.Change))
	}
}

// behaviourTally counts behaviour cases by family across environments.
type behaviourTally struct {
	passed, failed, skipped int
}

func (t behaviourTally) total() int { return t.passed + t.failed + t.skipped }

func (t behaviourTally) add(c BehaviourCase) behaviourTally {
	switch {
	case c.Outcome == "skipped":
		t.skipped++
	case c.Passed:
		t.passed++
	default:
		t.failed++
	}
	return t
}

// behaviour tallies the last environment that ran behaviour tests: orphan
// inserts, parent deletes that must be refused, and referential actions.
func (s *Status) behaviour() (env string, insert, protect, actions behaviourTally) {
	for _, e := range s.EnvironmentOrder {
		if len(s.Environments[e].Behaviour) > 0 {
			env = e
		}
	}
	if env == "" {
		return
	}
	for _, r := range s.Environments[env].Behaviour {
		for _, c := range r.Cases {
			switch {
			case c.Name == "insert-orphan-rejected":
				insert = insert.add(c)
			case strings.HasSuffix(c.Name, "-restrict") || strings.HasSuffix(c.Name, "-no-action"):
				protect = protect.add(c)
			default:
				actions = actions.add(c)
			}
		}
	}
	return
}

func invariantRow(b *strings.Builder, name, okLabel string, t behaviourTally, what string) {
	if t.total() == 0 {
		return
	}
	status := "✅ " + okLabel
	switch {
	case t.failed > 0:
		status = "❌ BROKEN"
	case t.passed == 0:
		status = "⚠️ NOT PROVEN"
	}
	detail := fmt.Sprintf("%d/%d %s passed", t.passed, t.total(), what)
	if t.skipped > 0 {
		detail += fmt.Sprintf(", %d skipped", t.skipped)
	}
	fmt.Fprintf(b, "| %s | %s | %s |\n", name, status, detail)
}

func (s *Status) lastEnv() string {
	if len(s.EnvironmentOrder) == 0 {
		return ""
	}
	return s.EnvironmentOrder[len(s.EnvironmentOrder)-1]
}

func (s *Status) writeInvariants(b *strings.Builder) {
	b.WriteString("\n### Critical Invariants\n\n| Invariant | Status | Test Result |\n|---|---|---|\n")
	env, insert, protect, actions := s.behaviour()
	invariantRow(b, "Orphan prevention", "WORKING", insert, "invalid inserts refused ("+report.Cell(env)+")")
	invariantRow(b, "Freeze-by-reference (parent delete refused)", "PROTECTED", protect, "RESTRICT / NO ACTION deletes refused")
	invariantRow(b, "Referential actions (CASCADE / SET NULL / SET DEFAULT)", "WORKING", actions, "action cases")
	typeProblems := 0
	checked := 0
	for _, e := range s.EnvironmentOrder {
		rep, ok := s.Environments[e]
		if !ok || rep.StatsBefore == nil {
			continue
		}
		checked++
		for _, p := range rep.Problems {
			if p.Rule == "type-mismatch" {
				typeProblems++
			}
		}
	}
	if checked > 0 {
		status := "✅ VALIDATED"
		if typeProblems > 0 {
			status = "❌ MISMATCH"
		}
		fmt.Fprintf(b, "| Type consistency | %s | catalog check in %d environment(s): %d type mismatches |\n", status, checked, typeProblems)
	}
	last := s.lastEnv()
	c := s.Counts(last)
	enforced := c[CValidated] + c[CTested]
	status := "✅ ENFORCED"
	switch {
	case c[CRolledBack] > 0:
		status = "↩️ ROLLED BACK"
	case c[CDebt] > 0:
		status = "🟡 PARTLY (NOT VALID debt)"
	case enforced < len(s.Constraints):
		status = "⏳ IN PROGRESS"
	}
	fmt.Fprintf(b, "| Referential integrity (%s) | %s | %d/%d constraints validated, %d NOT VALID as debt |\n", report.Cell(last), status, enforced, len(s.Constraints), c[CDebt])
	var quarantined, removed int64
	for _, e := range s.EnvironmentOrder {
		for _, r := range s.Environments[e].Remediations {
			quarantined += r.Quarantined
			removed += r.Affected
		}
	}
	if removed > 0 || quarantined > 0 {
		status := "✅ KEPT"
		if quarantined < removed {
			status = "❌ ROWS LOST"
		}
		fmt.Fprintf(b, "| No row lost | %s | %d rows changed by remediation, %d copied to fkrollout.quarantine first |\n", status, removed, quarantined)
	}
}

func (s *Status) perfReport() *PerfReport {
	for _, env := range s.EnvironmentOrder {
		if p := s.Environments[env].Perf; p != nil {
			return p
		}
	}
	return nil
}

func (s *Status) writePerf(b *strings.Builder) {
	p := s.perfReport()
	if p == nil {
		return
	}
	fmt.Fprintf(b, "\n---\n\n## Performance (%s, workload %s)\n\n", report.Text(p.Environment), report.OrDash(report.Text(p.Workload)))
	if p.Markdown != "" {
		b.WriteString(strings.TrimSpace(p.Markdown))
		b.WriteString("\n")
	} else {
		b.WriteString("Baseline measured; the with-FKs run did not happen.\n")
	}
	if p.Verdict != "" && !strings.Contains(p.Markdown, "**Verdict:**") {
		fmt.Fprintf(b, "\n**Verdict:** %s — %s\n", report.Text(p.Verdict), report.Text(p.Reason))
	}
	if o := p.Override; o != nil {
		fmt.Fprintf(b, "\n**Override:** promoted despite the warning by %s at %s: %s\n", report.Text(o.Actor), report.Stamp(o.Time), report.OrDash(report.Text(o.Reason)))
	}
}

func (s *Status) writeDecisions(b *strings.Builder) {
	approval.WriteDecisions(b, s.Decisions, s.Refusals)
	if s.Policy != nil {
		b.WriteString("\n---\n\n")
		b.WriteString(s.Policy.Markdown())
	}
}

func (s *Status) successMetrics() []report.Metric {
	var rows []report.Metric
	last := s.lastEnv()
	lastCell := mdtext.TableCell(last) // names go into table cells
	rep := s.Environments[last]
	c := s.Counts(last)
	planned := len(s.Constraints)
	enforced := c[CValidated] + c[CTested]
	if planned > 0 {
		rows = append(rows, report.Metric{Name: "FK Constraints Validated (" + lastCell + ")", Target: fmt.Sprint(planned),
			Actual: fmt.Sprint(enforced), OK: report.Passed(enforced == planned), Note: fmt.Sprintf("%d%%", enforced*100/planned),
			Phase: PhaseValidate, Criteria: "every planned constraint VALIDATED"})
	}
	typeOK := true
	for _, e := range s.EnvironmentOrder {
		for _, p := range s.Environments[e].Problems {
			if p.Rule == "type-mismatch" {
				typeOK = false
			}
		}
	}
	if rep.StatsBefore != nil {
		actual := "100%"
		if !typeOK {
			actual = "mismatches found"
		}
		rows = append(rows, report.Metric{Name: "Type Consistency", Target: "100%", Actual: actual, OK: report.Passed(typeOK),
			Phase: PhaseCheck, Criteria: "planned FK columns have the referenced columns' types"})
	}
	if len(rep.FirstAudit) > 0 {
		after := totalOrphans(rep.FirstAudit)
		if len(rep.LastAudit) > 0 {
			after = totalOrphans(rep.LastAudit)
		}
		note := ""
		if c[CDebt] > 0 {
			note = "accepted as debt"
		}
		rows = append(rows, report.Metric{Name: "Orphaned Records (" + lastCell + ")", Target: "0", Actual: fmt.Sprint(after), OK: report.Passed(after == 0), Note: note,
			Phase: PhaseRemediation, Criteria: "no orphan left after remediation"})
	}
	_, insert, protect, actions := s.behaviour()
	tests := behaviourTally{passed: insert.passed + protect.passed + actions.passed, failed: insert.failed + protect.failed + actions.failed,
		skipped: insert.skipped + protect.skipped + actions.skipped}
	if tests.total() > 0 {
		run := tests.passed + tests.failed
		note := ""
		if tests.skipped > 0 {
			note = fmt.Sprintf("%d skipped", tests.skipped)
		}
		rows = append(rows, report.Metric{Name: "FK Tests Passing", Target: fmt.Sprintf("%d/%d", run, run),
			Actual: fmt.Sprintf("%d/%d", tests.passed, run), OK: report.Passed(tests.failed == 0 && run > 0), Note: note,
			Phase: PhaseBehaviour, Criteria: "every behaviour case passes"})
	}
	if protect.total() > 0 {
		rows = append(rows, report.Metric{Name: "Freeze-by-Reference", Target: "Protected", Actual: map[bool]string{true: "Protected", false: "Not protected"}[protect.failed == 0 && protect.passed > 0],
			OK: report.Passed(protect.failed == 0 && protect.passed > 0), Phase: PhaseBehaviour, Criteria: "RESTRICT / NO ACTION parent deletes refused"})
	}
	if ms, n := ddlMillis(rep); n > 0 {
		rows = append(rows, report.Metric{Name: "Migration Duration (" + lastCell + ", apply + validate)", Target: fmt.Sprintf("<%d sec", migrationTargetSeconds),
			Actual: report.Duration(time.Duration(ms) * time.Millisecond), OK: report.Passed(ms < migrationTargetSeconds*1000), Note: fmt.Sprintf("%d statements", n),
			Phase: PhaseApply + " + " + PhaseValidate, Criteria: "ADD NOT VALID and VALIDATE together under the target"})
	}
	if p := s.perfReport(); p != nil && p.Comparison != nil {
		limit := s.Thresholds.MaxOverheadMS
		if limit == 0 {
			limit = defaultMaxOverheadMS
		}
		worst, upper := 0.0, 0.0
		for _, r := range p.Comparison.Rows {
			worst, upper = max(worst, r.PerUnitMS), max(upper, r.HighMS)
		}
		actual, criteria := fmt.Sprintf("%+.2f ms (worst)", worst), "worst per-operation overhead below the limit"
		if p.Comparison.Method == perf.MethodInterleaved {
			actual += fmt.Sprintf(", upper bound of %g%% interval %+.2f ms", 100*p.Comparison.Confidence, upper)
			criteria = "upper bound of the overhead interval below the limit"
		}
		rows = append(rows, report.Metric{Name: "Latency Overhead per Operation", Target: fmt.Sprintf("<%g ms", limit),
			Actual: actual, OK: report.Passed(p.Comparison.Verdict == perf.Pass), Note: p.Comparison.Verdict,
			Phase: "perf", Criteria: criteria})
	}
	rows = append(rows, s.expectationMetrics()...)
	var smokeOK, smoke int
	cleanupFailed := 0
	for _, r := range rep.Smoke {
		if r.Kind == "cleanup" {
			if !r.OK {
				cleanupFailed++
			}
			continue
		}
		smoke++
		if r.OK {
			smokeOK++
		}
	}
	if smoke > 0 {
		note := ""
		if cleanupFailed > 0 {
			note = fmt.Sprintf("%d cleanup step(s) failed", cleanupFailed)
		}
		rows = append(rows, report.Metric{Name: "Smoke Checks (" + lastCell + ")", Target: fmt.Sprintf("%d/%d", smoke, smoke),
			Actual: fmt.Sprintf("%d/%d", smokeOK, smoke), OK: report.Passed(smokeOK == smoke && cleanupFailed == 0), Note: note,
			Phase: PhaseSmoke, Criteria: "status, body and log assertions hold; cleanup done"})
	}
	if m, ok := s.uptimeMetric(); ok {
		rows = append(rows, m)
	}
	if m := s.Monitor; m != nil && m.Status != MonitorSkipped {
		target := fmt.Sprintf("no rollback rule fires (latency +%g ms, errors +%g pts, FK violations >%g/h)",
			cmp.Or(s.Thresholds.RollbackOverheadMS, defaultRollbackOverheadMS), cmp.Or(s.Thresholds.ErrorRateIncreasePct, defaultErrorRateIncrease),
			cmp.Or(s.Thresholds.FKViolationsPerHour, defaultFKViolationsPerHour))
		actual := m.Status + m.inconclusiveNote()
		if m.Rule != "" {
			actual += " (" + mdtext.TableCell(m.Rule) + ")"
		}
		var ok *bool
		switch m.Status {
		case MonitorPassed:
			ok = report.Passed(true)
		case MonitorRollback, MonitorAborted:
			ok = report.Passed(false)
		}
		rows = append(rows, report.Metric{Name: "Production Monitor (" + report.Span(m.Started, m.Ended) + ")", Target: target, Actual: actual, OK: ok,
			Phase: PhaseMonitor, Criteria: "the watch ends without a rollback"})
	}
	if len(rep.Hooks) > 0 {
		failed := mdtext.TableCell(failedHooks(rep.Hooks))
		rows = append(rows, report.Metric{Name: "Deploy Hooks (" + lastCell + ")", Target: "all succeed", Actual: cmp.Or(failed, "all succeeded"), OK: report.Passed(failed == ""),
			Phase: PhaseDeployHooks, Criteria: "every hook exits 0"})
	}
	return rows
}

// ddlMillis adds up the apply and validate statements of one environment.
func ddlMillis(rep EnvReport) (ms int64, n int) {
	for _, r := range rep.Applied {
		ms += r.DurationMS
		n++
	}
	for _, r := range rep.Validated {
		ms += r.DurationMS
		n++
	}
	return ms, n
}

func (s *Status) writeSuccessMetrics(b *strings.Builder) {
	report.WriteSuccessMetrics(b, s.successMetrics())
}

func (s *Status) writeRollback(b *strings.Builder) {
	r := s.Rollback
	if r == nil {
		return
	}
	b.WriteString("\n---\n\n## Rollback\n\n")
	fmt.Fprintf(b, "**Trigger:** %s  \n**Rule fired:** %s  \n**By:** %s at %s  \n**Reason:** %s\n",
		report.Text(r.Trigger), report.OrDash(report.Text(r.Rule)), report.OrDash(report.Text(r.Actor)), report.Stamp(r.At), report.OrDash(report.Text(r.Reason)))
	if len(r.Figures) > 0 {
		b.WriteString("\n| Figure | Value | Threshold |\n|---|---|---|\n")
		for _, f := range r.Figures {
			unit := mdtext.TableCell(f.Unit)
			fmt.Fprintf(b, "| %s | %g %s | %g %s |\n", mdtext.TableCell(f.Name), f.Value, unit, f.Threshold, unit)
		}
	}
	if len(r.Dropped) > 0 {
		fmt.Fprintf(b, "\nDropped (only what this rollout created, reverse priority order): %s\n", report.JoinText(r.Dropped, ", "))
	} else {
		b.WriteString("\nNothing to drop: this rollout had not created a constraint yet.\n")
	}
	if len(r.Kept) > 0 {
		fmt.Fprintf(b, "\nKept (already validated): %s\n", report.JoinText(r.Kept, ", "))
	}
	if len(r.Failures) > 0 {
		fmt.Fprintf(b, "\n❌ Rollback incomplete: %s\n", report.JoinText(r.Failures, "; "))
	}
	if l := r.Left; l != nil {
		fmt.Fprintf(b, "\nLeft in place by %s at %s: %s\n", report.Text(l.Actor), report.Stamp(l.At), report.OrDash(report.Text(l.Reason)))
	}
}
