package perf

import (
	"fmt"
	"strings"
)

// Report is the perf phase's part of the rollout's status and final
// report: the latency comparison, the FK checks' plans, the representative
// queries' plans and the indexes built on request.
type Report struct {
	Comparison   Comparison   `json:"comparison"`
	FKChecks     []PlanCheck  `json:"fk_checks,omitempty"`
	Queries      []QueryCheck `json:"queries,omitempty"`
	IndexesBuilt []string     `json:"indexes_built,omitempty"`
}

// Markdown renders the comparison table followed by the plan findings.
func (r Report) Markdown() string {
	var b strings.Builder
	b.WriteString(r.Comparison.Markdown())
	if len(r.FKChecks) > 0 {
		b.WriteString("\n| Constraint | Referential check plan | Check time | Parent delete | Recommendation |\n")
		b.WriteString("|------------|------------------------|------------|---------------|----------------|\n")
		for _, c := range r.FKChecks {
			scan := c.ScanNode
			if c.Index != "" {
				scan += " using " + c.Index
			}
			if c.SeqScan {
				scan = "⚠️ " + scan
			}
			del := "—"
			if c.DeleteCalls > 0 {
				del = fmt.Sprintf("%.2fms", c.DeleteMS)
			}
			rec := c.Recommendation
			if rec == "" {
				rec = c.Note
			}
			if rec != "" && c.Recommendation != "" {
				rec = "`" + rec + "`"
			}
			fmt.Fprintf(&b, "| %s | %s | %.2fms | %s | %s |\n", c.FK, scan, c.CheckMS, del, strings.ReplaceAll(rec, "|", "\\|"))
		}
	}
	var seq []string
	for _, q := range r.Queries {
		if len(q.SeqScans) > 0 {
			seq = append(seq, fmt.Sprintf("%s statement %d: Seq Scan on %s", q.Operation, q.Statement, strings.Join(q.SeqScans, ", ")))
		}
		if q.Error != "" {
			seq = append(seq, fmt.Sprintf("%s statement %d: %s", q.Operation, q.Statement, q.Error))
		}
	}
	if len(seq) > 0 {
		b.WriteString("\nRepresentative queries:\n")
		for _, s := range seq {
			b.WriteString("- " + s + "\n")
		}
	}
	if len(r.IndexesBuilt) > 0 {
		fmt.Fprintf(&b, "\nIndexes built on request (CREATE INDEX CONCURRENTLY): %s\n", strings.Join(r.IndexesBuilt, ", "))
	}
	return b.String()
}
