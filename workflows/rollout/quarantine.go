package rollout

import (
	"fmt"
	"strings"

	"github.com/fkrollout/fkrollout/internal/report"
	"github.com/fkrollout/fkrollout/workflows/steps"
	"go.temporal.io/sdk/workflow"
)

// quarantineVersion: environments whose remediation changed rows record
// their quarantine (rows per table, how to restore); a stopped rollout
// re-audits such environments so the report's counts are measured, not
// remembered; a rollback puts this run's quarantined rows back.
const quarantineVersion = "quarantine-truth"

// remediated reports whether env's remediation changed, or tried to
// change, rows.
func (w *rollout) remediated(env string) bool {
	rep := w.report(env)
	if len(rep.Remediations) > 0 {
		return true
	}
	for _, f := range rep.Failures {
		if f.Phase == PhaseRemediation {
			return true
		}
	}
	return false
}

// quarantineTruth reports whether this history records quarantines.
func (w *rollout) quarantineTruth(ctx workflow.Context, env string) bool {
	return w.remediated(env) && workflow.GetVersion(ctx, quarantineVersion, workflow.DefaultVersion, 1) == 1
}

// recordQuarantine reads env's quarantine for this run into the report,
// restoring it first when restore is set. A failure is reported, never
// fatal: the rows stay in quarantine either way.
func (w *rollout) recordQuarantine(ctx workflow.Context, env string, restore bool) {
	summary := "count this run's quarantined rows in " + env
	if restore {
		summary = "put this run's quarantined rows back in " + env
	}
	actx := workflow.WithActivityOptions(ctx, steps.WithSummary(steps.Long(), summary))
	var res QuarantineResult
	err := workflow.ExecuteActivity(actx, ActQuarantine, QuarantineInput{Environment: env, RolloutID: w.id, RunID: w.runID, Restore: restore}).Get(actx, &res)
	if err != nil {
		w.event(ctx, env, w.st.Phase, fmt.Sprintf("%s failed: %v", summary, steps.RootCause(err)))
		res = QuarantineResult{RestoreError: steps.RootCause(err).Error()}
		if !restore {
			return
		}
	}
	rep := w.report(env)
	if restore {
		rep.Restored = &res
		if res.RestoreError == "" {
			w.event(ctx, env, PhaseRollback, fmt.Sprintf("%d quarantined rows put back", res.Restored))
		}
	} else {
		rep.Quarantine = &res
	}
	w.setReport(env, rep)
}

// truthAudit re-audits env's constraints after a stop, so "after
// remediation" in the report is what the database holds, including rows a
// failed remediation removed before it failed.
func (w *rollout) truthAudit(ctx workflow.Context, env string) {
	actx := workflow.WithActivityOptions(ctx, steps.WithSummary(steps.Long(), "re-audit "+env+" for the report"))
	var figs []AuditFigure
	if err := workflow.ExecuteActivity(actx, ActAudit, AuditInput{Environment: env, FKs: w.fks}).Get(actx, &figs); err != nil {
		w.event(ctx, env, w.st.Phase, fmt.Sprintf("re-audit for the report failed: %v", steps.RootCause(err)))
		return
	}
	rep := w.report(env)
	rep.LastAudit = figs
	rep.AuditRounds++
	w.setReport(env, rep)
	w.event(ctx, env, PhaseAudit, fmt.Sprintf("re-audit after the stop: %d orphans", totalOrphans(figs)))
}

// writeQuarantine is the report's quarantine section of one environment.
func (s *Status) writeQuarantine(b *strings.Builder, env string) {
	rep, ok := s.Environments[env]
	if !ok || (rep.Quarantine == nil && rep.Restored == nil) {
		return
	}
	fmt.Fprintf(b, "\n### Quarantine: %s\n\n", report.Text(env))
	q := rep.Quarantine
	if rep.Restored != nil {
		q = rep.Restored
		if rep.Restored.RestoreError != "" {
			fmt.Fprintf(b, "The rollback could not put the quarantined rows back (%s); nothing was restored and they stay in quarantine.\n\n", report.Text(rep.Restored.RestoreError))
		} else {
			fmt.Fprintf(b, "The rollback put **%d** quarantined rows back (parents first).\n\n", rep.Restored.Restored)
		}
	}
	if q != nil && len(q.Tables) > 0 {
		b.WriteString("| Table | Change | Rows in quarantine |\n|---|---|---|\n")
		for _, t := range q.Tables {
			fmt.Fprintf(b, "| %s | %s | %d |\n", report.Cell(t.Table), report.Cell(t.Action), t.Rows)
		}
		fmt.Fprintf(b, "\nEvery row remediation removed or changed is in `fkrollout.quarantine` (rollout `%s`). To put them back, parents first: `fkrollout restore --rollout-id %s --dsn …` (`--fk NAME` for one constraint's rows).\n",
			strings.ReplaceAll(s.RolloutID, "`", ""), shellWord(s.RolloutID))
	} else if q != nil && rep.Restored == nil {
		b.WriteString("No rows in quarantine for this run.\n")
	}
}

// shellWord quotes s for a copy-pasted command line when it needs it.
func shellWord(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.:/@", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, "'", `'\''`), "`", "") + "'"
}
