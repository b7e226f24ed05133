package approval

import (
	"fmt"
	"strings"

	"github.com/fkrollout/fkrollout/internal/report"
)

// WriteDecisions is the Decisions section of a rollout's or a fleet's
// report: every vote and control request, and the refused attempts.
func WriteDecisions(b *strings.Builder, decisions []Decision, refusals []Refusal) {
	b.WriteString("\n---\n\n## Decisions\n\n")
	if len(decisions) == 0 {
		b.WriteString("No human decision was needed.\n")
		return
	}
	b.WriteString("| When | Gate | Decision | Who | Via | Why |\n|---|---|---|---|---|---|\n")
	for _, d := range decisions {
		who := report.Cell(d.Actor)
		if len(d.Roles) > 0 {
			who += " (" + report.JoinCells(d.Roles, ", ") + ")"
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s |\n", report.Stamp(d.Time), report.Cell(d.GateID), report.Cell(d.Action), who, report.Cell(d.Via), report.Cell(d.Reason))
	}
	if len(refusals) > 0 {
		fmt.Fprintf(b, "\n%d refused attempt(s):\n\n", len(refusals))
		for _, r := range refusals {
			fmt.Fprintf(b, "- %s: %s on %s refused — %s\n", report.Stamp(r.Time), report.OrDash(report.Text(r.Actor)), report.OrDash(report.Text(r.GateID)), report.OrDash(report.Text(r.Reason)))
		}
	}
}
