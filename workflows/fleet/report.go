package fleet

import (
	"fmt"
	"strings"
	"time"

	"github.com/fkrollout/fkrollout/internal/report"
	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/rollout"
	"github.com/fkrollout/fkrollout/workflows/steps"
	"go.temporal.io/sdk/workflow"
)

// Report renders the fleet's completion report: the header, the waves with
// their gates, every database with its child rollout (whose own report has
// the phases, metrics, invariants and perf table of that database), the
// wave gates' decisions and the fleet's success metrics. Like
// Status.Report it is a pure function of the status: the report query,
// `fkrollout report <fleet-id>`, the file and the Slack post are one text.
func (s *Status) Report() string {
	var b strings.Builder
	icon, label := report.Badge(string(s.State))
	title := "FK Fleet Rollout"
	if s.PlanName != "" {
		title += " " + s.PlanName
	}
	fmt.Fprintf(&b, "# %s %s — %s\n\n", icon, title, label)
	fmt.Fprintf(&b, "**Fleet:** `%s`  \n", s.FleetID)
	fmt.Fprintf(&b, "**Requester:** %s  \n", report.OrDash(s.Requester))
	fmt.Fprintf(&b, "**Databases:** %d in %d waves · %d constraints each  \n", len(s.Targets), len(s.Waves), s.ConstraintCount)
	fmt.Fprintf(&b, "**Started:** %s  \n", report.Stamp(s.StartedAt))
	if s.Terminal() {
		fmt.Fprintf(&b, "**Finished:** %s (%s)  \n", report.Stamp(s.UpdatedAt), report.Span(s.StartedAt, s.UpdatedAt))
	} else {
		fmt.Fprintf(&b, "**Now:** phase `%s` (running for %s)  \n", s.Phase, report.Span(s.StartedAt, s.UpdatedAt))
	}
	fmt.Fprintf(&b, "**Status:** %s **%s** · %d succeeded · %d failed (budget %d)\n", icon, label, s.Succeeded, s.Failed, s.FailureBudget)
	if s.DryRun {
		b.WriteString("\n_Dry run: checks, statistics and the audit only; nothing was changed._\n")
	}
	if s.Error != "" {
		fmt.Fprintf(&b, "\n**Error:** %s\n", s.Error)
	}

	b.WriteString("\n---\n\n## Waves\n\n| Wave | Databases | Status | Succeeded | Failed | Duration | approval.Gate after it |\n|---|---|---|---|---|---|---|\n")
	for _, w := range s.Waves {
		name := fmt.Sprint(w.Number)
		if w.Canary {
			name += " (canary)"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %d | %s | %s |\n", name, strings.Join(w.Targets, ", "), w.State,
			w.Succeeded, w.Failed, spanPtr(w.StartedAt, w.EndedAt), s.gateCell(w.Gate))
	}

	b.WriteString("\n---\n\n## Databases\n\n| Wave | Database | Status | Validated | Debt | Rolled back | Duration | Child rollout | Report |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, t := range s.Targets {
		ti, _ := report.Badge(string(t.State))
		fmt.Fprintf(&b, "| %d | %s | %s %s | %d | %d | %d | %s | `%s` | %s |\n", t.Wave, t.Name, ti, t.State,
			t.Validated, t.Debt, t.RolledBack, spanPtr(t.StartedAt, t.EndedAt), t.ChildID, report.OrDash(t.ReportPath))
	}
	var errs []string
	for _, t := range s.Targets {
		if t.Error != "" {
			errs = append(errs, fmt.Sprintf("- **%s** (%s): %s", t.Name, t.State, t.Error))
		}
	}
	if len(errs) > 0 {
		b.WriteString("\nWhat went wrong:\n\n" + strings.Join(errs, "\n") + "\n")
	}
	b.WriteString("\nEach database's own report (phases, metrics, invariants, perf, its gates): `fkrollout report <child rollout>`.\n")

	approval.WriteDecisions(&b, s.Decisions, s.Refusals)
	report.WriteSuccessMetrics(&b, s.successMetrics())
	fmt.Fprintf(&b, "\n---\n\n*Report generated: %s*  \n*Fleet ID: %s*  \n*Status: %s*\n", report.Stamp(s.UpdatedAt), s.FleetID, label)
	return b.String()
}

// gateCell is the wave gate's outcome: "fleet/wave/1: approve by alice".
func (s *Status) gateCell(id string) string {
	if id == "" {
		return "—"
	}
	for _, g := range s.Gates {
		if g.ID != id {
			continue
		}
		if g.Decision != nil {
			return fmt.Sprintf("`%s`: %s by %s", id, g.Decision.Action, g.Decision.Actor)
		}
		return fmt.Sprintf("`%s`: %s", id, g.Status)
	}
	return "`" + id + "`"
}

func spanPtr(from, to *time.Time) string {
	if from == nil || to == nil {
		return "—"
	}
	return report.Span(*from, *to)
}

// successMetrics: every database done, the failure budget kept, every
// constraint enforced everywhere it was rolled out.
func (s *Status) successMetrics() []report.Metric {
	n := len(s.Targets)
	if n == 0 {
		return nil
	}
	want, validated, debt := 0, 0, 0
	for _, t := range s.Targets {
		if t.Planned > 0 {
			want += t.Planned
		} else {
			want += s.ConstraintCount
		}
		validated += t.Validated
		debt += t.Debt
	}
	rows := []report.Metric{
		{Name: "Databases Succeeded", Target: fmt.Sprint(n), Actual: fmt.Sprint(s.Succeeded), OK: doneOr(s, s.Succeeded == n),
			Note: fmt.Sprintf("%d%%", s.Succeeded*100/n)},
		{Name: "Failed Databases (budget)", Target: fmt.Sprintf("< %d", s.FailureBudget), Actual: fmt.Sprint(s.Failed), OK: report.Passed(s.Failed < s.FailureBudget)},
	}
	if want > 0 && !s.DryRun {
		rows = append(rows, report.Metric{Name: "FK Constraints Validated (all databases)", Target: fmt.Sprint(want), Actual: fmt.Sprint(validated),
			OK: doneOr(s, validated == want), Note: fmt.Sprintf("%d%%, %d as debt", validated*100/want, debt)})
	}
	return rows
}

// doneOr is ok once the fleet has ended, pending before (a running fleet
// has not failed a target it has not reached).
func doneOr(s *Status, ok bool) *bool {
	if !s.Terminal() && !ok {
		return nil
	}
	return report.Passed(ok)
}

// publishReport hands the fleet's report to the worker (file + notifier),
// as a rollout does. It never changes the outcome.
func (f *fleet) publishReport(ctx workflow.Context) {
	rctx, _ := workflow.NewDisconnectedContext(ctx)
	rctx = workflow.WithActivityOptions(rctx, steps.WithSummary(steps.Notify(), "fleet completion report: "+string(f.st.State)))
	f.st.UpdatedAt = workflow.Now(ctx)
	snap := f.snapshot()
	var res rollout.ReportResult
	in := rollout.ReportInput{RolloutID: f.id, State: string(snap.State), Markdown: snap.Report(), Thread: f.thread}
	if err := workflow.ExecuteActivity(rctx, rollout.ActPublishReport, in).Get(rctx, &res); err != nil {
		f.event(ctx, rollout.PhaseDone, fmt.Sprintf("fleet completion report not written: %v", err))
		return
	}
	f.st.ReportPath = res.Path
	msg := "fleet completion report written to " + res.Path
	if res.PostError != "" {
		msg += " (not posted: " + res.PostError + ")"
	}
	f.event(ctx, rollout.PhaseDone, msg)
}
