package rollout

import (
	"cmp"
	"fmt"
	"strings"

	"github.com/fkrollout/fkrollout/internal/mdtext"
	"github.com/fkrollout/fkrollout/internal/perf"
	"github.com/fkrollout/fkrollout/internal/report"
)

// expectationMetrics is a row per expected figure, per environment, as
// last measured.
func (s *Status) expectationMetrics() []report.Metric {
	var rows []report.Metric
	for _, env := range s.EnvironmentOrder {
		for _, r := range s.Environments[env].Expectations {
			m := report.Metric{Name: mdtext.TableCell(r.Name) + " (" + mdtext.TableCell(env) + ")", Target: report.Cell(r.Target),
				Actual: report.Cell(r.Actual), OK: report.Passed(r.OK), Phase: PhaseStatsAfter, Criteria: "expected by the " + r.Source}
			if !r.OK && r.Detail != "" {
				m.Note = mdtext.TableCell(clipText(r.Detail, 160))
			}
			rows = append(rows, m)
		}
	}
	return rows
}

// uptimeMetric is the share of smoke requests the application answered
// (any status below 500) over every run of the smoke checks in the last
// environment that ran them, retries included: an assertion that failed
// still proves the application was up; a refused connection or a 5xx does
// not.
func (s *Status) uptimeMetric() (report.Metric, bool) {
	env := ""
	for _, e := range s.EnvironmentOrder {
		if len(s.Environments[e].SmokeRounds) > 0 {
			env = e
		}
	}
	if env == "" {
		return report.Metric{}, false
	}
	var answered, requests int
	rounds := s.Environments[env].SmokeRounds
	for _, r := range rounds {
		answered += r.Answered
		requests += r.Requests
	}
	if requests == 0 {
		return report.Metric{}, false
	}
	pct := float64(answered) * 100 / float64(requests)
	return report.Metric{Name: "Uptime (" + mdtext.TableCell(env) + ", smoke checks)", Target: "100%",
		Actual: fmt.Sprintf("%.1f%% (%d/%d requests, %d round(s))", pct, answered, requests, len(rounds)), OK: report.Passed(answered == requests),
		Phase: PhaseSmoke, Criteria: "every smoke request answered (no refused connection, no 5xx)"}, true
}

