package rollout

import (
	"fmt"
	"strings"

	"go.temporal.io/sdk/workflow"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/workflows/steps"
)

// expectationsVersion: after its statistics, each environment's expected
// figures are measured; one that does not hold opens the problem gate.
const expectationsVersion = "checks-expectations"

// ExpectInput asks for an environment's expectations to be measured. The
// orphans come from the workflow's last audit (the activity does not audit
// again).
type ExpectInput struct {
	Environment  string    `json:"environment"`
	Plan         plan.Plan `json:"plan"`
	Orphans      int64     `json:"orphans"`
	OrphansKnown bool      `json:"orphans_known"`
}

// ExpectationResult is one expected figure with what was measured.
type ExpectationResult struct {
	Name string `json:"name"`
	// Source is "plan" or "worker configuration".
	Source string `json:"source"`
	Target string `json:"target"`
	Actual string `json:"actual"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// checkExpectations measures what the plan and the worker expect of env
// once its constraints are validated. A figure that does not hold is never
// passed over: the problem gate opens with the figures (retry measures
// again, continue goes on with them on record, rollback, abort).
func (w *rollout) checkExpectations(ctx workflow.Context, name string) error {
	if workflow.GetVersion(ctx, expectationsVersion, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return nil
	}
	for {
		rep := w.report(name)
		in := ExpectInput{Environment: name, Plan: w.plan, OrphansKnown: len(rep.LastAudit) > 0}
		if in.OrphansKnown {
			in.Orphans = totalOrphans(rep.LastAudit)
		}
		var res []ExpectationResult
		if err := w.step(ctx, name, "expected figures of "+name, ActCheckExpectations, steps.Short(), in, &res); err != nil {
			return err
		}
		rep = w.report(name)
		rep.Expectations = res
		w.setReport(name, rep)
		if len(res) == 0 {
			return nil
		}
		failed := failedExpectations(res)
		w.event(ctx, name, w.st.Phase, fmt.Sprintf("expected figures: %d/%d hold", len(res)-len(failed), len(res)))
		if len(failed) == 0 {
			return nil
		}
		retry, err := w.problemGateRetry(ctx, name, "expected figures not met in "+name+": "+strings.Join(failed, "; "))
		if err != nil {
			return err
		}
		if !retry {
			return nil
		}
	}
}

// failedExpectations are the figures that do not hold, with target and
// actual: "Validated foreign keys: ≥ 45 expected, 44 measured (plan)".
func failedExpectations(rs []ExpectationResult) []string {
	var out []string
	for _, r := range rs {
		if r.OK {
			continue
		}
		s := fmt.Sprintf("%s: %s expected, %s measured (%s)", r.Name, r.Target, r.Actual, r.Source)
		if r.Detail != "" {
			s += " — " + r.Detail
		}
		out = append(out, s)
	}
	return out
}
