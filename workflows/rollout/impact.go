package rollout

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/steps"
	"go.temporal.io/sdk/workflow"
)

// impactVersion: remediation gates show each constraint's impact across
// the foreign-key graph, offer delete-with-dependents and refuse choices
// that cannot be carried out.
const impactVersion = "remediation-impact"

// remediationImpact asks, for every constraint with orphans, what
// remediating would touch; nil in histories recorded before it existed.
func (w *rollout) remediationImpact(ctx workflow.Context, env string, dirty []AuditFigure) (map[string]Impact, error) {
	if workflow.GetVersion(ctx, impactVersion, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return nil, nil
	}
	out := make(map[string]Impact, len(dirty))
	for _, f := range dirty {
		fk, ok := w.fk(f.FK)
		if !ok {
			continue
		}
		var imp Impact
		if err := w.step(ctx, env, "remediation impact of "+fk.Name, ActRemediationImpact, steps.Long(), ImpactInput{Environment: env, FK: fk}, &imp); err != nil {
			return nil, err
		}
		out[f.FK] = imp
	}
	return out, nil
}

// impactLines renders an impact for the gate's summary.
func impactLines(imp Impact) []string {
	var lines []string
	for _, d := range imp.Dependents {
		lines = append(lines, fmt.Sprintf("  ↳ %s via %s (%s): %d rows", d.Table, d.Constraint, d.Action, d.Rows))
	}
	if len(imp.Triggers) > 0 {
		lines = append(lines, "  triggers: "+strings.Join(imp.Triggers, ", "))
	}
	choices := make([]string, 0, len(imp.Impossible))
	//workflowcheck:ignore (sorted below)
	for c := range imp.Impossible {
		choices = append(choices, c)
	}
	sort.Strings(choices)
	for _, c := range choices {
		lines = append(lines, fmt.Sprintf("  ✗ %s: %s", c, imp.Impossible[c]))
	}
	return lines
}

// impossibleChoice refuses a remediation choice that cannot be carried out
// for one of the constraints it applies to, with the reason, before
// anything runs.
func (w *rollout) impossibleChoice(g *approval.Gate, in approval.DecisionInput) error {
	impacts := w.gateImpact[g.ID]
	if impacts == nil {
		return nil
	}
	targets := in.Constraints
	if len(targets) == 0 {
		//workflowcheck:ignore (sorted below)
		for fk := range impacts {
			targets = append(targets, fk)
		}
		slices.Sort(targets)
	}
	for _, fk := range targets {
		if reason, ok := impacts[fk].Impossible[in.Choice]; ok {
			return fmt.Errorf("%s is impossible for %s: %s (choose another, or limit the decision to other constraints)", in.Choice, fk, reason)
		}
	}
	return nil
}