// writeRisks is what is still open after the rollout and what to do next:
// debt, unmet figures, failed checks taken past, missing indexes, perf
// warnings, quarantine and exports to tidy, a watch that did not run.
func (s *Status) writeRisks(b *strings.Builder) {
	var risks, next []string
	for _, env := range s.EnvironmentOrder {
		rep, ok := s.Environments[env]
		if !ok {
			continue
		}
		e := report.Text(env)
		var debt, skipped []string
		for _, c := range s.Constraints {
			switch c.Environments[env].State {
			case CDebt:
				debt = append(debt, c.Name)
			case CSkipped:
				skipped = append(skipped, c.Name)
			}
		}
		if len(debt) > 0 {
			risks = append(risks, fmt.Sprintf("%s: %d constraint(s) stay NOT VALID (orphans accepted as debt): %s. New writes are checked, existing rows are not.",
				e, len(debt), report.JoinText(debt, ", ")))
			files := ""
			if ex := lastExports(rep.OrphanExports); len(ex) > 0 {
				files = " (full lists: " + report.JoinText(ex, ", ") + ")"
			}
			next = append(next, fmt.Sprintf("%s: fix the remaining orphans%s, then run `VALIDATE CONSTRAINT` in a later window (a new rollout of the same plan does it).", e, files))
		}
		if len(skipped) > 0 {
			risks = append(risks, fmt.Sprintf("%s: %d constraint(s) were skipped at a failure gate and do not exist: %s.", e, len(skipped), report.JoinText(skipped, ", ")))
		}
		for _, r := range rep.Expectations {
			if !r.OK {
				risks = append(risks, fmt.Sprintf("%s: expected figure not met and taken past: %s — %s expected, %s measured (%s).", e,
					report.Text(r.Name), report.Text(r.Target), report.Text(r.Actual), report.Text(r.Source)))
			}
		}
		for _, r := range rep.Smoke {
			if !r.OK {
				risks = append(risks, fmt.Sprintf("%s: smoke %s failed and was taken past: %s.", e, report.Text(r.Name), report.Text(clipText(smokeFailure(r), 200))))
			}
		}
		if h := failedHooks(rep.Hooks); h != "" {
			risks = append(risks, fmt.Sprintf("%s: deploy hook failed and was taken past: %s.", e, report.Text(h)))
		}
		if rep.StatsAfter != nil && len(rep.StatsAfter.Unindexed) > 0 {
			risks = append(risks, fmt.Sprintf("%s: no index supports %s: a delete or key update of the parent scans the child.", e, report.JoinText(rep.StatsAfter.Unindexed, ", ")))
			next = append(next, fmt.Sprintf("%s: create the missing FK indexes with `CREATE INDEX CONCURRENTLY`.", e))
		}
		if q := rep.Quarantine; q != nil && q.Rows > 0 && s.Rollback == nil {
			next = append(next, fmt.Sprintf("%s: review the %d row(s) in `fkrollout.quarantine`; purge them once nobody needs a restore.", e, q.Rows))
		}
		if len(rep.OrphanExports) > 0 {
			next = append(next, fmt.Sprintf("%s: the orphan exports hold row data: archive them with the decision, then delete them.", e))
		}
	}
	if p := s.perfReport(); p != nil && p.Verdict != "" && p.Verdict != perf.Pass {
		risks = append(risks, fmt.Sprintf("performance verdict %s: %s.", report.Text(p.Verdict), report.Text(p.Reason)))
	}
	switch m := s.Monitor; {
	case s.Rollback != nil:
		next = append(next, fmt.Sprintf("find out why the rollback fired (%s) before rolling the plan out again.", report.Text(cmp.Or(s.Rollback.Rule, s.Rollback.Trigger))))
	case m == nil && (s.State == StateCompleted || s.State == StateCompletedWithDebt):
		risks = append(risks, "the production monitor did not run.")
	case m != nil && m.Status == MonitorSkipped && !s.DryRun:
		risks = append(risks, "no production watch ran (monitoring disabled): nothing compared latency, errors and FK violations with the baseline.")
		next = append(next, "watch the application's error rate and FK violations by hand for the next 24 hours.")
	}
	if s.Policy != nil && s.Policy.Mode == "development" {
		risks = append(risks, "development mode: gate decisions were believed without a signature.")
	}
	if len(backupPaths(s)) > 0 && s.Rollback == nil {
		next = append(next, "keep the backups below until the production watch has ended and the quarantine is purged.")
	}
	b.WriteString("\n---\n\n## Risks and next steps\n\n")
	if len(risks) == 0 {
		b.WriteString("**Risks:** none open")
		if s.State.Terminal() {
			b.WriteString(": every planned figure held.\n")
		} else {
			b.WriteString(" so far (the rollout is still running).\n")
		}
	} else {
		b.WriteString("**Risks:**\n\n")
		for _, r := range risks {
			b.WriteString("- ⚠️ " + r + "\n")
		}
	}
	if len(next) > 0 {
		b.WriteString("\n**Next steps:**\n\n")
		for i, n := range next {
			fmt.Fprintf(b, "%d. %s\n", i+1, n)
		}
	}
}

// writeArtefacts lists the backups and the orphan exports with where they
// are on the worker host (the report's own path is in the status: the
// report is written before it is known).
func (s *Status) writeArtefacts(b *strings.Builder) {
	type row struct{ env, kind, path, size, detail string }
	var rows []row
	for _, env := range s.EnvironmentOrder {
		rep := s.Environments[env]
		if rep.Backup != nil {
			for _, a := range rep.Backup.Artifacts {
				d := "sha256 " + short(a.SHA256)
				if a.Entries > 0 {
					d += fmt.Sprintf(", %d entries", a.Entries)
				}
				rows = append(rows, row{env, "backup: " + mdtext.TableCell(a.Kind), a.Path, report.Size(a.SizeBytes), d})
			}
		}
		for _, e := range rep.OrphanExports {
			d := fmt.Sprintf("%d of %d orphans", e.Rows, e.Orphans)
			if e.Truncated {
				d += fmt.Sprintf(", cut at the export maximum %d", e.Limit)
			}
			rows = append(rows, row{env, fmt.Sprintf("orphans of %s, audit round %d", mdtext.TableCell(e.FK), e.Round), e.Path, "—", d})
		}
	}
	if len(rows) == 0 {
		return
	}
	b.WriteString("\n---\n\n## Backups and artefacts\n\nFiles on the worker host.\n\n")
	b.WriteString("| Environment | What | Path | Size | Detail |\n|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", report.Cell(r.env), r.kind, mdtext.Code(r.path), r.size, r.detail)
	}
}

// lastExports are the paths of the latest audit round's export files.
func lastExports(ex []OrphanExport) []string {
	last := 0
	for _, e := range ex {
		last = max(last, e.Round)
	}
	var out []string
	for _, e := range ex {
		if e.Round == last {
			out = append(out, e.Path)
		}
	}
	return out
}

func backupPaths(s *Status) []string {
	var out []string
	for _, env := range s.EnvironmentOrder {
		if bk := s.Environments[env].Backup; bk != nil {
			for _, a := range bk.Artifacts {
				out = append(out, a.Path)
			}
		}
	}
	return out
}

func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12] + "…"
	}
	return report.OrDash(sum)
}

func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
